package eval

import (
	"io"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/eval/grader"
)

func FuzzReadRecords(f *testing.F) {
	f.Add(`{"id":"1","benchmark":"gsm8k","responses":["a"],"preds":["1"],"corrects":[true]}` + "\n")
	f.Add(`{"id":"1","benchmark":"gsm8k","responses":["a","b"],"preds":["1"],"corrects":[true]}` + "\n{\"id\"")
	f.Add("\n\n[]\n")
	f.Fuzz(func(t *testing.T, data string) {
		recs, good, err := readRecords(strings.NewReader(data), "fuzz.jsonl")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.jsonl:") {
				t.Fatalf("error without file:line: %v", err)
			}
			return
		}
		if good > int64(len(data)) {
			t.Fatalf("good prefix %d longer than input %d", good, len(data))
		}
		for _, r := range recs {
			if len(r.Preds) != len(r.Responses) || len(r.Corrects) != len(r.Responses) || len(r.Responses) == 0 {
				t.Fatalf("inconsistent record accepted: %+v", r)
			}
			_ = r.NumCorrect()
		}
		BuildPairs(recs, PairOptions{Seed: 1})
		Summarize("gsm8k", recs).WriteMarkdown(io.Discard)
	})
}

func FuzzGradeJSONL(f *testing.F) {
	f.Add(`{"response":"\\boxed{2}","answer":"2"}`)
	f.Add(`{"response":"x","answer":1e400}`)
	f.Add("{\"response\":\"#### 5\",\"answer\":\"5\"}\n{")
	f.Fuzz(func(t *testing.T, data string) {
		for _, m := range []grader.Method{grader.MethodQwen, grader.MethodStrict} {
			c, err := GradeJSONL("math", m, strings.NewReader(data), "fuzz.jsonl", io.Discard)
			if err == nil && (c.Total == 0 || c.Correct > c.Total) {
				t.Fatalf("counts %+v", c)
			}
			if err != nil && !strings.Contains(err.Error(), "fuzz.jsonl") {
				t.Fatalf("error without file name: %v", err)
			}
		}
	})
}
