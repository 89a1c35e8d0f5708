package align

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/eval/benchdata"
)

type gsmRow struct {
	Question string `json:"question"`
	Answer   string `json:"answer"`
}

// readGSM8K reads the first n rows of the real GSM8K training file.
func readGSM8K(t testing.TB, n int) []gsmRow {
	t.Helper()
	set, err := benchdata.Find("gsm8k", "train")
	if err != nil {
		t.Fatal(err)
	}
	data, err := set.Data()
	if err != nil {
		t.Fatal(err)
	}
	var rows []gsmRow
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && len(rows) < n {
		var r gsmRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	return rows
}

// writeLines writes a JSONL file of the given values (strings are written verbatim).
func writeLines(t testing.TB, name string, lines []any) string {
	t.Helper()
	var sb strings.Builder
	for _, l := range lines {
		if s, ok := l.(string); ok {
			sb.WriteString(s)
		} else {
			b, err := json.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			sb.Write(b)
		}
		sb.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoadPreferencesShapes builds pairs from real GSM8K rows (chosen = the row's solution,
// rejected = the next row's solution) in every supported shape and loads them back.
func TestLoadPreferencesShapes(t *testing.T) {
	rows := readGSM8K(t, 40)
	msg := func(role, content string) map[string]any { return map[string]any{"role": role, "content": content} }
	shapes := []struct {
		name           string
		conversational bool
		line           func(q, c, r string) any
	}{
		{"strings", false, func(q, c, r string) any {
			return map[string]any{"prompt": q, "chosen": c, "rejected": r}
		}},
		{"question/solution", false, func(q, c, r string) any {
			return map[string]any{"question": q, "chosen": map[string]any{"solution": c, "correct": true}, "rejected": map[string]any{"solution": r}}
		}},
		{"conversational", true, func(q, c, r string) any {
			return map[string]any{"prompt": []any{msg("system", "Solve."), msg("user", q)},
				"chosen": []any{msg("assistant", c)}, "rejected": []any{msg("assistant", r)}}
		}},
		{"conversational, full turns", true, func(q, c, r string) any {
			p := []any{msg("system", "Solve."), msg("user", q)}
			return map[string]any{"prompt": p, "chosen": append(append([]any{}, p...), msg("assistant", c)),
				"rejected": append(append([]any{}, p...), msg("assistant", r))}
		}},
		{"implicit prompt", true, func(q, c, r string) any {
			return map[string]any{"chosen": []any{msg("system", "Solve."), msg("user", q), msg("assistant", c)},
				"rejected": []any{msg("system", "Solve."), msg("user", q), msg("assistant", r)}}
		}},
		{"content parts", true, func(q, c, r string) any {
			parts := func(s string) []any {
				r := []rune(s)
				h := len(r) / 2
				return []any{map[string]any{"type": "text", "text": string(r[:h])}, map[string]any{"type": "text", "text": string(r[h:])}}
			}
			return map[string]any{"prompt": []any{msg("system", "Solve."), map[string]any{"role": "user", "content": parts(q)}},
				"chosen": []any{map[string]any{"role": "assistant", "content": parts(c)}}, "rejected": []any{msg("assistant", r)}}
		}},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			var lines []any
			for i := 0; i+1 < len(rows); i++ {
				lines = append(lines, sh.line(rows[i].Question, rows[i].Answer, rows[i+1].Answer))
			}
			path := writeLines(t, "pairs.jsonl", lines)
			res, err := LoadPreferences(path, LoadOptions{Strict: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Examples) != len(rows)-1 || len(res.Skipped) != 0 || res.Lines != len(rows)-1 {
				t.Fatalf("result %s over %d lines", res.Summary(), res.Lines)
			}
			for i, ex := range res.Examples {
				if ex.Line != i+1 || ex.Chosen != rows[i].Answer || ex.Rejected != rows[i+1].Answer {
					t.Fatalf("example %d: line %d, chosen %q", i, ex.Line, ex.Chosen)
				}
				if ex.Conversational() != sh.conversational {
					t.Fatalf("example %d: conversational = %v", i, ex.Conversational())
				}
				if sh.conversational {
					want := []Message{{"system", "Solve."}, {"user", rows[i].Question}}
					if !slices.Equal(ex.PromptMessages, want) || ex.Prompt != "" {
						t.Fatalf("example %d: prompt %+v", i, ex.PromptMessages)
					}
				} else if ex.Prompt != rows[i].Question {
					t.Fatalf("example %d: prompt %q", i, ex.Prompt)
				}
			}
		})
	}
}

// TestLoadPreferencesMalformed checks that every kind of bad line is reported with its line number
// and what was expected, that good lines around it survive, and that strict mode stops at it.
func TestLoadPreferencesMalformed(t *testing.T) {
	good := `{"prompt":"2+2?","chosen":"4","rejected":"5"}`
	tests := []struct {
		name    string
		line    string
		wantMsg string
	}{
		{"not json", `{"prompt": "x", "chosen": `, "invalid JSON"},
		{"array", `["a","b"]`, "expected a JSON object with prompt/chosen/rejected fields, got array"},
		{"no rejected", `{"prompt":"p","chosen":"c"}`, `missing field "chosen" or "rejected"`},
		{"no prompt", `{"chosen":"c","rejected":"r"}`, `missing field "prompt"`},
		{"prompt number", `{"prompt":3,"chosen":"c","rejected":"r"}`, `field "prompt": expected a string or a list of {"role","content"} messages, got number`},
		{"chosen object", `{"prompt":"p","chosen":{"text":"c"},"rejected":"r"}`, `field "chosen": expected a string or a list of {"role","content"} messages, got object`},
		{"empty chosen", `{"prompt":"p","chosen":"  ","rejected":"r"}`, `field "chosen": empty completion`},
		{"identical", `{"prompt":"p","chosen":"same","rejected":"same"}`, "chosen and rejected completions are identical"},
		{"question no solution", `{"question":"q","chosen":{"answer":"1"},"rejected":{"solution":"2"}}`, `field "chosen": expected an object {"solution": string}, "solution" is missing`},
		{"question string chosen", `{"question":"q","chosen":"1","rejected":{"solution":"2"}}`, `field "chosen": expected an object {"solution": string}, got string`},
		{"solution number", `{"question":"q","chosen":{"solution":1},"rejected":{"solution":"2"}}`, `field "chosen.solution": expected a string, got number`},
		{"question null", `{"question":null,"chosen":{"solution":"1"},"rejected":{"solution":"2"}}`, `field "question": expected a string, got null`},
		{"message no role", `{"prompt":[{"content":"hi"}],"chosen":"c","rejected":"r"}`, `field "prompt", message 0: expected "role" to be a non-empty string`},
		{"message no content", `{"prompt":[{"role":"user"}],"chosen":"c","rejected":"r"}`, `field "prompt", message 0: missing "content"`},
		{"message string", `{"prompt":["hi"],"chosen":"c","rejected":"r"}`, `field "prompt", message 0: expected an object {"role","content"}, got string`},
		{"empty prompt list", `{"prompt":[],"chosen":"c","rejected":"r"}`, `field "prompt": empty message list`},
		{"two completions", `{"prompt":[{"role":"user","content":"q"}],"chosen":[{"role":"assistant","content":"a"},{"role":"assistant","content":"b"}],"rejected":"r"}`, `field "chosen": expected exactly one assistant message after the prompt, got 2 messages`},
		{"user completion", `{"prompt":[{"role":"user","content":"q"}],"chosen":[{"role":"user","content":"a"}],"rejected":"r"}`, `field "chosen": expected the completion to have role "assistant", got "user"`},
		{"image part", `{"prompt":[{"role":"user","content":[{"type":"image","url":"x"}]}],"chosen":"c","rejected":"r"}`, `"content" part 0: only {"type":"text","text":string} parts are supported, got type "image"`},
		{"implicit no shared", `{"chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}`, `share no leading prompt messages`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeLines(t, "bad.jsonl", []any{good, "", tc.line, good})
			res, err := LoadPreferences(path, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Examples) != 2 || res.Blank != 1 || len(res.Skipped) != 1 || res.Lines != 4 {
				t.Fatalf("%s over %d lines", res.Summary(), res.Lines)
			}
			want := fmt.Sprintf("%s:3: ", path)
			if got := res.Skipped[0].Error(); !strings.HasPrefix(got, want) || !strings.Contains(got, tc.wantMsg) {
				t.Fatalf("skip reason %q, want prefix %q and %q", got, want, tc.wantMsg)
			}
			if res.Examples[1].Line != 4 {
				t.Fatalf("line numbers shifted: %d", res.Examples[1].Line)
			}
			_, err = LoadPreferences(path, LoadOptions{Strict: true})
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("strict error %v", err)
			}
		})
	}
}

func TestLoadPreferencesEdges(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name      string
		content   string
		wantPairs int
		wantErr   string
	}{
		{"bom crlf no final newline", "\xef\xbb\xbf{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\"}\r\n{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"c\"}", 2, ""},
		{"empty", "", 0, "no preference pairs (empty file)"},
		{"blank only", "\n  \n", 0, "no preference pairs (empty file)"},
		{"all bad", "{}\n[]\n", 0, "no valid preference pairs (2 lines skipped, first: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".jsonl")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := LoadPreferences(path, LoadOptions{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %v, want %q naming the file", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Examples) != tc.wantPairs || res.Examples[0].Chosen != "a" || res.Examples[1].Rejected != "c" {
				t.Fatalf("%+v", res.Examples)
			}
		})
	}
	if _, err := LoadPreferences(filepath.Join(dir, "missing.jsonl"), LoadOptions{}); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Fatalf("missing file error %v", err)
	}
}

