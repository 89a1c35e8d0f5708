package ches

import (
	"fmt"
	"math"
	"sort"
)

// Score is one pair's CHES score from the summed hidden states of its chosen (hw) and rejected (hl)
// completions: ⟨hw, hl⟩ − ‖hw‖². Normalized divides each sum by its completion's token count first
// (the length-normalized variant of the paper's code).
type Score struct {
	CHES       float64
	Normalized float64
}

// FromSums computes the scores from the hidden-state sums and the completions' token counts.
func FromSums(hw, hl []float64, nw, nl int) (Score, error) {
	if len(hw) == 0 || len(hw) != len(hl) {
		return Score{}, fmt.Errorf("ches: hidden sums of sizes %d and %d", len(hw), len(hl))
	}
	if nw <= 0 || nl <= 0 {
		return Score{}, fmt.Errorf("ches: token counts must be > 0, got %d and %d", nw, nl)
	}
	var dot, sq, dotN, sqN float64
	fw, fl := 1/float64(nw), 1/float64(nl)
	for i := range hw {
		dot += hw[i] * hl[i]
		sq += hw[i] * hw[i]
		dotN += hw[i] * fw * hl[i] * fl
		sqN += hw[i] * fw * hw[i] * fw
	}
	s := Score{CHES: dot - sq, Normalized: dotN - sqN}
	if math.IsNaN(s.CHES) || math.IsInf(s.CHES, 0) || math.IsNaN(s.Normalized) || math.IsInf(s.Normalized, 0) {
		return Score{}, fmt.Errorf("ches: score is not finite (%v, %v)", s.CHES, s.Normalized)
	}
	return s, nil
}

// KeepLowest returns the indices (ascending) of the share keep in (0, 1] of the scores with the lowest
// values (ties broken by index): the paper filters out the pairs with the highest CHES.
func KeepLowest(scores []float64, keep float64) ([]int, error) {
	if !(keep > 0 && keep <= 1) {
		return nil, fmt.Errorf("ches: the share to keep must be in (0, 1], got %v", keep)
	}
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return scores[order[a]] < scores[order[b]] })
	n := int(math.Round(keep * float64(len(scores))))
	if n == 0 && len(scores) > 0 {
		n = 1
	}
	kept := append([]int(nil), order[:n]...)
	sort.Ints(kept)
	return kept, nil
}
