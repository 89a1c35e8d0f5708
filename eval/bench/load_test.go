package bench

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/eval/benchdata"
)

func TestLoadAllBenchmarks(t *testing.T) {
	cases := []struct {
		name, split        string
		n                  int
		firstID, firstAns  string
		hasSubject, hasLvl bool
	}{
		{GSM8K, "test", 1319, "0", "18", false, false},
		{GSM8K, "train", 7473, "0", "72", false, false},
		{MATH, "test", 5000, "0", "2", true, true},
		{MATH500, "test", 500, "test/precalculus/807.json", `\left( 3, \frac{\pi}{2} \right)`, true, true},
		{AIME24, "test", 30, "60", "204", false, false},
		{AMC23, "test", 40, "0", "27.0", false, false},
		{MinervaMath, "test", 272, "0", "1.6", true, false},
		{OlympiadBench, "test", 675, "1606", "2", true, false},
	}
	for _, c := range cases {
		t.Run(c.name+"/"+c.split, func(t *testing.T) {
			ss, err := LoadEmbedded(c.name, c.split)
			if err != nil {
				t.Fatal(err)
			}
			if len(ss) != c.n {
				t.Fatalf("%d samples, want %d", len(ss), c.n)
			}
			s := ss[0]
			if s.ID != c.firstID || s.Answer != c.firstAns || s.Question == "" || s.Benchmark != c.name {
				t.Errorf("first sample = id %q answer %q bench %q, want id %q answer %q", s.ID, s.Answer, s.Benchmark, c.firstID, c.firstAns)
			}
			if (s.Subject != "") != c.hasSubject || (s.Level != "") != c.hasLvl {
				t.Errorf("subject %q level %q: want subject=%v level=%v", s.Subject, s.Level, c.hasSubject, c.hasLvl)
			}
		})
	}
}

