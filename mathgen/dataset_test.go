package mathgen

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/eval/bench"
	"github.com/bpo-dev/bpo/eval/benchdata"
)

func TestGenerateSplits(t *testing.T) {
	cases := []struct {
		name         string
		cfg          Config
		minLv, maxLv int
	}{
		{"levels 1-3", Config{Train: 1500, Test: 300, MinLevel: 1, MaxLevel: 3, Seed: 1}, 1, 3},
		{"level 2 only", Config{Train: 400, Test: 100, MinLevel: 2, MaxLevel: 2, Seed: 9}, 2, 2},
		{"levels 1-4", Config{Train: 800, Test: 200, MinLevel: 1, MaxLevel: 4, Seed: 42}, 1, 4},
		{"levels 1-2 below 100", Config{Train: 800, Test: 200, MinLevel: 1, MaxLevel: 2, MaxValue: 100, Seed: 2}, 1, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			train, test, err := Generate(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(train) != c.cfg.Train || len(test) != c.cfg.Test {
				t.Fatalf("got %d/%d problems, want %d/%d", len(train), len(test), c.cfg.Train, c.cfg.Test)
			}
			inTest := map[string]bool{}
			ids := map[string]bool{}
			levels := map[int]int{}
			for _, p := range test {
				inTest[p.Question] = true
			}
			if len(inTest) != len(test) {
				t.Errorf("test split has duplicate questions")
			}
			inTrain := map[string]bool{}
			for _, p := range train {
				if inTest[p.Question] {
					t.Errorf("train %s repeats a test question: %q", p.ID, p.Question)
				}
				if inTrain[p.Question] {
					t.Errorf("train %s repeats a train question", p.ID)
				}
				inTrain[p.Question] = true
			}
			for _, p := range append(append([]Problem{}, train...), test...) {
				if ids[p.ID] {
					t.Errorf("duplicate id %s", p.ID)
				}
				ids[p.ID] = true
				levels[p.Level]++
				limit := c.cfg.MaxValue
				if limit == 0 {
					limit = DefaultMaxValue
				}
				checkSolution(t, p, limit)
			}
			for lv := c.minLv; lv <= c.maxLv; lv++ {
				if levels[lv] == 0 {
					t.Errorf("no problem of level %d (levels %v)", lv, levels)
				}
			}
			if len(levels) != c.maxLv-c.minLv+1 {
				t.Errorf("levels %v outside %d-%d", levels, c.minLv, c.maxLv)
			}
		})
	}
}

func TestGenerateDeterministic(t *testing.T) {
	a1, b1, err := Generate(Config{Train: 300, Test: 50, MinLevel: 1, MaxLevel: 4, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	a2, b2, _ := Generate(Config{Train: 300, Test: 50, MinLevel: 1, MaxLevel: 4, Seed: 5})
	if !reflect.DeepEqual(a1, a2) || !reflect.DeepEqual(b1, b2) {
		t.Fatal("same seed gave different problems")
	}
	// The test split does not depend on the train size, and a bigger train split extends a smaller one.
	a3, b3, _ := Generate(Config{Train: 600, Test: 50, MinLevel: 1, MaxLevel: 4, Seed: 5})
	if !reflect.DeepEqual(b1, b3) || !reflect.DeepEqual(a1, a3[:300]) {
		t.Error("changing the train size changed the test split or the train prefix")
	}
	a4, _, _ := Generate(Config{Train: 300, Test: 50, MinLevel: 1, MaxLevel: 4, Seed: 6})
	same := 0
	for i := range a4 {
		if a4[i].Question == a1[i].Question {
			same++
		}
	}
	if same > 5 {
		t.Errorf("seeds 5 and 6 share %d of 300 questions at the same position", same)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Train: -1, MinLevel: 1, MaxLevel: 2}, "split sizes"},
		{Config{Train: 1, MinLevel: 0, MaxLevel: 2}, "levels 0-2"},
		{Config{Train: 1, MinLevel: 3, MaxLevel: 2}, "levels 3-2"},
		{Config{Train: 1, MinLevel: 1, MaxLevel: 5}, "levels 1-5"},
		{Config{Train: 1, MinLevel: 1, MaxLevel: 2, MaxValue: 99}, "max value 99"},
	}
	for _, c := range cases {
		_, _, err := Generate(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one containing %q", c.cfg, err, c.want)
		}
	}
}