func TestSplitEval(t *testing.T) {
	rows := readGSM8K(t, 101)
	var exs []PreferenceExample
	for i := 0; i+1 < len(rows); i++ {
		exs = append(exs, PreferenceExample{Line: i + 1, Prompt: rows[i].Question, Chosen: rows[i].Answer, Rejected: rows[i+1].Answer})
	}
	tests := []struct {
		fraction float64
		seed     uint64
		wantEval int
	}{
		{0, 1, 0}, {0.1, 1, 10}, {0.05, 7, 5}, {0.001, 1, 1}, {0.5, 3, 50},
	}
	for _, tc := range tests {
		train, eval, err := SplitEval(exs, tc.fraction, tc.seed)
		if err != nil {
			t.Fatal(err)
		}
		if len(eval) != tc.wantEval || len(train)+len(eval) != len(exs) {
			t.Fatalf("fraction %v: %d train %d eval", tc.fraction, len(train), len(eval))
		}
		again, eval2, _ := SplitEval(exs, tc.fraction, tc.seed)
		if fmt.Sprint(eval) != fmt.Sprint(eval2) || len(again) != len(train) {
			t.Fatal("split not deterministic")
		}
		seen := map[int]bool{}
		for _, part := range [][]PreferenceExample{train, eval} {
			for i, e := range part {
				if seen[e.Line] || (i > 0 && part[i-1].Line >= e.Line) {
					t.Fatalf("example line %d duplicated or out of order", e.Line)
				}
				seen[e.Line] = true
			}
		}
	}
	_, a, _ := SplitEval(exs, 0.1, 1)
	_, b, _ := SplitEval(exs, 0.1, 2)
	if fmt.Sprint(a) == fmt.Sprint(b) {
		t.Error("different seeds gave the same split")
	}
	for _, bad := range []float64{-0.1, 1, 2} {
		if _, _, err := SplitEval(exs, bad, 1); err == nil {
			t.Errorf("fraction %v accepted", bad)
		}
	}
	if _, _, err := SplitEval(exs[:1], 0.5, 1); err == nil || !strings.Contains(err.Error(), "too few") {
		t.Errorf("1 example split: %v", err)
	}
}