func TestMATHLevelNormalized(t *testing.T) {
	ss, err := LoadEmbedded(MATH, "test")
	if err != nil {
		t.Fatal(err)
	}
	if ss[0].Level != "3" || ss[0].Subject != "Algebra" {
		t.Errorf("level %q subject %q, want 3 Algebra", ss[0].Level, ss[0].Subject)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, bench, data, want string
	}{
		{"bad json", GSM8K, "{\"question\":\"q\",\"answer\":\"#### 1\"}\n{oops\n", "x.jsonl:2: expected a JSON object"},
		{"missing field", MATH500, "{\"problem\":\"p\"}\n", `x.jsonl:1: field "answer": missing`},
		{"wrong type", AIME24, "{\"id\":1,\"problem\":\"p\",\"answer\":[1]}\n", `x.jsonl:1: field "answer": expected a string or number, got a list`},
		{"no gsm marker", GSM8K, "\n\n{\"question\":\"q\",\"answer\":\"42\"}\n", `x.jsonl:3: field "answer": expected a solution ending in "#### <answer>"`},
		{"duplicate id", AMC23, "{\"id\":1,\"problem\":\"p\",\"answer\":1}\n{\"id\":1,\"problem\":\"q\",\"answer\":2}\n", `x.jsonl:2: duplicate id "1" (first on line 1)`},
		{"two objects", AMC23, "{\"id\":1,\"problem\":\"p\",\"answer\":1} {}\n", "x.jsonl:1: expected one JSON object per line"},
		{"empty final answer", OlympiadBench, "{\"id\":1,\"question\":\"q\",\"final_answer\":[]}\n", `x.jsonl:1: field "final_answer": expected a non-empty list`},
		{"unknown benchmark", "gsm9k", "{}\n", `unknown benchmark "gsm9k"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.bench, strings.NewReader(c.data), "x.jsonl")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
	if _, err := Load(GSM8K, filepath.Join(t.TempDir(), "none.jsonl")); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: err = %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestSelect(t *testing.T) {
	ss, err := LoadEmbedded(AIME24, "test")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		sel     Selection
		wantIDs string
	}{
		{"limit", Selection{Limit: 3}, "60,61,62"},
		{"shard", Selection{ShardIndex: 1, ShardCount: 10}, "61,71,81"},
		{"shard then limit", Selection{ShardIndex: 0, ShardCount: 10, Limit: 2}, "60,70"},
		{"ids in data order", Selection{IDs: []string{"89", "60"}}, "60,89"},
	}
	for _, c := range cases {
		got, err := Select(ss, c.sel)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var ids []string
		for _, s := range got {
			ids = append(ids, s.ID)
		}
		if strings.Join(ids, ",") != c.wantIDs {
			t.Errorf("%s: ids %v, want %s", c.name, ids, c.wantIDs)
		}
	}
	if _, err := Select(ss, Selection{IDs: []string{"999"}}); err == nil || !strings.Contains(err.Error(), "999") {
		t.Errorf("unknown id: err = %v", err)
	}
	for _, bad := range []string{"3/3", "a/2", "1", "-1/2", "0/0"} {
		if _, _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q): want error", bad)
		}
	}
	if i, n, err := ParseShard("2/8"); err != nil || i != 2 || n != 8 {
		t.Errorf("ParseShard(2/8) = %d %d %v", i, n, err)
	}
}

func TestPrompts(t *testing.T) {
	test, err := LoadEmbedded(GSM8K, "test")
	if err != nil {
		t.Fatal(err)
	}
	train, err := LoadEmbedded(GSM8K, "train")
	if err != nil {
		t.Fatal(err)
	}
	q := test[0]
	p, _ := BoxedPrompter{}.Prompt(q)
	if len(p.Messages) != 2 || p.Messages[0].Role != "system" || p.Messages[0].Content != QwenMathSystemPrompt ||
		p.Messages[1].Role != "user" || p.Messages[1].Content != q.Question || p.Text != "" {
		t.Errorf("boxed prompt = %+v", p)
	}
	fs, _ := FewShotPrompter{Shots: train[:5]}.Prompt(q)
	if strings.Count(fs.Text, "Question: ") != 6 || !strings.HasSuffix(fs.Text, "Question: "+q.Question+"\nAnswer:") ||
		!strings.Contains(fs.Text, "#### 72\n\nQuestion: ") {
		t.Errorf("few-shot prompt malformed:\n%s", fs.Text)
	}
	cot, _ := CoTPrompter{}.Prompt(q)
	if strings.Count(cot.Text, "The answer is ") != 8 || strings.Count(cot.Text, "Q: ") != 9 || !strings.HasSuffix(cot.Text, "\nA:") {
		t.Errorf("cot prompt malformed:\n%s", cot.Text)
	}
	path := filepath.Join(t.TempDir(), "t.tmpl")
	if err := os.WriteFile(path, []byte("Solve ({{.ID}}): {{.Question}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	tp, err := NewPrompter(FormatTemplate, nil, path)
	if err != nil {
		t.Fatal(err)
	}
	tpp, err := tp.Prompt(q)
	if err != nil || tpp.Messages[0].Content != "Solve (0): "+q.Question {
		t.Errorf("template prompt = %+v, %v", tpp, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.tmpl")
	os.WriteFile(bad, []byte("{{.Nope}}"), 0o644)
	bp, err := NewPrompter(FormatTemplate, nil, bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bp.Prompt(q); err == nil {
		t.Error("template with unknown field: want error")
	}
	if _, err := NewPrompter("nope", nil, ""); err == nil {
		t.Error("unknown format: want error")
	}
}

func FuzzParseJSONL(f *testing.F) {
	f.Add("{\"question\":\"q\",\"answer\":\"a #### 1\"}\n")
	f.Add("{\"id\":1,\"question\":\"q\",\"final_answer\":[\"$x$\"],\"solution\":[\"s\"]}\n")
	f.Add("{\"problem\":\"p\",\"solution\":\"\\\\boxed{3}\",\"level\":\"Level 2\"}\n")
	f.Add("{\"problem\":\"p\",\"answer\":27.0,\"id\":null}\n\n{")
	f.Fuzz(func(t *testing.T, data string) {
		for _, name := range Names() {
			ss, err := Parse(name, strings.NewReader(data), "fuzz.jsonl")
			if err != nil && !strings.Contains(err.Error(), "fuzz.jsonl") {
				t.Fatalf("%s: error without file name: %v", name, err)
			}
			if err == nil {
				for _, s := range ss {
					if s.Benchmark != name {
						t.Fatalf("benchmark %q, want %q", s.Benchmark, name)
					}
				}
			}
		}
	})
}

// TestLoadFileEqualsEmbedded: a benchmark file on disk (--data) and the embedded copy of the same
// file give the same samples.
func TestLoadFileEqualsEmbedded(t *testing.T) {
	set, err := benchdata.Find(AMC23, "test")
	if err != nil {
		t.Fatal(err)
	}
	data, err := set.Data()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "amc23.jsonl")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	fromFile, err := Load(AMC23, path)
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := LoadEmbedded(AMC23, "test")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromFile, embedded) {
		t.Errorf("file and embedded copy differ: %d vs %d samples", len(fromFile), len(embedded))
	}
}

func TestLoadEmbeddedErrors(t *testing.T) {
	for _, c := range []struct{ name, split, want string }{
		{MATH500, "train", "no embedded evaluation set math500/train"},
		{"gsm9k", "test", `unknown benchmark "gsm9k"`},
	} {
		if _, err := LoadEmbedded(c.name, c.split); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadEmbedded(%q, %q): err = %v, want %q", c.name, c.split, err, c.want)
		}
	}
}
