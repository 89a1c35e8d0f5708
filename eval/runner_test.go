package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bpo-dev/bpo/eval/bench"
	"github.com/bpo-dev/bpo/eval/grader"
	"github.com/bpo-dev/bpo/internal/runlock"
)

// loadSamples reads the first limit questions (0: all) of an embedded evaluation set.
func loadSamples(t testing.TB, name, split string, limit int) []bench.Sample {
	t.Helper()
	ss, err := bench.LoadEmbedded(name, split)
	if err != nil {
		t.Fatal(err)
	}
	ss, err = bench.Select(ss, bench.Selection{Limit: limit})
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

// expectedCorrect grades the gold solutions directly (what a replay run must reproduce).
func expectedCorrect(bm string, ss []bench.Sample) int {
	n := 0
	for _, s := range ss {
		if grader.Grade(bm, grader.MethodQwen, s.Solution, s.Answer).Correct {
			n++
		}
	}
	return n
}

func sortedRecords(t testing.TB, dir string) []Record {
	t.Helper()
	recs, err := ReadRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	return recs
}

func TestRunReplaysGoldSolutions(t *testing.T) {
	ss := loadSamples(t, bench.MATH500, "test", 60)
	dir := t.TempDir()
	sum, err := Run(context.Background(), newReplay(ss, 4), bench.MATH500, ss, Options{Model: "replay", PromptName: bench.FormatBoxed}, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := expectedCorrect(bench.MATH500, ss)
	if sum.N != 60 || sum.Correct != want || !sum.Complete || sum.K != 1 {
		t.Fatalf("summary n=%d correct=%d complete=%v k=%d, want 60/%d complete k=1", sum.N, sum.Correct, sum.Complete, sum.K, want)
	}
	if sum.Accuracy < 0.97 || sum.CILow > sum.Accuracy || sum.CIHigh < sum.Accuracy-1e-9 {
		t.Errorf("accuracy %.3f CI [%.3f, %.3f]", sum.Accuracy, sum.CILow, sum.CIHigh)
	}
	n := 0
	for _, g := range sum.BySubject {
		n += g.N
	}
	if n != 60 || len(sum.ByLevel) != 5 || sum.GeneratedTokens <= 0 || sum.Truncated != 0 {
		t.Errorf("by subject total %d, %d levels, %d tokens", n, len(sum.ByLevel), sum.GeneratedTokens)
	}
	recs := sortedRecords(t, dir)
	if len(recs) != 60 {
		t.Fatalf("%d records, want 60", len(recs))
	}
	r := recs[0]
	if r.Prompt.Messages[0].Content != bench.QwenMathSystemPrompt || r.Response == "" || r.Gold == "" || len(r.Tokens) != 1 || r.Benchmark != bench.MATH500 {
		t.Errorf("record = %+v", r)
	}
	got, err := ReadSummary(dir)
	if err != nil || got.Correct != sum.Correct {
		t.Errorf("summary.json: %+v %v", got, err)
	}
	md, err := os.ReadFile(filepath.Join(dir, SummaryMDFile))
	if err != nil || !bytes.Contains(md, []byte("## By subject")) || !bytes.Contains(md, []byte("accuracy (%)")) {
		t.Errorf("summary.md:\n%s %v", md, err)
	}
}

func TestRunParallelismDoesNotChangeResults(t *testing.T) {
	ss := loadSamples(t, bench.GSM8K, "test", 40)
	d1, d4 := t.TempDir(), t.TempDir()
	if _, err := Run(context.Background(), newReplay(ss, 1), bench.GSM8K, ss, Options{}, d1); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), newReplay(ss, 4), bench.GSM8K, ss, Options{BatchSize: 7}, d4); err != nil {
		t.Fatal(err)
	}
	a, b := sortedRecords(t, d1), sortedRecords(t, d4)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Error("records differ between 1 and 4 parallel workers")
	}
}

