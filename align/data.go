package align

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// PreferenceExample is one normalized preference pair. Exactly one of Prompt and PromptMessages is
// used: PromptMessages for conversational data (the chat template is applied later, from the
// model), Prompt for raw text prompts. Chosen and Rejected are the completion texts.
type PreferenceExample struct {
	Line           int       // 1-based line number in the source file
	Prompt         string    // raw prompt (string and question shapes)
	PromptMessages []Message // conversational prompt, nil for raw prompts
	Chosen         string
	Rejected       string
}

// Conversational reports whether the prompt is a list of chat messages.
func (e PreferenceExample) Conversational() bool { return e.PromptMessages != nil }

// LineError is a problem with one line of a data file.
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// LoadOptions controls LoadPreferences.
type LoadOptions struct {
	// Strict makes the first malformed line an error; otherwise malformed lines are skipped and
	// reported in LoadResult.Skipped.
	Strict bool
}

// LoadResult is what a preference file held: the valid pairs, every skipped line with its reason,
// and the count of blank lines. Lines = len(Examples) + len(Skipped) + Blank.
type LoadResult struct {
	Examples []PreferenceExample
	Skipped  []*LineError
	Blank    int
	Lines    int
}

// Summary returns a one-line account, e.g. "7473 pairs, 2 lines skipped, 0 blank".
func (r *LoadResult) Summary() string {
	return fmt.Sprintf("%d pairs, %d lines skipped, %d blank", len(r.Examples), len(r.Skipped), r.Blank)
}

// LoadPreferences reads a JSONL preference file. Each line is one of
//
//	{"prompt": "...", "chosen": "...", "rejected": "..."}
//	{"prompt": [messages], "chosen": [messages], "rejected": [messages]}
//	{"chosen": [messages], "rejected": [messages]}            (shared leading turns are the prompt)
//	{"question": "...", "chosen": {"solution": "..."}, "rejected": {"solution": "..."}}
//
// where messages are {"role", "content"} objects and a completion is a single assistant message.
// It fails when the file holds no valid pair, or in strict mode at the first bad line.
func LoadPreferences(path string, opts LoadOptions) (*LoadResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load preferences: %w", err)
	}
	defer f.Close()
	return ReadPreferences(f, path, opts)
}

// ReadPreferences is LoadPreferences on a reader; name is used in messages.
func ReadPreferences(r io.Reader, name string, opts LoadOptions) (*LoadResult, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	res := &LoadResult{}
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s:%d: read: %w", name, lineNo, err)
		}
		if len(line) == 0 && errors.Is(err, io.EOF) {
			break
		}
		if lineNo == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		res.Lines++
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) == 0 {
			res.Blank++
		} else if ex, msg := parsePreferenceLine(trimmed); msg != "" {
			le := &LineError{File: name, Line: lineNo, Msg: msg}
			if opts.Strict {
				return nil, le
			}
			res.Skipped = append(res.Skipped, le)
		} else {
			ex.Line = lineNo
			res.Examples = append(res.Examples, ex)
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	if len(res.Examples) == 0 {
		if len(res.Skipped) > 0 {
			return nil, fmt.Errorf(
				"%s: no valid preference pairs (%d lines skipped, first: %w)",
				name,
				len(res.Skipped),
				res.Skipped[0],
			)
		}
		return nil, fmt.Errorf("%s: no preference pairs (empty file)", name)
	}
	return res, nil
}

// jsonKind names the JSON type of a raw value for messages.
func jsonKind(raw json.RawMessage) string {
	s := bytes.TrimSpace(raw)
	if len(s) == 0 {
		return "nothing"
	}
	switch s[0] {
	case '"':
		return "string"
	case '[':
		return "list"
	case '{':
		return "object"
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	default:
		return "number"
	}
}

