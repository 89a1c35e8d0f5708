package llama

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// ScoreRequest asks for the log-probs of one or more completions of a shared prompt. The prompt is
// decoded once and its KV cells are shared by the completions (e.g. a preference pair's chosen and
// rejected answers).
type ScoreRequest struct {
	// Prompt is the conditioning context; it must hold at least one token (e.g. BOS).
	Prompt []Token
	// Completions are scored token by token given Prompt.
	Completions [][]Token
}

// CompletionScore holds log p(c_t | prompt, c_<t) for every completion token.
type CompletionScore struct {
	LogProbs []float64
	// Sum is the sum of LogProbs: the sequence log-likelihood.
	Sum float64
}

// Score computes per-token log-probs for many requests, packing as many as fit into each decode
// (n_ctx cells, NSeq sequences, NBatch tokens per call). Results are in request order.
func (c *Context) Score(ctx context.Context, reqs []ScoreRequest) ([][]CompletionScore, error) {
	if c.c == nil {
		return nil, ErrClosed
	}
	for i, r := range reqs {
		if len(r.Prompt) == 0 {
			return nil, fmt.Errorf("score request %d: %w: empty prompt (put at least BOS in it)", i, ErrInvalidArgument)
		}
		if err := c.model.checkTokens(r.Prompt); err != nil {
			return nil, fmt.Errorf("score request %d prompt: %w", i, err)
		}
		cells := len(r.Prompt)
		for j, comp := range r.Completions {
			if err := c.model.checkTokens(comp); err != nil {
				return nil, fmt.Errorf("score request %d completion %d: %w", i, j, err)
			}
			cells += len(comp)
		}
		if cells > c.nCtx {
			return nil, fmt.Errorf("score request %d: %w: needs %d KV cells (prompt %d + completions), context has %d", i, ErrContextOverflow, cells, len(r.Prompt), c.nCtx)
		}
		if need := seqsNeeded(r); need > c.nSeq {
			return nil, fmt.Errorf("score request %d: %w: %d completions need %d sequences, context has %d", i, ErrInvalidArgument, len(r.Completions), need, c.nSeq)
		}
	}
	defer c.abortOn(ctx)()
	out := make([][]CompletionScore, len(reqs))
	for start := 0; start < len(reqs); {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end, cells, seqs := start, 0, 0
		for end < len(reqs) {
			need := len(reqs[end].Prompt)
			for _, comp := range reqs[end].Completions {
				need += len(comp)
			}
			if cells+need > c.nCtx || seqs+seqsNeeded(reqs[end]) > c.nSeq {
				break
			}
			cells += need
			seqs += seqsNeeded(reqs[end])
			end++
		}
		if err := c.scoreWave(reqs[start:end], out[start:end]); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		start = end
	}
	for i, r := range out {
		for j, cs := range r {
			if k := slices.IndexFunc(cs.LogProbs, func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }); k >= 0 {
				return nil, fmt.Errorf("score request %d completion %d token %d: %w: log-prob %v (corrupt weights or adapter?)", i, j, k, ErrNotFinite, cs.LogProbs[k])
			}
		}
	}
	return out, nil
}

// scoreWave scores requests that fit into the KV cache together.
func (c *Context) scoreWave(reqs []ScoreRequest, out [][]CompletionScore) error {
	c.clearMemory()
	defer c.clearMemory()
	type slot struct{ req, comp int } // comp -1 is the prompt sequence
	var toks []batchToken
	var owners []slot
	seq := 0
	promptSeq := make([]int, len(reqs))
	for i, r := range reqs {
		out[i] = make([]CompletionScore, len(r.Completions))
		promptSeq[i] = seq
		for p, t := range r.Prompt {
			toks = append(toks, batchToken{tok: t, pos: p, seq: seq, logits: p == len(r.Prompt)-1})
			owners = append(owners, slot{i, -1})
		}
		seq += seqsNeeded(r)
	}
	if err := c.decodeChunks(toks, func(k int, row []float32) {
		o := owners[k]
		// The last prompt row predicts the first token of every completion.
		for j, comp := range reqs[o.req].Completions {
			if len(comp) > 0 {
				out[o.req][j].LogProbs = append(out[o.req][j].LogProbs, logSoftmaxAt(row, comp[0]))
			}
		}
	}); err != nil {
		return err
	}
	toks, owners = toks[:0], owners[:0]
	for i, r := range reqs {
		for j, comp := range r.Completions {
			s := promptSeq[i]
			if len(r.Completions) > 1 {
				s += 1 + j
				c.copySeq(promptSeq[i], s, len(r.Prompt))
			}
			for p, t := range comp {
				toks = append(toks, batchToken{tok: t, pos: len(r.Prompt) + p, seq: s, logits: p < len(comp)-1})
				owners = append(owners, slot{i, j})
			}
		}
	}
	// Position of each token inside its completion, to find the next token to score.
	next := make([]int, len(toks))
	for k := range toks {
		if k > 0 && owners[k] == owners[k-1] {
			next[k] = next[k-1] + 1
		} else {
			next[k] = 1
		}
	}
	if err := c.decodeChunks(toks, func(k int, row []float32) {
		o := owners[k]
		comp := reqs[o.req].Completions[o.comp]
		out[o.req][o.comp].LogProbs = append(out[o.req][o.comp].LogProbs, logSoftmaxAt(row, comp[next[k]]))
	}); err != nil {
		return err
	}
	for i := range out {
		for j := range out[i] {
			s := 0.0
			for _, lp := range out[i][j].LogProbs {
				s += lp
			}
			out[i][j].Sum = s
		}
	}
	return nil
}

// seqsNeeded is the number of sequences a request occupies: a single completion continues the
// prompt's own sequence; several share the prompt's cells through copies of it.
func seqsNeeded(r ScoreRequest) int {
	if len(r.Completions) <= 1 {
		return 1
	}
	return 1 + len(r.Completions)
}

// decodeChunks decodes toks in chunks of at most NBatch tokens; onLogits gets indices into toks.
func (c *Context) decodeChunks(toks []batchToken, onLogits func(k int, row []float32)) error {
	for start := 0; start < len(toks); start += c.nBatch {
		end := min(start+c.nBatch, len(toks))
		if err := c.decode(toks[start:end], func(i int, row []float32) { onLogits(start+i, row) }); err != nil {
			return err
		}
	}
	return nil
}

// TokenLogProbs returns log p(toks[i] | toks[:i]) for i >= 1 (len(toks)-1 values).
func (c *Context) TokenLogProbs(ctx context.Context, toks []Token) ([]float64, error) {
	if len(toks) < 2 {
		return nil, fmt.Errorf("token log-probs: %w: need at least 2 tokens, got %d", ErrInvalidArgument, len(toks))
	}
	res, err := c.Score(ctx, []ScoreRequest{{Prompt: toks[:1], Completions: [][]Token{toks[1:]}}})
	if err != nil {
		return nil, err
	}
	return res[0][0].LogProbs, nil
}
