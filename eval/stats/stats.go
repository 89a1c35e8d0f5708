// Package stats holds the statistics of the evaluation reports: Wilson confidence intervals,
// unbiased pass@k, majority voting (maj@k), McNemar's exact test and the paired bootstrap of an
// accuracy difference, plus a small markdown table writer.
package stats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"gonum.org/v1/gonum/stat/distuv"
)

// Z95 is the normal quantile of a two-sided 95% interval.
const Z95 = 1.959963984540054

// Wilson returns the Wilson score interval for k successes out of n at normal quantile z
// (use Z95). For n == 0 it returns (0, 1).
func Wilson(k, n int, z float64) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	p := float64(k) / float64(n)
	nf := float64(n)
	z2 := z * z
	den := 1 + z2/nf
	center := (p + z2/(2*nf)) / den
	half := z * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf)) / den
	lo, hi = math.Max(0, center-half), math.Min(1, center+half)
	if k == 0 {
		lo = 0
	}
	if k >= n {
		hi = 1
	}
	return lo, hi
}

// PassAtK is the unbiased estimator of Chen et al. (2021): the probability that at least one of
// k samples drawn without replacement from n generations, c of them correct, is correct:
// 1 - C(n-c, k) / C(n, k). It returns an error unless 0 <= c <= n and 1 <= k <= n.
func PassAtK(n, c, k int) (float64, error) {
	if n < 1 || c < 0 || c > n || k < 1 || k > n {
		return 0, fmt.Errorf("pass@k: need 0 <= c <= n and 1 <= k <= n, got n=%d c=%d k=%d", n, c, k)
	}
	if n-c < k {
		return 1, nil
	}
	// prod_{i=n-c+1}^{n} (1 - k/i)
	prob := 1.0
	for i := n - c + 1; i <= n; i++ {
		prob *= 1 - float64(k)/float64(i)
	}
	return 1 - prob, nil
}

// MajorityVote returns the most frequent non-empty answer and its count; ties go to the answer
// that appeared first. If every answer is empty it returns ("", 0).
func MajorityVote(answers []string) (string, int) {
	counts := map[string]int{}
	best, bestN := "", 0
	for _, a := range answers {
		if a == "" {
			continue
		}
		counts[a]++
	}
	for _, a := range answers { // first-appearance order breaks ties
		if a != "" && counts[a] > bestN {
			best, bestN = a, counts[a]
		}
	}
	return best, bestN
}

// McNemarExact is the two-sided exact McNemar test on paired binary outcomes: b = pairs where only
// the first system is right, c = pairs where only the second is. It returns
// min(1, 2 * P[X <= min(b,c)]) with X ~ Binomial(b+c, 1/2), and 1 when b+c == 0.
func McNemarExact(b, c int) float64 {
	n := b + c
	if n == 0 {
		return 1
	}
	return math.Min(1, 2*distuv.Binomial{N: float64(n), P: 0.5}.CDF(float64(min(b, c))))
}

// Discordant counts the pairs where exactly one of a[i], b[i] is true.
func Discordant(a, b []bool) (onlyA, onlyB int, err error) {
	if len(a) != len(b) {
		return 0, 0, fmt.Errorf("discordant: %d vs %d outcomes", len(a), len(b))
	}
	for i := range a {
		switch {
		case a[i] && !b[i]:
			onlyA++
		case b[i] && !a[i]:
			onlyB++
		}
	}
	return onlyA, onlyB, nil
}

// BootstrapDiff is the paired bootstrap of mean(b) - mean(a): iters resamples of the paired
// indices with a generator seeded by seed, and the 2.5% and 97.5% percentiles.
func BootstrapDiff(a, b []bool, iters int, seed uint64) (diff, lo, hi float64, err error) {
	if len(a) != len(b) {
		return 0, 0, 0, fmt.Errorf("bootstrap: %d vs %d paired outcomes", len(a), len(b))
	}
	n := len(a)
	if n == 0 || iters < 1 {
		return 0, 0, 0, fmt.Errorf("bootstrap: need outcomes and iterations (n=%d, iters=%d)", n, iters)
	}
	d := make([]float64, n)
	sum := 0.0
	for i := range a {
		d[i] = b2f(b[i]) - b2f(a[i])
		sum += d[i]
	}
	diff = sum / float64(n)
	rng := rand.New(rand.NewPCG(seed, 0x62706f))
	means := make([]float64, iters)
	for it := range means {
		s := 0.0
		for range n {
			s += d[rng.IntN(n)]
		}
		means[it] = s / float64(n)
	}
	sort.Float64s(means)
	return diff, quantile(means, 0.025), quantile(means, 0.975), nil
}

// quantile of sorted xs by linear interpolation.
func quantile(xs []float64, q float64) float64 {
	pos := q * float64(len(xs)-1)
	i := int(math.Floor(pos))
	if i+1 >= len(xs) {
		return xs[len(xs)-1]
	}
	f := pos - float64(i)
	return xs[i]*(1-f) + xs[i+1]*f
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
