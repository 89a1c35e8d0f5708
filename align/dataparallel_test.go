package align

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// localGroup is an in-process communicator: ranks are goroutines and an allgather is a copy
// through shared slots between two barriers. It runs the data-parallel trainer without MPI.
type localGroup struct {
	size  int
	mu    sync.Mutex
	cond  *sync.Cond
	count int
	gen   int
	slots []any
}

type localRank struct {
	g    *localGroup
	rank int
}

func newLocalGroup(size int) []Comm {
	g := &localGroup{size: size, slots: make([]any, size)}
	g.cond = sync.NewCond(&g.mu)
	out := make([]Comm, size)
	for r := range out {
		out[r] = localRank{g, r}
	}
	return out
}

func (g *localGroup) barrier() {
	g.mu.Lock()
	defer g.mu.Unlock()
	gen := g.gen
	if g.count++; g.count == g.size {
		g.count, g.gen = 0, g.gen+1
		g.cond.Broadcast()
		return
	}
	for gen == g.gen {
		g.cond.Wait()
	}
}

func (r localRank) Rank() int { return r.rank }
func (r localRank) Size() int { return r.g.size }

func allgather[T any](r localRank, send, recv []T) error {
	if len(recv) != len(send)*r.g.size {
		return fmt.Errorf("allgather: receive %d, want %d", len(recv), len(send)*r.g.size)
	}
	r.g.mu.Lock()
	r.g.slots[r.rank] = send
	r.g.mu.Unlock()
	r.g.barrier()
	for k := 0; k < r.g.size; k++ {
		r.g.mu.Lock()
		s := r.g.slots[k].([]T)
		r.g.mu.Unlock()
		copy(recv[k*len(send):], s)
	}
	r.g.barrier()
	return nil
}

func (r localRank) AllgatherFloat32(send, recv []float32) error { return allgather(r, send, recv) }
func (r localRank) AllgatherFloat64(send, recv []float64) error { return allgather(r, send, recv) }

// TestDataParallelEqualsSingleProcess: 2 and 3 ranks, each with its own copy of the model, dealing
// a step's micro-batches between them, end with the single-process run's adapter and metrics bit
// for bit (same batch and micro-batch, i.e. the same gradient accumulation); an interruption on
// one rank stops every rank after the same step, and the resumed job ends identical too.
func TestDataParallelEqualsSingleProcess(t *testing.T) {
	type rankRun struct {
		params [][]float32
		err    error
	}
	run := func(dir string, comm Comm, cancelAt int) rankRun {
		m := newToyModel(t, 12, 4, 1)
		pairs, refs := toyData(m, 14, 2)
		eval, evalRefs := toyData(m, 4, 3)
		loss, err := NewLossFromSpec("dpo", nil, false)
		if err != nil {
			t.Fatal(err)
		}
		save, load := toyAdapterIO(m.lora)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cfg := TrainConfig{RunDir: dir, Loss: loss, Optimizer: DefaultAdamWConfig(), LR: 0.05, Scheduler: "cosine", MaxGradNorm: 0.5,
			BatchSize: 5, MicroBatch: 1, Epochs: 3, Seed: 7, EvalEvery: 4, SaveEvery: 3, SaveAdapter: save, LoadAdapter: load, Comm: comm,
			OnStep: func(s StepMetrics) {
				if s.Step == cancelAt && s.Split == "" {
					cancel()
				}
			}}
		tr, err := NewTrainer(cfg, &toyPolicy{m: m}, pairs, refs, eval, evalRefs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Resume(); err != nil {
			return rankRun{err: err}
		}
		_, err = tr.Run(ctx)
		var params [][]float32
		for _, p := range m.lora.Params() {
			params = append(params, slices.Clone(p))
		}
		return rankRun{params, err}
	}
	job := func(dir string, size, cancelRank, cancelAt int) []rankRun {
		comms := newLocalGroup(size)
		out := make([]rankRun, size)
		var wg sync.WaitGroup
		for r := range comms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				at := 0
				if r == cancelRank {
					at = cancelAt
				}
				out[r] = run(dir, comms[r], at)
			}()
		}
		wg.Wait()
		return out
	}
	single := t.TempDir()
	want := run(single, nil, 0)
	if want.err != nil {
		t.Fatal(want.err)
	}
	wantMetrics := readFile(t, filepath.Join(single, MetricsFileName))
	for _, size := range []int{2, 3} {
		dir := t.TempDir()
		for r, got := range job(dir, size, -1, 0) {
			if got.err != nil {
				t.Fatalf("%d ranks, rank %d: %v", size, r, got.err)
			}
			for i := range want.params {
				if !slices.Equal(got.params[i], want.params[i]) {
					t.Fatalf("%d ranks, rank %d: tensor %d differs from the single-process run", size, r, i)
				}
			}
		}
		if got := readFile(t, filepath.Join(dir, MetricsFileName)); got != wantMetrics {
			t.Errorf("%d ranks: metrics differ from the single-process run:\n%s\nwant\n%s", size, got, wantMetrics)
		}
	}
	// Rank 1 is interrupted after step 5: both ranks stop there, rank 0 checkpoints, and the
	// relaunched job resumes to the single-process result.
	dir := t.TempDir()
	for r, got := range job(dir, 2, 1, 5) {
		if !errors.Is(got.err, context.Canceled) && !errors.Is(got.err, errJobInterrupted) {
			t.Fatalf("interrupted job, rank %d: %v", r, got.err)
		}
	}
	if cp := readFile(t, filepath.Join(dir, latestCheckpointFile)); cp != "checkpoint-000005\n" {
		t.Fatalf("interrupted job: latest checkpoint %q, want step 5", cp)
	}
	for r, got := range job(dir, 2, -1, 0) {
		if got.err != nil {
			t.Fatalf("resumed job, rank %d: %v", r, got.err)
		}
		for i := range want.params {
			if !slices.Equal(got.params[i], want.params[i]) {
				t.Fatalf("resumed job, rank %d: tensor %d differs from the single-process run", r, i)
			}
		}
	}
	if got := readFile(t, filepath.Join(dir, MetricsFileName)); got != wantMetrics {
		t.Errorf("resumed job: metrics differ from the single-process run:\n%s\nwant\n%s", got, wantMetrics)
	}
}
