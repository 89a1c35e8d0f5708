package align

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// PromptTemplate selects how prompts become text: "" uses the model's own chat template for
// conversational prompts (raw text prompts are used as they are, as TRL does); a built-in name such as
// "chatml" or "llama3" forces that template for conversational prompts.
type PromptTemplate string

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