// parsePreferenceLine decodes one non-blank line; a non-empty msg says what is wrong.
func parsePreferenceLine(line []byte) (PreferenceExample, string) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		if jsonErr := new(json.UnmarshalTypeError); errors.As(err, &jsonErr) {
			return PreferenceExample{}, "expected a JSON object with prompt/chosen/rejected fields, got " + jsonErr.Value
		}
		return PreferenceExample{}, "invalid JSON: " + err.Error()
	}
	chosenRaw, hasChosen := obj["chosen"]
	rejectedRaw, hasRejected := obj["rejected"]
	if !hasChosen || !hasRejected {
		return PreferenceExample{}, `missing field "chosen" or "rejected" (expected {"prompt","chosen","rejected"} or {"question","chosen":{"solution"},"rejected":{"solution"}})`
	}
	var ex PreferenceExample
	var msg string
	if q, ok := obj["question"]; ok {
		ex, msg = parseQuestionShape(q, chosenRaw, rejectedRaw)
	} else if p, ok := obj["prompt"]; ok {
		ex, msg = parsePromptShape(p, chosenRaw, rejectedRaw)
	} else {
		ex, msg = parseImplicitPrompt(chosenRaw, rejectedRaw)
	}
	if msg != "" {
		return PreferenceExample{}, msg
	}
	switch {
	case strings.TrimSpace(ex.Chosen) == "":
		return PreferenceExample{}, `field "chosen": empty completion`
	case strings.TrimSpace(ex.Rejected) == "":
		return PreferenceExample{}, `field "rejected": empty completion`
	case ex.Chosen == ex.Rejected:
		return PreferenceExample{}, "chosen and rejected completions are identical (the pair carries no preference)"
	}
	return ex, ""
}

func parseQuestionShape(q, chosen, rejected json.RawMessage) (PreferenceExample, string) {
	var ex PreferenceExample
	if err := json.Unmarshal(q, &ex.Prompt); err != nil || jsonKind(q) != "string" {
		return ex, fmt.Sprintf(`field "question": expected a string, got %s`, jsonKind(q))
	}
	var msg string
	if ex.Chosen, msg = parseSolution("chosen", chosen); msg != "" {
		return ex, msg
	}
	ex.Rejected, msg = parseSolution("rejected", rejected)
	return ex, msg
}

func parseSolution(field string, raw json.RawMessage) (string, string) {
	want := fmt.Sprintf(`field %q: expected an object {"solution": string}`, field)
	if jsonKind(raw) != "object" {
		return "", fmt.Sprintf("%s, got %s", want, jsonKind(raw))
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", want + ": " + err.Error()
	}
	sol, ok := obj["solution"]
	if !ok {
		return "", want + `, "solution" is missing`
	}
	var s string
	if jsonKind(sol) != "string" || json.Unmarshal(sol, &s) != nil {
		return "", fmt.Sprintf(`field "%s.solution": expected a string, got %s`, field, jsonKind(sol))
	}
	return s, ""
}

func parsePromptShape(p, chosen, rejected json.RawMessage) (PreferenceExample, string) {
	var ex PreferenceExample
	switch jsonKind(p) {
	case "string":
		if err := json.Unmarshal(p, &ex.Prompt); err != nil {
			return ex, `field "prompt": ` + err.Error()
		}
	case "list":
		msgs, msg := parseMessages("prompt", p)
		if msg != "" {
			return ex, msg
		}
		if len(msgs) == 0 {
			return ex, `field "prompt": empty message list`
		}
		ex.PromptMessages = msgs
	default:
		return ex, fmt.Sprintf(
			`field "prompt": expected a string or a list of {"role","content"} messages, got %s`,
			jsonKind(p),
		)
	}
	var msg string
	if ex.Chosen, msg = parseCompletion("chosen", chosen, ex.PromptMessages); msg != "" {
		return ex, msg
	}
	ex.Rejected, msg = parseCompletion("rejected", rejected, ex.PromptMessages)
	return ex, msg
}

// parseCompletion accepts a string or a message list whose turns after an optional copy of the
// prompt are exactly one assistant message.
func parseCompletion(field string, raw json.RawMessage, prompt []Message) (string, string) {
	switch jsonKind(raw) {
	case "string":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Sprintf("field %q: %v", field, err)
		}
		return s, ""
	case "list":
		msgs, msg := parseMessages(field, raw)
		if msg != "" {
			return "", msg
		}
		if len(prompt) > 0 && len(msgs) > len(prompt) && slices.Equal(msgs[:len(prompt)], prompt) {
			msgs = msgs[len(prompt):]
		}
		return singleAssistant(field, msgs)
	default:
		return "", fmt.Sprintf(
			`field %q: expected a string or a list of {"role","content"} messages, got %s`,
			field,
			jsonKind(raw),
		)
	}
}

