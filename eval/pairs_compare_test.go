package eval

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/eval/bench"
	"github.com/bpo-dev/bpo/eval/grader"
)

func TestBuildPairsFromSampledRun(t *testing.T) {
	ss := loadSamples(t, bench.GSM8K, "train", 30)
	dir := t.TempDir()
	sum, err := Run(context.Background(), newReplay(ss, 3), bench.GSM8K, ss, Options{Gen: GenParams{N: 4, Temperature: 0.7}}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if sum.K != 4 || sum.PassAtK["4"] < sum.PassAtK["1"] || sum.PassAtK["1"] < 0.4 || sum.MajAtK <= 0 {
		t.Errorf("k=%d pass@k %v maj@k %v", sum.K, sum.PassAtK, sum.MajAtK)
	}
	recs, err := ReadRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	pairs, st := BuildPairs(recs, PairOptions{Seed: 1, MaxPerQuestion: 2})
	if st.Questions != 30 || st.Paired+st.AllCorrect+st.AllWrong != 30 || st.Paired < 25 || len(pairs) != st.Pairs {
		t.Fatalf("stats %+v, %d pairs", st, len(pairs))
	}
	for _, p := range pairs {
		if !grader.Grade(bench.GSM8K, grader.MethodQwen, p.Chosen, p.Answer).Correct {
			t.Errorf("%s: chosen is not correct", p.ID)
		}
		if grader.Grade(bench.GSM8K, grader.MethodQwen, p.Rejected, p.Answer).Correct {
			t.Errorf("%s: rejected is correct", p.ID)
		}
	}
	again, _ := BuildPairs(recs, PairOptions{Seed: 1, MaxPerQuestion: 2})
	ja, _ := json.Marshal(pairs)
	jb, _ := json.Marshal(again)
	if !bytes.Equal(ja, jb) {
		t.Error("same seed gave different pairs")
	}
	path := filepath.Join(t.TempDir(), "pairs.jsonl")
	if err := WritePairs(path, pairs); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	lines := 0
	for sc.Scan() {
		lines++
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &obj); err != nil {
			t.Fatalf("line %d: %v", lines, err)
		}
		var msgs []bench.Message
		var chosen, rejected string
		if json.Unmarshal(obj["prompt"], &msgs) != nil || len(msgs) != 2 || msgs[1].Role != "user" ||
			json.Unmarshal(obj["chosen"], &chosen) != nil || json.Unmarshal(obj["rejected"], &rejected) != nil ||
			chosen == "" || rejected == "" || chosen == rejected {
			t.Fatalf("line %d is not a {prompt:[messages], chosen, rejected} pair: %s", lines, sc.Text())
		}
		if _, ok := obj["question"]; ok {
			t.Fatalf("line %d has a \"question\" key", lines)
		}
	}
	if lines != len(pairs) {
		t.Errorf("%d lines, want %d", lines, len(pairs))
	}
	if !strings.Contains(st.String(), "30 questions") {
		t.Errorf("stats string %q", st.String())
	}
}

func TestCompareRuns(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "dpo"), filepath.Join(root, "bpo")
	for _, c := range []struct {
		name string
		n    int
	}{{bench.MATH500, 80}, {bench.GSM8K, 80}} {
		ss := loadSamples(t, c.name, "test", c.n)
		if _, err := Run(context.Background(), newReplay(ss, 2), c.name, ss, Options{}, filepath.Join(b, c.name)); err != nil {
			t.Fatal(err)
		}
		worse := newReplay(ss, 2)
		worse.wrongEvery = 3
		if _, err := Run(context.Background(), worse, c.name, ss, Options{}, filepath.Join(a, c.name)); err != nil {
			t.Fatal(err)
		}
	}
	ra, err := LoadRunSet(a)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := LoadRunSet(b)
	if err != nil {
		t.Fatal(err)
	}
	single, err := LoadRunSet(filepath.Join(a, bench.GSM8K))
	if err != nil || len(single.Benchmarks) != 1 {
		t.Fatalf("single-benchmark dir: %v", err)
	}
	rows, err := Compare([]*RunSet{ra, rb}, CompareOptions{BootstrapIters: 2000, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Benchmark != bench.GSM8K || rows[1].Benchmark != bench.MATH500 {
		t.Fatalf("rows %+v", rows)
	}
	for _, r := range rows {
		d := r.Deltas[1]
		if !d.Computed || d.Paired != 80 || d.Diff <= 0 || d.OnlyThis == 0 || d.CILow > d.Diff || d.CIHi < d.Diff || d.PValue >= 0.05 {
			t.Errorf("%s: delta %+v", r.Benchmark, d)
		}
		if math.Abs(r.Cells[1].Accuracy-r.Cells[0].Accuracy-d.Diff) > 1e-12 {
			t.Errorf("%s: cells %+v vs diff %v", r.Benchmark, r.Cells, d.Diff)
		}
	}
	var buf bytes.Buffer
	if err := WriteCompareMarkdown(&buf, []*RunSet{ra, rb}, rows); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "| benchmark") || !strings.Contains(out, "p (McNemar)") || !strings.Contains(out, "| math500") ||
		!strings.Contains(out, "| average") {
		t.Errorf("table:\n%s", out)
	}
	if _, err := LoadRunSet(t.TempDir()); err == nil {
		t.Error("empty dir: want error")
	}
}
