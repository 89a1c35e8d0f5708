package align

import (
	"context"
	"fmt"
)

// Losses that read the prompt's log-probs (ORPO with include_prompt) get them from the Policy
// without a new interface: each pair's prompt is scored as one more pair whose "chosen" completion
// is the prompt after its first token (BOS) and whose "rejected" is a one-token stand-in with
// coefficient 0. Prompt tokens depend only on earlier prompt tokens, so this is exactly log π of the
// prompt as it appears before the completion.

// withPromptPairs returns the batch followed by one scoring pair per prompt of >= 2 tokens, and for
// each pair the index of its scoring pair (-1 when the prompt has a single token).
func withPromptPairs(batch []TokenizedPair) ([]TokenizedPair, []int) {
	out := append([]TokenizedPair(nil), batch...)
	idx := make([]int, len(batch))
	for i, p := range batch {
		idx[i] = -1
		if len(p.Prompt) >= 2 {
			idx[i] = len(out)
			out = append(out, TokenizedPair{Line: p.Line, Prompt: p.Prompt[:1], Chosen: p.Prompt[1:], Rejected: p.Prompt[1:2]})
		}
	}
	return out, idx
}

// promptLogps joins policy log-probs of an extended batch (withPromptPairs) into the batch's
// PairLogps, filling PolicyPrompt and PromptTokens.
func promptLogps(batch []TokenizedPair, refs []RefLogps, idx, promptIdx []int, chosen, rejected []float64) ([]PairLogps, error) {
	n := len(batch)
	want := n
	for _, j := range promptIdx {
		if j >= 0 {
			want++
		}
	}
	if len(chosen) != want || len(rejected) != want {
		return nil, fmt.Errorf("policy returned %d/%d log-probs for %d pairs and %d prompts", len(chosen), len(rejected), n, want-n)
	}
	pl, err := pairLogps(batch, refs, idx, chosen[:n], rejected[:n])
	if err != nil {
		return nil, err
	}
	for i, j := range promptIdx {
		if j >= 0 {
			pl[i].PolicyPrompt, pl[i].PromptTokens = chosen[j], len(batch[i].Prompt)-1
		}
	}
	return pl, nil
}

// promptGrads spreads the per-pair gradients over the extended batch: the prompt coefficient goes
// to the scoring pair's chosen side.
func promptGrads(g []PairGrad, promptIdx []int, extended int) []PairGrad {
	out := make([]PairGrad, extended)
	copy(out, g)
	for i, j := range promptIdx {
		out[i].Prompt = 0
		if j >= 0 {
			out[j].Chosen = g[i].Prompt
		}
	}
	return out
}

// forwardLogps returns the PairLogps of a batch under the current policy (forward only), with the
// prompt's log-probs when withPrompt is set.
func forwardLogps(ctx context.Context, policy Policy, batch []TokenizedPair, refs []RefLogps, idx []int, withPrompt bool) ([]PairLogps, error) {
	fwd, promptIdx := batch, []int(nil)
	if withPrompt {
		fwd, promptIdx = withPromptPairs(batch)
	}
	chosen, rejected, err := policy.Forward(ctx, fwd)
	if err != nil {
		return nil, err
	}
	if withPrompt {
		return promptLogps(batch, refs, idx, promptIdx, chosen, rejected)
	}
	return pairLogps(batch, refs, idx, chosen, rejected)
}
