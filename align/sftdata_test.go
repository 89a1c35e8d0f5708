package align

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testStories is the stories260K fixture (fixture.File gives its path).
const testStories = "models/stories260K.gguf"

func TestLoadSFTShapesAndErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.jsonl")
	os.WriteFile(good, []byte(`{"prompt":"a","completion":"b"}
{"text":"just text"}

{"question":"2+2?","answer":"4\n#### 4"}
{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}
`), 0o644)
	ex, err := LoadSFT(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(ex) != 4 || ex[2].Prompt != "Question: 2+2?\nAnswer:" || ex[2].Completion != " 4\n#### 4" || ex[3].Completion != "hello" || ex[3].Line != 5 {
		t.Fatalf("examples %+v", ex)
	}
	cases := map[string]string{
		`{"prompt":"a"}`:                 ":1: expected",
		`{"prompt":"a","completion":""}`: ":1: empty completion",
		`not json`:                       ":1: not a JSON object",
		"{\"text\":\"ok\"}\n[1,2]":       ":2: not a JSON object",
	}
	for content, want := range cases {
		p := filepath.Join(dir, "bad.jsonl")
		os.WriteFile(p, []byte(content), 0o644)
		_, err := LoadSFT(p)
		var le *LineError
		if err == nil || !strings.Contains(err.Error(), want) || !errors.As(err, &le) {
			t.Errorf("%q: got %v, want an error containing %q", content, err, want)
		}
	}
}

// TestLoadSFTFileSkipsAndCounts: without --strict, malformed lines are skipped and listed with their
// line numbers (as for preference data); with it, the first one is the error.
func TestLoadSFTFileSkipsAndCounts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mixed.jsonl")
	os.WriteFile(p, []byte("{\"text\":\"a\"}\nnot json\n\n{\"prompt\":\"q\"}\n{\"prompt\":\"q\",\"completion\":\" a\"}\n"), 0o644)
	ex, skipped, err := LoadSFTFile(p, LoadOptions{})
	if err != nil || len(ex) != 2 || len(skipped) != 2 || skipped[0].Line != 2 || skipped[1].Line != 4 {
		t.Fatalf("lenient: %d examples, skipped %v, %v", len(ex), skipped, err)
	}
	if _, _, err := LoadSFTFile(p, LoadOptions{Strict: true}); err == nil || !strings.Contains(err.Error(), ":2: not a JSON object") {
		t.Fatalf("strict: %v", err)
	}
	os.WriteFile(p, []byte("not json\n"), 0o644)
	if _, _, err := LoadSFTFile(p, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "no valid examples (1 lines skipped") {
		t.Fatalf("only bad lines: %v", err)
	}
}
