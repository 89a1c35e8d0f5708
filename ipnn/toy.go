package ipnn

import "fmt"

// ToyBits returns the binary-number toy task of the IPNN paper: the input is the k-bit
// binary representation (MSB first) of a number in [0, 2^k), the class is the number.
// Bits are coded 0/1 as in the paper, or -1/+1 when signed is set (zero-mean inputs).
// The training set repeats every number repeat times; the test set holds each once.
func ToyBits(k, repeat int, signed bool) (train, test *Dataset, err error) {
	if k < 1 || k > 20 {
		return nil, nil, fmt.Errorf("toy bits: k = %d, want 1..20", k)
	}
	if repeat < 1 {
		return nil, nil, fmt.Errorf("toy bits: repeat = %d, want >= 1", repeat)
	}
	n := 1 << k
	test = &Dataset{
		Name:    fmt.Sprintf("toy-bits-%d", k),
		Dim:     k,
		Classes: n,
		X:       make([]float32, n*k),
		Y:       make([]int64, n),
	}
	zero := float32(0)
	if signed {
		zero = -1
	}
	for v := 0; v < n; v++ {
		for j := 0; j < k; j++ {
			test.X[v*k+j] = zero
			if v>>(k-1-j)&1 == 1 {
				test.X[v*k+j] = 1
			}
		}
		test.Y[v] = int64(v)
	}
	train = &Dataset{Name: test.Name, Dim: k, Classes: n, Base: test, Group: 1,
		Parts: make([]int32, n*repeat), Y: make([]int64, n*repeat)}
	for i := range train.Y {
		train.Parts[i] = int32(i % n)
		train.Y[i] = int64(i % n)
	}
	return train, test, nil
}

// BitLabelSets ties one binary label set to each of k two-state groups: group j
// carries bit k-1-j of the class (MSB first, the order of the input bits).
func BitLabelSets(k int) []LabelSet {
	sets := make([]LabelSet, k)
	for j := range sets {
		sets[j] = LabelSet{Name: fmt.Sprintf("bit%d", k-1-j), Groups: []int{j}, Classes: 2, Base: 2, Pos: k - 1 - j}
	}
	return sets
}
