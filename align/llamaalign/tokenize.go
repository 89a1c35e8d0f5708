package llamaalign

import (
	"context"
	"fmt"
	"slices"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/llama"
)

// renderPrompt turns a prompt into the exact text the model sees, and reports whether a chat
// template was applied.
func renderPrompt(m *llama.Model, tmpl align.PromptTemplate, raw string, msgs []align.Message) (string, bool, error) {
	if msgs == nil {
		return raw, false, nil
	}
	lm := make([]llama.Message, len(msgs))
	for i, msg := range msgs {
		lm[i] = llama.Message{Role: msg.Role, Content: msg.Content}
	}
	text, err := m.ApplyChatTemplate(string(tmpl), lm, true)
	return text, true, err
}

// encodePrompt tokenizes a rendered prompt with BOS (if the model adds one) and special tokens parsed.
func encodePrompt(m *llama.Model, text string, templated bool) ([]int32, error) {
	toks, err := m.Tokenize(text, true, templated)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		if b := m.BOS(); b >= 0 {
			return []int32{b}, nil
		}
		return nil, fmt.Errorf("empty prompt and the model has no BOS token")
	}
	return toks, nil
}

// prompt is a rendered, tokenized prompt.
type prompt struct {
	text      string
	templated bool
	tokens    []int32
	end       int32 // the token that ends a completion
}

// promptTokens renders and tokenizes one prompt.
func promptTokens(m *llama.Model, tmpl align.PromptTemplate, raw string, msgs []align.Message, line int) (prompt, error) {
	text, templated, err := renderPrompt(m, tmpl, raw, msgs)
	if err != nil {
		return prompt{}, fmt.Errorf("line %d: %w", line, err)
	}
	p, err := encodePrompt(m, text, templated)
	if err != nil {
		return prompt{}, fmt.Errorf("line %d: prompt: %w", line, err)
	}
	return prompt{text: text, templated: templated, tokens: p, end: endToken(m, templated)}, nil
}

// completion tokenizes a completion as the continuation of the prompt: prompt+completion is tokenized
// as one text and the prompt's tokens are cut off, so the completion's tokens are the ones the model
// sees after that prompt (tokenizing " Tom" alone with a SentencePiece vocabulary would add a second
// space token). When the prompt's tokens are not a prefix of the whole (a merge across the boundary),
// the completion is tokenized on its own.
func (p prompt) completion(m *llama.Model, text string) ([]int32, error) {
	whole, err := m.Tokenize(p.text+text, true, p.templated)
	if err != nil {
		return nil, err
	}
	if len(whole) > len(p.tokens) && slices.Equal(whole[:len(p.tokens)], p.tokens) {
		return whole[len(p.tokens):], nil
	}
	return m.Tokenize(text, false, false)
}

// endToken is appended to completions: the end-of-turn token after a chat template (when the model
// has one), otherwise EOS.
func endToken(m *llama.Model, templated bool) int32 {
	if templated && m.EOT() >= 0 {
		return m.EOT()
	}
	return m.EOS()
}

// TokenizePreferences applies the prompt template, tokenizes prompts and completions (EOS appended)
// and truncates as configured. Pairs whose completions are identical after truncation are an error
// naming the line.
func TokenizePreferences(
	m *llama.Model,
	ex []align.PreferenceExample,
	tmpl align.PromptTemplate,
	trunc align.Truncation,
) ([]align.TokenizedPair, int, error) {
	out := make([]align.TokenizedPair, 0, len(ex))
	truncated := 0
	for _, e := range ex {
		p, err := promptTokens(m, tmpl, e.Prompt, e.PromptMessages, e.Line)
		if err != nil {
			return nil, 0, err
		}
		c, err := p.completion(m, e.Chosen)
		if err != nil {
			return nil, 0, fmt.Errorf("line %d: chosen: %w", e.Line, err)
		}
		r, err := p.completion(m, e.Rejected)
		if err != nil {
			return nil, 0, fmt.Errorf("line %d: rejected: %w", e.Line, err)
		}
		pair := align.TokenizedPair{Line: e.Line, Prompt: p.tokens, Chosen: append(c, p.end), Rejected: append(r, p.end)}
		pair, cut, err := trunc.Apply(pair)
		if err != nil {
			return nil, 0, err
		}
		if cut {
			truncated++
		}
		out = append(out, pair)
	}
	return out, truncated, nil
}

// ReferenceLogps scores every pair's completions with the base model through llama.cpp (adapter off),
// sharing each prompt between its two completions. onDone, if set, is called with the pairs done so far.
func ReferenceLogps(
	ctx context.Context,
	m *llama.Model,
	pairs []align.TokenizedPair,
	threads int,
	onDone func(done int),
) ([]align.RefLogps, error) {
	longest := 0
	for _, p := range pairs {
		longest = max(longest, len(p.Prompt)+len(p.Chosen)+len(p.Rejected))
	}
	nctx := max(2048, longest)
	lc, err := llama.NewContext(m, llama.ContextOptions{NCtx: nctx, NSeq: 48, NBatch: 512, Threads: threads})
	if err != nil {
		return nil, fmt.Errorf("reference log-probs: %w", err)
	}
	defer lc.Close()
	out := make([]align.RefLogps, 0, len(pairs))
	const chunk = align.ReferenceBatch
	for lo := 0; lo < len(pairs); lo += chunk {
		hi := min(lo+chunk, len(pairs))
		reqs := make([]llama.ScoreRequest, 0, hi-lo)
		for _, p := range pairs[lo:hi] {
			reqs = append(
				reqs,
				llama.ScoreRequest{Prompt: p.Prompt, Completions: [][]llama.Token{p.Chosen, p.Rejected}},
			)
		}
		res, err := lc.Score(ctx, reqs)
		if err != nil {
			return nil, fmt.Errorf("reference log-probs (pairs from line %d): %w", pairs[lo].Line, err)
		}
		for _, r := range res {
			out = append(out, align.RefLogps{Chosen: r[0].Sum, Rejected: r[1].Sum})
		}
		if onDone != nil {
			onDone(hi)
		}
	}
	return out, nil
}

// TokenizeSFT turns examples into training sequences (EOS appended), cutting each to maxLen tokens
// when maxLen > 0 (the completion keeps its start); it returns how many were cut.
func TokenizeSFT(m *llama.Model, ex []align.SFTExample, tmpl align.PromptTemplate, maxLen int) ([]align.TokenSeq, int, error) {
	out := make([]align.TokenSeq, 0, len(ex))
	cut := 0
	for _, e := range ex {
		pr, err := promptTokens(m, tmpl, e.Prompt, e.PromptMessages, e.Line)
		if err != nil {
			return nil, 0, err
		}
		c, err := pr.completion(m, e.Completion)
		if err != nil {
			return nil, 0, fmt.Errorf("line %d: completion: %w", e.Line, err)
		}
		p := pr.tokens
		toks := append(append(append([]int32(nil), p...), c...), pr.end)
		if maxLen > 0 && len(toks) > maxLen {
			if len(p) >= maxLen {
				return nil, 0, fmt.Errorf(
					"line %d: prompt has %d tokens, max length %d leaves no completion",
					e.Line,
					len(p),
					maxLen,
				)
			}
			toks = toks[:maxLen]
			cut++
		}
		out = append(out, align.TokenSeq{Prompt: toks[:len(p)], Completion: toks[len(p):]})
	}
	return out, cut, nil
}