func TestParseLevels(t *testing.T) {
	cases := []struct {
		in     string
		lo, hi int
		bad    bool
	}{
		{"1-3", 1, 3, false}, {"2", 2, 2, false}, {" 1 - 4 ", 1, 4, false}, {"4-4", 4, 4, false},
		{"0-3", 0, 0, true}, {"1-5", 0, 0, true}, {"3-1", 0, 0, true}, {"a-b", 0, 0, true}, {"", 0, 0, true}, {"1-", 0, 0, true},
	}
	for _, c := range cases {
		lo, hi, err := ParseLevels(c.in)
		if (err != nil) != c.bad || lo != c.lo || hi != c.hi {
			t.Errorf("ParseLevels(%q) = %d, %d, %v", c.in, lo, hi, err)
		}
	}
}

func FuzzParseLevels(f *testing.F) {
	for _, s := range []string{"1-3", "2", "-", "9-1", " 1-4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lo, hi, err := ParseLevels(s)
		if err == nil && (lo < MinLevel || hi > MaxLevel || lo > hi) {
			t.Errorf("ParseLevels(%q) accepted %d-%d", s, lo, hi)
		}
	})
}

// TestJSONLReadsAsGSM8K writes a split and reads it back with the GSM8K loader that reads the
// public GSM8K test file (embedded), checking both files have the same shape.
func TestJSONLReadsAsGSM8K(t *testing.T) {
	gsm, err := bench.LoadEmbedded(bench.GSM8K, "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(gsm) != 1319 {
		t.Fatalf("gsm8k test has %d rows, want 1319", len(gsm))
	}
	_, test, err := Generate(Config{Test: 200, MinLevel: 1, MaxLevel: 4, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "test.jsonl")
	if err := WriteJSONL(path, test); err != nil {
		t.Fatal(err)
	}
	got, err := bench.Load(bench.GSM8K, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(test) {
		t.Fatalf("loader read %d rows, wrote %d", len(got), len(test))
	}
	for i, s := range got {
		p := test[i]
		if s.ID != p.ID || s.Question != p.Question || s.Solution != p.Answer || s.Answer != p.FinalAnswer() {
			t.Errorf("row %d read back as %+v, wrote %+v", i, s, p)
		}
	}
	// Field names: ours are GSM8K's plus level and id.
	data, _ := os.ReadFile(path)
	first := string(bytes.SplitN(data, []byte("\n"), 2)[0])
	for _, k := range []string{`"question":`, `"answer":`, `"level":`, `"id":`} {
		if !strings.Contains(first, k) {
			t.Errorf("first line %s lacks %s", first, k)
		}
	}
	gset, err := benchdata.Find(bench.GSM8K, "test")
	if err != nil {
		t.Fatal(err)
	}
	gdata, err := gset.Data()
	if err != nil {
		t.Fatal(err)
	}
	gfirst := string(bytes.SplitN(gdata, []byte("\n"), 2)[0])
	for _, k := range []string{`"question":`, `"answer":`} {
		if !strings.Contains(gfirst, k) {
			t.Errorf("gsm8k's first line lacks %s", k)
		}
	}
}

func TestWriteJSONLErrors(t *testing.T) {
	dir := t.TempDir()
	if err := WriteJSONL(filepath.Join(dir, "missing", "x.jsonl"), nil); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("write into a missing folder: %v", err)
	}
	if err := WriteJSONL(filepath.Join(dir, "ok.jsonl"), []Problem{{Question: "q?", Answer: "#### 1", Level: 1, ID: "a"}}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "ok.jsonl" {
		t.Errorf("left %d entries behind", len(entries))
	}
}