func TestRunCancelAndResume(t *testing.T) {
	ss := loadSamples(t, bench.GSM8K, "test", 30)
	ref := t.TempDir()
	if _, err := Run(context.Background(), newReplay(ss, 2), bench.GSM8K, ss, Options{}, ref); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	g := newReplay(ss, 2)
	g.delay = 2 * time.Millisecond
	sum, err := Run(ctx, g, bench.GSM8K, ss, Options{OnProgress: func(done, total int) {
		if done == 10 {
			cancel()
		}
	}}, dir)
	if !errors.Is(err, context.Canceled) || sum == nil || sum.Complete || sum.N < 10 || sum.N >= 30 {
		t.Fatalf("cancelled run: err=%v summary=%+v", err, sum)
	}
	// A torn final line, as a kill during a write leaves it.
	f, _ := os.OpenFile(filepath.Join(dir, SamplesFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"99","benchmark":"gsm8k","resp`)
	f.Close()
	sum, err = Run(context.Background(), newReplay(ss, 3), bench.GSM8K, ss, Options{}, dir)
	if err != nil || !sum.Complete || sum.N != 30 {
		t.Fatalf("resumed: %v %+v", err, sum)
	}
	checkSameRecords(t, ref, dir)
}

func checkSameRecords(t *testing.T, refDir, dir string) {
	t.Helper()
	a, b := sortedRecords(t, refDir), sortedRecords(t, dir)
	if len(a) != len(b) {
		t.Fatalf("%d records after resume, want %d", len(b), len(a))
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Response != b[i].Response || a[i].Correct != b[i].Correct {
			t.Fatalf("record %d differs: %s/%v vs %s/%v", i, a[i].ID, a[i].Correct, b[i].ID, b[i].Correct)
		}
	}
}

// TestMain doubles as the child process of TestRunKillAndResume: with BPO_EVAL_KILL_DIR set it
// runs a slow evaluation into that directory until the parent kills it.
func TestMain(m *testing.M) {
	if dir := os.Getenv("BPO_EVAL_KILL_DIR"); dir != "" {
		ss, err := bench.LoadEmbedded(bench.GSM8K, "test")
		if err != nil {
			os.Exit(3)
		}
		ss = ss[:40]
		g := newReplay(ss, 2)
		g.delay = 20 * time.Millisecond
		Run(context.Background(), g, bench.GSM8K, ss, Options{}, dir)
		os.Exit(4) // not killed in time
	}
	os.Exit(m.Run())
}

func TestRunKillAndResume(t *testing.T) {
	ss := loadSamples(t, bench.GSM8K, "test", 40)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "BPO_EVAL_KILL_DIR="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, SamplesFile)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if bytes.Count(b, []byte("\n")) >= 8 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("child made no progress")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	before, err := ReadRecords(dir)
	if err != nil || len(before) < 8 || len(before) >= 40 {
		t.Fatalf("after kill: %d records, %v", len(before), err)
	}
	if _, err := os.Stat(filepath.Join(dir, SummaryFile)); err == nil {
		t.Error("a killed run should not have written summary.json")
	}
	sum, err := Run(context.Background(), newReplay(ss, 4), bench.GSM8K, ss, Options{}, dir)
	if err != nil || !sum.Complete || sum.N != 40 {
		t.Fatalf("resume after kill: %v %+v", err, sum)
	}
	ref := t.TempDir()
	if _, err := Run(context.Background(), newReplay(ss, 1), bench.GSM8K, ss, Options{}, ref); err != nil {
		t.Fatal(err)
	}
	checkSameRecords(t, ref, dir)
}

func TestRunFailedRequestIsRetried(t *testing.T) {
	ss := loadSamples(t, bench.AIME24, "test", 10)
	dir := t.TempDir()
	g := newReplay(ss, 2)
	g.failQ = ss[3].Question
	sum, err := Run(context.Background(), g, bench.AIME24, ss, Options{}, dir)
	if err != nil || sum.Complete || sum.Failed != 1 || sum.N != 9 {
		t.Fatalf("with a failure: %v %+v", err, sum)
	}
	sum, err = Run(context.Background(), newReplay(ss, 2), bench.AIME24, ss, Options{}, dir)
	if err != nil || !sum.Complete || sum.N != 10 || sum.Failed != 0 {
		t.Fatalf("retry: %v %+v", err, sum)
	}
}

func TestRunRejectsMismatchedRunDir(t *testing.T) {
	ss := loadSamples(t, bench.AMC23, "test", 5)
	dir := t.TempDir()
	if _, err := Run(context.Background(), newReplay(ss, 1), bench.AMC23, ss, Options{}, dir); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), newReplay(ss, 1), bench.AIME24, ss, Options{}, dir)
	if err == nil || !strings.Contains(err.Error(), "--benchmark: was amc23, now aime24") {
		t.Errorf("other benchmark: %v", err)
	}
	_, err = Run(context.Background(), newReplay(ss, 1), bench.AMC23, ss, Options{Gen: GenParams{N: 4}}, dir)
	if err == nil || !strings.Contains(err.Error(), "--n: was 1, now 4") {
		t.Errorf("other k: %v", err)
	}
	_, err = Run(context.Background(), newReplay(ss, 1), bench.AMC23, ss, Options{Method: "exact"}, dir)
	if err == nil || !strings.Contains(err.Error(), `unknown grading method "exact"`) {
		t.Errorf("bad method: %v", err)
	}
	os.WriteFile(filepath.Join(dir, SamplesFile), []byte("{\"id\":\"1\"}\nnot json\n"), 0o644)
	_, err = Run(context.Background(), newReplay(ss, 1), bench.AMC23, ss, Options{}, dir)
	if err == nil || !strings.Contains(err.Error(), "samples.jsonl:1:") {
		t.Errorf("corrupt file: %v", err)
	}
}

