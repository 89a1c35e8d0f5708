package llama

import (
	"context"
	"fmt"
	"strings"
)

// GenRequest is one prompt to continue.
type GenRequest struct {
	Prompt    []Token
	MaxTokens int
	// Stop ends generation when the text contains one of these strings (the stop string is cut off).
	Stop     []string
	Sampling Sampling
}

// Stop reasons of a GenResult.
const (
	StopEOS    = "eos"
	StopString = "stop"
	StopLength = "length"
)

// GenResult is a finished generation.
type GenResult struct {
	Tokens     []Token `json:"tokens"`
	Text       string  `json:"text"`
	StopReason string  `json:"stop_reason"`
}

// GenerateOptions configure Generate.
type GenerateOptions struct {
	// Parallel is the most sequences decoded together (default and maximum: the context's NSeq).
	Parallel int
	// OnToken, if set, is called for every generated token with its request index and text piece.
	OnToken func(req int, tok Token, piece string)
	// OnDone, if set, is called when a request finishes, in completion order.
	OnDone func(req int, res GenResult)
}

// genSlot is the state of one request being decoded.
type genSlot struct {
	req      int
	seq      int
	pending  []Token // tokens to feed, in order
	pos      int     // position of pending[0]
	tokens   []Token
	text     strings.Builder
	sampler  *sampler
	done     bool
	reason   string
	maxStop  int
	reserved int
}

// Generate continues every request with continuous batching: up to Parallel sequences share each
// decode; a finished sequence's slot is refilled with the next request. Results are in request order.
// Greedy results do not depend on Parallel.
func (c *Context) Generate(ctx context.Context, reqs []GenRequest, opts GenerateOptions) ([]GenResult, error) {
	if c.c == nil {
		return nil, ErrClosed
	}
	defer c.abortOn(ctx)()
	parallel := opts.Parallel
	if parallel <= 0 || parallel > c.nSeq {
		parallel = c.nSeq
	}
	for i, r := range reqs {
		if len(r.Prompt) == 0 {
			return nil, fmt.Errorf("generate request %d: %w: empty prompt", i, ErrInvalidArgument)
		}
		if r.MaxTokens <= 0 {
			return nil, fmt.Errorf("generate request %d: %w: max tokens %d, want > 0", i, ErrInvalidArgument, r.MaxTokens)
		}
		if err := c.model.checkTokens(r.Prompt); err != nil {
			return nil, fmt.Errorf("generate request %d: %w", i, err)
		}
		if err := r.Sampling.Validate(); err != nil {
			return nil, fmt.Errorf("generate request %d: %w", i, err)
		}
		if need := len(r.Prompt) + r.MaxTokens; need > c.nCtx {
			return nil, fmt.Errorf("generate request %d: %w: prompt %d + max tokens %d = %d cells, context has %d", i, ErrContextOverflow, len(r.Prompt), r.MaxTokens, need, c.nCtx)
		}
	}
	c.clearMemory()
	defer c.clearMemory()
	results := make([]GenResult, len(reqs))
	slots := make([]*genSlot, parallel)
	nextReq, finished, usedCells := 0, 0, 0
	for finished < len(reqs) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Admit waiting requests into free slots while their worst-case cells fit.
		for s := range slots {
			if slots[s] != nil || nextReq >= len(reqs) {
				continue
			}
			r := reqs[nextReq]
			need := len(r.Prompt) + r.MaxTokens
			if usedCells+need > c.nCtx {
				break
			}
			sl := &genSlot{req: nextReq, seq: s, pending: append([]Token(nil), r.Prompt...), sampler: newSampler(r.Sampling), reserved: need}
			for _, st := range r.Stop {
				sl.maxStop = max(sl.maxStop, len(st))
			}
			slots[s] = sl
			usedCells += need
			nextReq++
		}
		// One batch: pending tokens of every active slot, up to NBatch tokens.
		var toks []batchToken
		var owner []*genSlot
		for _, sl := range slots {
			if sl == nil {
				continue
			}
			room := c.nBatch - len(toks)
			if room <= 0 {
				break
			}
			n := min(room, len(sl.pending))
			for k := 0; k < n; k++ {
				toks = append(toks, batchToken{tok: sl.pending[k], pos: sl.pos + k, seq: sl.seq, logits: k == len(sl.pending)-1})
				owner = append(owner, sl)
			}
			sl.pending = sl.pending[n:]
			sl.pos += n
		}
		if len(toks) == 0 {
			return nil, fmt.Errorf("generate: %w: no request fits the context", ErrContextOverflow)
		}
		var cbErr error
		err := c.decode(toks, func(i int, row []float32) {
			sl := owner[i]
			tok := sl.sampler.sample(row)
			r := reqs[sl.req]
			if c.model.IsEOG(tok) {
				sl.done, sl.reason = true, StopEOS
				return
			}
			piece, err := c.model.TokenPiece(tok)
			if err != nil {
				cbErr = err
				return
			}
			sl.tokens = append(sl.tokens, tok)
			before := sl.text.Len()
			sl.text.WriteString(piece)
			if opts.OnToken != nil {
				opts.OnToken(sl.req, tok, piece)
			}
			if sl.maxStop > 0 {
				text := sl.text.String()
				from := max(0, before-sl.maxStop)
				for _, st := range r.Stop {
					if st == "" {
						continue
					}
					if k := strings.Index(text[from:], st); k >= 0 {
						cut := text[:from+k]
						sl.text.Reset()
						sl.text.WriteString(cut)
						sl.done, sl.reason = true, StopString
						return
					}
				}
			}
			if len(sl.tokens) >= r.MaxTokens {
				sl.done, sl.reason = true, StopLength
				return
			}
			sl.pending = append(sl.pending, tok)
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if cbErr != nil {
			return nil, cbErr
		}
		for s, sl := range slots {
			if sl == nil || !sl.done {
				continue
			}
			res := GenResult{Tokens: sl.tokens, Text: sl.text.String(), StopReason: sl.reason}
			results[sl.req] = res
			if opts.OnDone != nil {
				opts.OnDone(sl.req, res)
			}
			c.removeSeq(sl.seq)
			usedCells -= sl.reserved
			slots[s] = nil
			finished++
		}
	}
	return results, nil
}