// FuzzReadPreferences: any input gives either an error or a result whose counts add up and whose
// pairs are well-formed; it never panics.
func FuzzReadPreferences(f *testing.F) {
	f.Add([]byte(`{"prompt":"p","chosen":"a","rejected":"b"}` + "\n\n{}"))
	f.Add([]byte(`{"prompt":[{"role":"user","content":"q"}],"chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":[{"type":"text","text":"b"}]}]}`))
	f.Add([]byte(`{"question":"q","chosen":{"solution":"a"},"rejected":{"solution":"b"}}`))
	f.Add([]byte(`{"chosen":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"rejected":[{"role":"user","content":"q"},{"role":"assistant","content":"b"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ReadPreferences(strings.NewReader(string(data)), "fuzz.jsonl", LoadOptions{})
		_, strictErr := ReadPreferences(strings.NewReader(string(data)), "fuzz.jsonl", LoadOptions{Strict: true})
		if err != nil {
			if strictErr == nil {
				t.Fatalf("strict mode accepted what lenient mode rejected: %v", err)
			}
			return
		}
		if len(res.Examples)+len(res.Skipped)+res.Blank != res.Lines {
			t.Fatalf("counts do not add up: %s over %d lines", res.Summary(), res.Lines)
		}
		if (len(res.Skipped) == 0) != (strictErr == nil) {
			t.Fatalf("strict error %v with %d skipped", strictErr, len(res.Skipped))
		}
		for _, ex := range res.Examples {
			if ex.Line < 1 || ex.Line > res.Lines || strings.TrimSpace(ex.Chosen) == "" || ex.Chosen == ex.Rejected {
				t.Fatalf("bad example %+v", ex)
			}
		}
		for _, s := range res.Skipped {
			if s.Msg == "" || s.Line < 1 {
				t.Fatalf("bad skip record %+v", s)
			}
		}
	})
}
