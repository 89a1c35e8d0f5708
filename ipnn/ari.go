package ipnn

import "fmt"

// AdjustedRand returns the adjusted Rand index (Hubert & Arabie) of two labelings of
// the same items: 1 for identical partitions, about 0 for independent ones.
func AdjustedRand(a, b []int) (float64, error) {
	if len(a) != len(b) {
		return 0, fmt.Errorf("adjusted Rand index: labelings have %d and %d items", len(a), len(b))
	}
	if len(a) < 2 {
		return 0, fmt.Errorf("adjusted Rand index: need >= 2 items, got %d", len(a))
	}
	type pair struct{ x, y int }
	cont := map[pair]int{}
	ra, rb := map[int]int{}, map[int]int{}
	for i := range a {
		cont[pair{a[i], b[i]}]++
		ra[a[i]]++
		rb[b[i]]++
	}
	c2 := func(n int) float64 { return float64(n) * float64(n-1) / 2 }
	var index, sa, sb float64
	for _, n := range cont {
		index += c2(n)
	}
	for _, n := range ra {
		sa += c2(n)
	}
	for _, n := range rb {
		sb += c2(n)
	}
	expected := sa * sb / c2(len(a))
	maxIndex := (sa + sb) / 2
	if maxIndex == expected {
		return 1, nil // both partitions trivial (one cluster or all singletons)
	}
	return (index - expected) / (maxIndex - expected), nil
}
