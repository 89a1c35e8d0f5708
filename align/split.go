package align

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// SplitEval holds out round(fraction·N) examples (at least one when fraction > 0) for evaluation,
// chosen by a PCG seeded with seed: the same data, fraction and seed always give the same split.
// Both parts keep the original file order.
func SplitEval(
	examples []PreferenceExample,
	fraction float64,
	seed uint64,
) (train, eval []PreferenceExample, err error) {
	if !isFinite(fraction) || fraction < 0 || fraction >= 1 {
		return nil, nil, fmt.Errorf("eval split: fraction must be in [0, 1), got %v", fraction)
	}
	n := len(examples)
	nEval := int(math.Round(fraction * float64(n)))
	if fraction > 0 && nEval == 0 {
		nEval = 1
	}
	if nEval == 0 {
		return append([]PreferenceExample(nil), examples...), nil, nil
	}
	if nEval >= n {
		return nil, nil, fmt.Errorf(
			"eval split: %d examples are too few to hold out %d for evaluation and keep some for training",
			n,
			nEval,
		)
	}
	perm := rand.New(rand.NewPCG(seed, 0x65766173706c6974)).Perm(n) // "evasplit"
	held := perm[:nEval]
	sort.Ints(held)
	isEval := make([]bool, n)
	for _, i := range held {
		isEval[i] = true
	}
	for i, ex := range examples {
		if isEval[i] {
			eval = append(eval, ex)
		} else {
			train = append(train, ex)
		}
	}
	return train, eval, nil
}
