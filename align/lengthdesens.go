package align

import (
	"fmt"
	"math"
)

// Length desensitization (LD-DPO, Liu et al. 2024, TRL's ld_alpha): every completion log-prob, of the
// policy and of the reference, becomes logp_shared + alpha·(logp - logp_shared), logp_shared summing
// the first min(|y_w|, |y_l|) tokens of the completion, so that the tokens by which the longer
// completion exceeds the shorter count only alpha times. The transformed pairs then go to the loss.

// ldTransform returns the pairs with length-desensitized log-probs.
func ldTransform(batch []PairLogps, alpha float64) ([]PairLogps, error) {
	out := make([]PairLogps, len(batch))
	for i, p := range batch {
		for _, v := range []float64{p.PolicyChosenShared, p.PolicyRejectedShared, p.RefChosenShared, p.RefRejectedShared} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("pair %d: shared-prefix log-probs are not finite (%v)", i, v)
			}
		}
		mix := func(full, shared float64) float64 { return shared + alpha*(full-shared) }
		q := p
		q.PolicyChosen, q.PolicyRejected = mix(
			p.PolicyChosen,
			p.PolicyChosenShared,
		), mix(
			p.PolicyRejected,
			p.PolicyRejectedShared,
		)
		q.RefChosen, q.RefRejected = mix(p.RefChosen, p.RefChosenShared), mix(p.RefRejected, p.RefRejectedShared)
		out[i] = q
	}
	return out, nil
}

// ldGrads turns gradients with respect to the transformed log-probs into gradients with respect to
// the full and the shared-prefix log-probs.
func ldGrads(g []PairGrad, alpha float64) []PairGrad {
	out := make([]PairGrad, len(g))
	for i, x := range g {
		out[i] = PairGrad{
			Chosen: alpha * x.Chosen, Rejected: alpha * x.Rejected, Prompt: x.Prompt,
			ChosenShared: (1 - alpha) * x.Chosen, RejectedShared: (1 - alpha) * x.Rejected,
		}
	}
	return out
}

// SharedPrefixPairs returns, for each pair, the pair whose completions are cut to the shorter one's
// length: scored by a model, its log-probs are LD-DPO's shared parts (the tokens of a completion
// depend only on earlier ones, so a prefix scores as it does inside the whole completion).
func SharedPrefixPairs(pairs []TokenizedPair) []TokenizedPair {
	out := make([]TokenizedPair, len(pairs))
	for i, p := range pairs {
		n := min(len(p.Chosen), len(p.Rejected))
		out[i] = TokenizedPair{Line: p.Line, Prompt: p.Prompt, Chosen: p.Chosen[:n], Rejected: p.Rejected[:n]}
	}
	return out
}
