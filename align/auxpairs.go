package align

import (
	"context"
	"fmt"
)

// Some losses read log-probs beyond the completions' sums: ORPO with include_prompt the prompt's,
// LD-DPO the completions' shared prefixes. The Policy provides them without a new interface: the
// batch is extended with auxiliary pairs, scored like any pair, whose gradient coefficients carry
// the loss's derivatives with respect to those log-probs.
//   - prompt pair: "chosen" is the prompt after its first token (BOS) given that token, "rejected" a
//     one-token stand-in with coefficient 0. Prompt tokens depend only on earlier prompt tokens, so
//     this is exactly log π of the prompt as it appears before the completion.
//   - shared pair: both completions cut to the shorter one's length (SharedPrefixPairs).

// auxLayout records where each pair's auxiliary pairs sit in the extended batch (-1: none).
type auxLayout struct {
	n              int
	prompt, shared []int
}

// extendBatch returns the batch followed by its auxiliary pairs.
func extendBatch(batch []TokenizedPair, prompt, shared bool) ([]TokenizedPair, auxLayout) {
	out := append([]TokenizedPair(nil), batch...)
	lay := auxLayout{n: len(batch)}
	if prompt {
		lay.prompt = make([]int, len(batch))
		for i, p := range batch {
			lay.prompt[i] = -1
			if len(p.Prompt) >= 2 {
				lay.prompt[i] = len(out)
				out = append(
					out,
					TokenizedPair{Line: p.Line, Prompt: p.Prompt[:1], Chosen: p.Prompt[1:], Rejected: p.Prompt[1:2]},
				)
			}
		}
	}
	if shared {
		lay.shared = make([]int, len(batch))
		for i, sp := range SharedPrefixPairs(batch) {
			lay.shared[i] = len(out)
			out = append(out, sp)
		}
	}
	return out, lay
}

// logps joins the policy log-probs of an extended batch into the batch's PairLogps.
func (a auxLayout) logps(
	batch []TokenizedPair,
	refs []RefLogps,
	idx []int,
	chosen, rejected []float64,
) ([]PairLogps, error) {
	want := a.n
	for _, js := range [][]int{a.prompt, a.shared} {
		for _, j := range js {
			if j >= 0 {
				want++
			}
		}
	}
	if len(chosen) != want || len(rejected) != want {
		return nil, fmt.Errorf(
			"policy returned %d/%d log-probs for %d pairs and %d auxiliary sequences",
			len(chosen),
			len(rejected),
			a.n,
			want-a.n,
		)
	}
	pl, err := pairLogps(batch, refs, idx, chosen[:a.n], rejected[:a.n])
	if err != nil {
		return nil, err
	}
	for i, j := range a.prompt {
		if j >= 0 {
			pl[i].PolicyPrompt, pl[i].PromptTokens = chosen[j], len(batch[i].Prompt)-1
		}
	}
	for i, j := range a.shared {
		pl[i].PolicyChosenShared, pl[i].PolicyRejectedShared = chosen[j], rejected[j]
	}
	return pl, nil
}

// grads spreads the per-pair gradients over the extended batch.
func (a auxLayout) grads(g []PairGrad, extended int) []PairGrad {
	out := make([]PairGrad, extended)
	for i := range g {
		out[i] = PairGrad{Chosen: g[i].Chosen, Rejected: g[i].Rejected}
	}
	for i, j := range a.prompt {
		if j >= 0 {
			out[j].Chosen = g[i].Prompt
		}
	}
	for i, j := range a.shared {
		out[j].Chosen, out[j].Rejected = g[i].ChosenShared, g[i].RejectedShared
	}
	return out
}

// forwardLogps returns the PairLogps of a batch under the current policy (forward only), with the
// auxiliary log-probs the loss reads.
func forwardLogps(
	ctx context.Context,
	policy Policy,
	loss Loss,
	batch []TokenizedPair,
	refs []RefLogps,
	idx []int,
) ([]PairLogps, error) {
	ext, lay := extendBatch(batch, needsPromptLogps(loss), needsSharedLogps(loss))
	chosen, rejected, err := policy.Forward(ctx, ext)
	if err != nil {
		return nil, err
	}
	return lay.logps(batch, refs, idx, chosen, rejected)
}
