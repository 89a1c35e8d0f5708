// Package llamagen implements eval.Generator with the llama.cpp bridge. It is a separate package so
// that package eval stays pure Go (its tests and fuzz targets need no cgo build).
package llamagen

import (
	"context"
	"fmt"

	"github.com/bpo-dev/bpo/eval"
	"github.com/bpo-dev/bpo/eval/bench"
	"github.com/bpo-dev/bpo/llama"
)

// Generator is the eval.Generator of the llama.cpp bridge: prompts are rendered (chat template for
// message prompts, raw text otherwise), and all completions are decoded with continuous batching
// over Parallel sequences of one context.
type Generator struct {
	Model *llama.Model
	Ctx   *llama.Context
	// Template names the chat template for message prompts ("" = the model's own).
	Template string
	// Parallel is the number of sequences decoded together (<= the context's NSeq).
	Parallel int
	// DefaultMaxNewTokens applies when a request's MaxNewTokens is 0.
	DefaultMaxNewTokens int
}

// RenderPrompt returns the token ids of a prompt as the model sees it.
func (g *Generator) RenderPrompt(p bench.Prompt) ([]llama.Token, error) {
	if len(p.Messages) > 0 {
		msgs := make([]llama.Message, len(p.Messages))
		for i, m := range p.Messages {
			msgs[i] = llama.Message{Role: m.Role, Content: m.Content}
		}
		text, err := g.Model.ApplyChatTemplate(g.Template, msgs, true)
		if err != nil {
			return nil, err
		}
		return g.Model.Tokenize(text, true, true)
	}
	return g.Model.Tokenize(p.Text, true, false)
}

// Generate implements eval.Generator. Completion j of request r samples with seed
// eval.SampleSeed(Seed, r.ID, j), so results do not depend on scheduling, batching or resumption.
func (g *Generator) Generate(
	ctx context.Context,
	reqs []eval.GenRequest,
	onDone func(i int, res eval.GenResult),
) error {
	type origin struct{ req, sample int }
	var subs []llama.GenRequest
	var from []origin
	results := make([]eval.GenResult, len(reqs))
	remaining := make([]int, len(reqs))
	for i, r := range reqs {
		n := max(r.Params.N, 1)
		toks, err := g.RenderPrompt(r.Prompt)
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		maxNew := r.Params.MaxNewTokens
		if maxNew <= 0 {
			maxNew = g.DefaultMaxNewTokens
		}
		if room := g.Ctx.NCtx() - len(toks); maxNew > room {
			maxNew = room
		}
		results[i] = eval.GenResult{
			Texts:        make([]string, n),
			Tokens:       make([]int, n),
			StopReasons:  make([]string, n),
			PromptTokens: len(toks),
		}
		remaining[i] = n
		if maxNew <= 0 {
			results[i].Err = fmt.Errorf(
				"%w: prompt of %d tokens fills the %d-token context",
				llama.ErrContextOverflow,
				len(toks),
				g.Ctx.NCtx(),
			)
			continue
		}
		for j := 0; j < n; j++ {
			subs = append(subs, llama.GenRequest{Prompt: toks, MaxTokens: maxNew, Stop: r.Params.Stop,
				Sampling: llama.Sampling{
					Temperature: float64(r.Params.Temperature),
					TopP:        float64(r.Params.TopP),
					TopK:        r.Params.TopK,
					Seed:        eval.SampleSeed(r.Params.Seed, r.ID, j),
				}})
			from = append(from, origin{i, j})
		}
	}
	for i := range reqs {
		if results[i].Err != nil {
			onDone(i, results[i])
		}
	}
	_, err := g.Ctx.Generate(
		ctx,
		subs,
		llama.GenerateOptions{Parallel: g.Parallel, OnDone: func(k int, res llama.GenResult) {
			o := from[k]
			results[o.req].Texts[o.sample] = res.Text
			results[o.req].Tokens[o.sample] = len(res.Tokens)
			results[o.req].StopReasons[o.sample] = res.StopReason
			remaining[o.req]--
			if remaining[o.req] == 0 {
				onDone(o.req, results[o.req])
			}
		}},
	)
	return err
}