func singleAssistant(field string, msgs []Message) (string, string) {
	if len(msgs) != 1 {
		return "", fmt.Sprintf(
			"field %q: expected exactly one assistant message after the prompt, got %d messages",
			field,
			len(msgs),
		)
	}
	if msgs[0].Role != "assistant" {
		return "", fmt.Sprintf(
			`field %q: expected the completion to have role "assistant", got %q`,
			field,
			msgs[0].Role,
		)
	}
	return msgs[0].Content, ""
}

// parseImplicitPrompt handles {"chosen": [messages], "rejected": [messages]} where the shared
// leading messages are the prompt.
func parseImplicitPrompt(chosen, rejected json.RawMessage) (PreferenceExample, string) {
	var ex PreferenceExample
	if jsonKind(chosen) != "list" || jsonKind(rejected) != "list" {
		return ex, `missing field "prompt" (expected a string or messages; without it, "chosen" and "rejected" must be message lists sharing the prompt turns)`
	}
	c, msg := parseMessages("chosen", chosen)
	if msg != "" {
		return ex, msg
	}
	r, msg := parseMessages("rejected", rejected)
	if msg != "" {
		return ex, msg
	}
	k := 0
	for k < len(c) && k < len(r) && c[k] == r[k] {
		k++
	}
	if k == len(c) || k == len(r) {
		k-- // keep at least the last turn as the completion
	}
	if k <= 0 {
		return ex, `missing field "prompt", and "chosen"/"rejected" share no leading prompt messages`
	}
	ex.PromptMessages = append([]Message(nil), c[:k]...)
	if ex.Chosen, msg = singleAssistant("chosen", c[k:]); msg != "" {
		return ex, msg
	}
	ex.Rejected, msg = singleAssistant("rejected", r[k:])
	return ex, msg
}

// parseMessages decodes a list of {"role": string, "content": string | [{"type":"text","text":...}]}.
func parseMessages(field string, raw json.RawMessage) ([]Message, string) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Sprintf("field %q: expected a list of messages: %v", field, err)
	}
	msgs := make([]Message, 0, len(items))
	for i, it := range items {
		where := fmt.Sprintf("field %q, message %d", field, i)
		if jsonKind(it) != "object" {
			return nil, fmt.Sprintf(`%s: expected an object {"role","content"}, got %s`, where, jsonKind(it))
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(it, &obj); err != nil {
			return nil, fmt.Sprintf("%s: %v", where, err)
		}
		var m Message
		role, ok := obj["role"]
		if !ok || jsonKind(role) != "string" || json.Unmarshal(role, &m.Role) != nil || m.Role == "" {
			return nil, fmt.Sprintf(`%s: expected "role" to be a non-empty string`, where)
		}
		content, ok := obj["content"]
		if !ok {
			return nil, fmt.Sprintf(`%s: missing "content"`, where)
		}
		text, msg := parseContent(content)
		if msg != "" {
			return nil, fmt.Sprintf("%s: %s", where, msg)
		}
		m.Content = text
		msgs = append(msgs, m)
	}
	return msgs, ""
}

// parseContent accepts a string or a list of parts of which the text parts are concatenated.
func parseContent(raw json.RawMessage) (string, string) {
	switch jsonKind(raw) {
	case "string":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", `"content": ` + err.Error()
		}
		return s, ""
	case "list":
		var parts []struct {
			Type string  `json:"type"`
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(raw, &parts); err != nil {
			return "", `"content": expected a string or a list of {"type":"text","text":string} parts`
		}
		var sb strings.Builder
		for j, p := range parts {
			if p.Type != "text" || p.Text == nil {
				return "", fmt.Sprintf(
					`"content" part %d: only {"type":"text","text":string} parts are supported, got type %q`,
					j,
					p.Type,
				)
			}
			sb.WriteString(*p.Text)
		}
		return sb.String(), ""
	default:
		return "", fmt.Sprintf(`expected "content" to be a string, got %s`, jsonKind(raw))
	}
}
