package shardgen

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/bpo-dev/bpo/eval"
	"github.com/bpo-dev/bpo/eval/bench"
	"github.com/bpo-dev/bpo/eval/llamagen"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/llama"
)

// job joins goroutines as the ranks of one in-process job: AllgatherBytes waits for every rank, like
// MPI_Allgatherv (the MPI binding itself is tested under mpirun by cmd/bpo's MPI tests).
type job struct {
	mu      sync.Mutex
	cond    *sync.Cond
	size    int
	round   int
	arrived int
	slots   [][]byte
	last    [][]byte
}

func newJob(size int) *job {
	j := &job{size: size, slots: make([][]byte, size)}
	j.cond = sync.NewCond(&j.mu)
	return j
}

// rank is one rank's view of the job.
type rank struct {
	*job
	r int
}

func (r rank) Rank() int { return r.r }
func (r rank) Size() int { return r.size }
func (r rank) AllgatherBytes(send []byte) ([][]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	round := r.round
	r.slots[r.r] = append([]byte(nil), send...)
	if r.arrived++; r.arrived == r.size {
		r.last, r.slots = r.slots, make([][]byte, r.size)
		r.arrived = 0
		r.round++
		r.cond.Broadcast()
	}
	for round == r.round {
		r.cond.Wait()
	}
	return r.last, nil
}

// storiesGenerator is llamagen over stories260K decoding one sequence at a time, as each rank has
// its own model and context.
func storiesGenerator(t *testing.T) *llamagen.Generator {
	t.Helper()
	m, err := llama.LoadModel(fixture.File(t, "models/stories260K.gguf"), llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	c, err := llama.NewContext(m, llama.ContextOptions{NCtx: 1024, NSeq: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &llamagen.Generator{Model: m, Ctx: c, Parallel: 1, DefaultMaxNewTokens: 16}
}

// runSharded runs eval.Run on rank 0 of a job of size ranks with a Leader, the other ranks serving
// with ctxs[r]; it returns rank 0's error and the others'.
func runSharded(
	t *testing.T,
	gens []eval.Generator,
	ctxs []context.Context,
	samples []bench.Sample,
	opts eval.Options,
	dir string,
) (error, []error) {
	j := newJob(len(gens))
	errs := make([]error, len(gens))
	var wg sync.WaitGroup
	for r := 1; r < len(gens); r++ {
		wg.Go(func() { errs[r] = Serve(ctxs[r], rank{j, r}, gens[r]) })
	}
	leader, err := NewLeader(rank{j, 0}, gens[0])
	if err != nil {
		t.Fatal(err)
	}
	_, err = eval.Run(ctxs[0], leader, "gsm8k", samples, opts, dir)
	if cerr := leader.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	wg.Wait()
	return err, errs[1:]
}

// TestLeaderEqualsOneProcess: an eval of GSM8K questions with stories260K (2 sampled answers each)
// over 3 in-process ranks writes the samples.jsonl of the single-generator run byte for byte. A job
// whose rank 2 is interrupted stops with context.Canceled on every rank, keeps the finished
// questions, and the rerun completes to the same file.
func TestLeaderEqualsOneProcess(t *testing.T) {
	all, err := bench.LoadEmbedded(bench.GSM8K, "test")
	if err != nil {
		t.Fatal(err)
	}
	samples := all[:9]
	opts := eval.Options{Prompter: bench.FewShotPrompter{}, PromptName: bench.FormatGSM8KFewShot, Method: "flexible",
		Gen: eval.GenParams{N: 2, MaxNewTokens: 16, Temperature: 1, TopP: 0.95, Seed: 5}, BatchSize: 6}
	gens := []eval.Generator{storiesGenerator(t), storiesGenerator(t), storiesGenerator(t)}
	single := t.TempDir()
	if _, err := eval.Run(context.Background(), gens[0], "gsm8k", samples, opts, single); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(single, eval.SamplesFile))
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	sharded := t.TempDir()
	if err, errs := runSharded(t, gens, []context.Context{bg, bg, bg}, samples, opts, sharded); err != nil ||
		errors.Join(errs...) != nil {
		t.Fatalf("3 ranks: %v, %v", err, errs)
	}
	if got, _ := os.ReadFile(filepath.Join(sharded, eval.SamplesFile)); string(got) != string(want) {
		t.Errorf("3 ranks wrote\n%s\nwant\n%s", got, want)
	}

	interrupted := t.TempDir()
	cancelled, cancel := context.WithCancel(bg)
	cancel()
	err, errs := runSharded(t, gens, []context.Context{bg, bg, cancelled}, samples, opts, interrupted)
	if !errors.Is(err, context.Canceled) || errs[0] != nil || !errors.Is(errs[1], context.Canceled) {
		t.Fatalf("rank 2 interrupted: rank 0 %v, rank 1 %v, rank 2 %v", err, errs[0], errs[1])
	}
	recs, err := eval.ReadRecords(interrupted)
	if err != nil || len(recs) != 4 { // the first batch's questions 0, 1, 3, 4 (ranks 0 and 1)
		t.Fatalf("after the interruption: %d records (%v), want the 4 of ranks 0 and 1", len(recs), err)
	}
	if err, errs := runSharded(t, gens, []context.Context{bg, bg, bg}, samples, opts, interrupted); err != nil ||
		errors.Join(errs...) != nil {
		t.Fatalf("rerun: %v, %v", err, errs)
	}
	got, err := eval.ReadRecords(interrupted)
	if err != nil {
		t.Fatal(err)
	}
	wantRecs, err := eval.ReadRecords(single)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]string{}
	for _, r := range wantRecs {
		byID[r.ID] = r.Response + "|" + r.Responses[1]
	}
	if len(got) != len(wantRecs) {
		t.Fatalf("resumed run: %d records, want %d", len(got), len(wantRecs))
	}
	for _, r := range got {
		if byID[r.ID] != r.Response+"|"+r.Responses[1] {
			t.Errorf("resumed run: question %s answered %q, want %q", r.ID, r.Response, byID[r.ID])
		}
	}
}
