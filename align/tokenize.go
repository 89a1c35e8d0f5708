package align

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/bpo-dev/bpo/nn"

	"github.com/bpo-dev/bpo/llama"
)

// PromptTemplate selects how prompts become text: "" uses the model's own chat template for
// conversational prompts (raw text prompts are used as they are, as TRL does); a built-in name such as
// "chatml" or "llama3" forces that template for conversational prompts.
type PromptTemplate string

// renderPrompt turns a prompt into the exact text the model sees, and reports whether a chat
// template was applied.
func renderPrompt(m *llama.Model, tmpl PromptTemplate, raw string, msgs []Message) (string, bool, error) {
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
func promptTokens(m *llama.Model, tmpl PromptTemplate, raw string, msgs []Message, line int) (prompt, error) {
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
	ex []PreferenceExample,
	tmpl PromptTemplate,
	trunc Truncation,
) ([]TokenizedPair, int, error) {
	out := make([]TokenizedPair, 0, len(ex))
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
		pair := TokenizedPair{Line: e.Line, Prompt: p.tokens, Chosen: append(c, p.end), Rejected: append(r, p.end)}
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
	pairs []TokenizedPair,
	threads int,
	onDone func(done int),
) ([]RefLogps, error) {
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
	out := make([]RefLogps, 0, len(pairs))
	const chunk = refChunk
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
			out = append(out, RefLogps{Chosen: r[0].Sum, Rejected: r[1].Sum})
		}
		if onDone != nil {
			onDone(hi)
		}
	}
	return out, nil
}

// SFTExample is one supervised example: a prompt (raw text or chat messages) and its completion.
type SFTExample struct {
	Line           int
	Prompt         string
	PromptMessages []Message
	Completion     string
}

// LoadSFT reads supervised examples from JSONL. Each line is one of:
// {"prompt": "...", "completion": "..."}; {"text": "..."} (completion of an empty prompt);
// {"question": "...", "answer": "..."} (GSM8K style, prompt "Question: q\nAnswer:", completion " a");
// {"messages": [{"role","content"}...]} ending with an assistant message (the completion).
// Every malformed line is an error naming file:line (LoadSFTFile can skip them instead).
func LoadSFT(path string) ([]SFTExample, error) {
	out, _, err := LoadSFTFile(path, LoadOptions{Strict: true})
	return out, err
}

// LoadSFTFile reads supervised examples like LoadSFT. Unless opts.Strict, a malformed line is
// skipped and returned among the skipped lines (as `bpo train` does with preference data); a file
// without any valid example is an error either way.
func LoadSFTFile(path string, opts LoadOptions) ([]SFTExample, []*LineError, error) {
	out, skipped, err := loadSFT(path, opts)
	if err != nil {
		return nil, skipped, err
	}
	if len(out) == 0 {
		if len(skipped) > 0 {
			return nil, skipped, fmt.Errorf(
				"sft data %s: no valid examples (%d lines skipped, first: %w)",
				path,
				len(skipped),
				skipped[0],
			)
		}
		return nil, nil, fmt.Errorf("sft data %s: no examples", path)
	}
	return out, skipped, nil
}

func loadSFT(path string, opts LoadOptions) ([]SFTExample, []*LineError, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("sft data: %w", err)
	}
	defer f.Close()
	var out []SFTExample
	var skipped []*LineError
	bad := func(le *LineError) error {
		if opts.Strict {
			return le
		}
		skipped = append(skipped, le)
		return nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		raw := strings.TrimSpace(sc.Text())
		if raw == "" {
			continue
		}
		var v struct {
			Prompt, Completion, Text, Question, Answer *string
			Messages                                   []Message
		}
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			if err := bad(&LineError{File: path, Line: line, Msg: "not a JSON object: " + err.Error()}); err != nil {
				return nil, nil, err
			}
			continue
		}
		e := SFTExample{Line: line}
		switch {
		case v.Prompt != nil && v.Completion != nil:
			e.Prompt, e.Completion = *v.Prompt, *v.Completion
		case v.Text != nil:
			e.Completion = *v.Text
		case v.Question != nil && v.Answer != nil:
			e.Prompt, e.Completion = "Question: "+*v.Question+"\nAnswer:", " "+*v.Answer
		case len(v.Messages) >= 2 && v.Messages[len(v.Messages)-1].Role == "assistant":
			e.PromptMessages, e.Completion = v.Messages[:len(v.Messages)-1], v.Messages[len(v.Messages)-1].Content
		default:
			if err := bad(&LineError{File: path, Line: line, Msg: `expected {"prompt","completion"}, {"text"}, {"question","answer"} or {"messages"} ending with an assistant message`}); err != nil {
				return nil, nil, err
			}
			continue
		}
		if e.Completion == "" {
			if err := bad(&LineError{File: path, Line: line, Msg: "empty completion"}); err != nil {
				return nil, nil, err
			}
			continue
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("sft data %s: %w", path, err)
	}
	return out, skipped, nil
}

// TokenizeSFT turns examples into training sequences (EOS appended), cutting each to maxLen tokens
// when maxLen > 0 (the completion keeps its start); it returns how many were cut.
func TokenizeSFT(m *llama.Model, ex []SFTExample, tmpl PromptTemplate, maxLen int) ([]nn.TrainSeq, int, error) {
	out := make([]nn.TrainSeq, 0, len(ex))
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
		out = append(out, nn.TrainSeq{Tokens: toks, PromptLen: len(p)})
	}
	return out, cut, nil
}