// TestRunRefusesChangedSettings: resuming a run directory with any changed setting is refused with
// a message naming that setting; the same settings resume.
func TestRunRefusesChangedSettings(t *testing.T) {
	ss := loadSamples(t, bench.AMC23, "test", 4)
	base := Options{ModelID: "m1", AdapterIDs: []string{"scale 1, file a1"}, PromptName: bench.FormatBoxed, ChatTemplate: "",
		Gen: GenParams{N: 2, MaxNewTokens: 64, Temperature: 0.7, TopP: 0.95, Seed: 3}}
	dir := t.TempDir()
	if _, err := Run(context.Background(), newReplay(ss[:2], 1), bench.AMC23, ss[:2], base, dir); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		flag   string
		change func(o *Options)
	}{
		{"--model", func(o *Options) { o.ModelID = "m2" }},
		{"--adapter", func(o *Options) { o.AdapterIDs = nil }},
		{"--adapter", func(o *Options) { o.AdapterIDs = []string{"scale 0.5, file a1"} }},
		{"--prompt", func(o *Options) { o.PromptName = bench.FormatGSM8KFewShot }},
		{"--prompt-template", func(o *Options) { o.PromptID = "template 1234" }},
		{"--template", func(o *Options) { o.ChatTemplate = "chatml" }},
		{"--temperature", func(o *Options) { o.Gen.Temperature = 1 }},
		{"--top-p", func(o *Options) { o.Gen.TopP = 1 }},
		{"--top-k", func(o *Options) { o.Gen.TopK = 5 }},
		{"--seed", func(o *Options) { o.Gen.Seed = 4 }},
		{"--max-new-tokens", func(o *Options) { o.Gen.MaxNewTokens = 32 }},
		{"--stop", func(o *Options) { o.Gen.Stop = []string{"###"} }},
		{"--method", func(o *Options) { o.Method = grader.MethodStrict }},
	}
	for _, tc := range cases {
		o := base
		tc.change(&o)
		_, err := Run(context.Background(), newReplay(ss, 1), bench.AMC23, ss, o, dir)
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("changed %s: got %v", tc.flag, err)
		}
	}
	if recs, _ := ReadRecords(dir); len(recs) != 2 {
		t.Fatalf("refused runs wrote records: %d", len(recs))
	}
	// A larger selection with the same settings extends the run.
	sum, err := Run(context.Background(), newReplay(ss, 1), bench.AMC23, ss, base, dir)
	if err != nil || sum.N != 4 {
		t.Fatalf("same settings: %v %+v", err, sum)
	}
}

// TestRunRefusesLockedDir: a run directory held by another run is refused before any work.
func TestRunRefusesLockedDir(t *testing.T) {
	ss := loadSamples(t, bench.AMC23, "test", 2)
	dir := t.TempDir()
	lock, err := runlock.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), newReplay(ss, 1), bench.AMC23, ss, Options{}, dir)
	if !errors.Is(err, runlock.ErrLocked) {
		t.Fatalf("locked dir: got %v", err)
	}
	lock.Release()
	if _, err := Run(context.Background(), newReplay(ss, 1), bench.AMC23, ss, Options{}, dir); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// TestPartialSummarySaysSo: summary.md of an interrupted run says it is partial; a finished one does not.
func TestPartialSummarySaysSo(t *testing.T) {
	ss := loadSamples(t, bench.AMC23, "test", 6)
	dir := t.TempDir()
	g := newReplay(ss, 1)
	g.failQ = ss[2].Question
	if _, err := Run(context.Background(), g, bench.AMC23, ss, Options{}, dir); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "summary.md"))
	if err != nil || !strings.Contains(string(md), "**Partial run:** 5 of 6 questions") {
		t.Fatalf("partial summary.md lacks the partial note (%v):\n%s", err, md)
	}
	if _, err := Run(context.Background(), newReplay(ss, 1), bench.AMC23, ss, Options{}, dir); err != nil {
		t.Fatal(err)
	}
	md, _ = os.ReadFile(filepath.Join(dir, "summary.md"))
	if strings.Contains(string(md), "Partial") {
		t.Fatalf("complete run's summary.md says partial:\n%s", md)
	}
}

// TestBuildPairsIndependentOfRecordOrder: a resumed run appends records in another order; the pairs
// chosen for each question must not change.
func TestBuildPairsIndependentOfRecordOrder(t *testing.T) {
	var recs []Record
	for q := range 12 {
		r := Record{ID: "q" + string(rune('a'+q)), Benchmark: bench.GSM8K, Prompt: bench.Prompt{Text: "question"}}
		for j := range 6 {
			r.Responses = append(r.Responses, "answer "+string(rune('0'+j)))
			r.Corrects = append(r.Corrects, (q+j)%3 == 0)
			r.Preds = append(r.Preds, string(rune('0'+j)))
		}
		recs = append(recs, r)
	}
	byID := func(ps []Pair) map[string][]Pair {
		out := map[string][]Pair{}
		for _, p := range ps {
			out[p.ID] = append(out[p.ID], p)
		}
		return out
	}
	opts := PairOptions{Seed: 9, MaxPerQuestion: 2}
	want, st := BuildPairs(recs, opts)
	reversed := append([]Record(nil), recs...)
	for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
		reversed[i], reversed[j] = reversed[j], reversed[i]
	}
	got, _ := BuildPairs(reversed, opts)
	if st.Pairs == 0 || !reflect.DeepEqual(byID(got), byID(want)) {
		t.Fatalf("pairs depend on the record order (%d pairs)", st.Pairs)
	}
}
