package align

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// bigramLM is a small real language model for SFT tests: the next token's logits are the row of W of
// the current token, and NLLGradient is the exact gradient of the mean completion NLL.
type bigramLM struct {
	vocab int
	w     []float32
}

func newBigramLM(vocab int) *bigramLM {
	rng := rand.New(rand.NewPCG(3, 3))
	m := &bigramLM{vocab: vocab, w: make([]float32, vocab*vocab)}
	for i := range m.w {
		m.w[i] = float32(rng.NormFloat64() * 0.5)
	}
	return m
}

func (m *bigramLM) ParamShapes() []ParamShape { return []ParamShape{{Name: "w", Size: len(m.w)}} }
func (m *bigramLM) Params() [][]float32       { return [][]float32{m.w} }

func (m *bigramLM) NLLGradient(ctx context.Context, batch []TokenSeq, grads [][]float32) (float64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, s := range batch {
		n += len(s.Completion)
	}
	var nll float64
	p := make([]float64, m.vocab)
	for _, seq := range batch {
		s := struct {
			Tokens    []int32
			PromptLen int
		}{slices.Concat(seq.Prompt, seq.Completion), len(seq.Prompt)}
		for i := s.PromptLen; i < len(s.Tokens); i++ {
			row := m.w[int(s.Tokens[i-1])*m.vocab:][:m.vocab]
			top := float64(slices.Max(row))
			var z float64
			for j, v := range row {
				p[j] = math.Exp(float64(v) - top)
				z += p[j]
			}
			nll -= math.Log(p[s.Tokens[i]] / z)
			g := grads[0][int(s.Tokens[i-1])*m.vocab:][:m.vocab]
			for j := range g {
				d := p[j] / z
				if j == int(s.Tokens[i]) {
					d--
				}
				g[j] += float32(d / float64(n))
			}
		}
	}
	return nll / float64(n), nil
}

func bigramIO(m *bigramLM) (save, load func(dir string) error) {
	path := func(dir string) string { return filepath.Join(dir, "w.bin") }
	save = func(dir string) error {
		f, err := os.Create(path(dir))
		if err != nil {
			return err
		}
		defer f.Close()
		return binary.Write(f, binary.LittleEndian, m.w)
	}
	load = func(dir string) error {
		f, err := os.Open(path(dir))
		if err != nil {
			return err
		}
		defer f.Close()
		return binary.Read(f, binary.LittleEndian, m.w)
	}
	return save, load
}

func bigramSeqs(n, vocab int) []TokenSeq {
	rng := rand.New(rand.NewPCG(9, 9))
	var seqs []TokenSeq
	for range n {
		toks := make([]int32, 3+rng.IntN(6))
		for i := range toks {
			toks[i] = int32(rng.IntN(vocab))
		}
		pl := 1 + rng.IntN(2)
		seqs = append(seqs, TokenSeq{Prompt: toks[:pl], Completion: toks[pl:]})
	}
	return seqs
}

// sftMetricsWithoutSeconds is an SFT run's metrics.jsonl without the per-step timings.
func sftMetricsWithoutSeconds(t *testing.T, dir string) []SFTStep {
	t.Helper()
	var steps []SFTStep
	for _, line := range strings.Split(strings.TrimSpace(readFile(t, filepath.Join(dir, MetricsFileName))), "\n") {
		var s SFTStep
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatal(err)
		}
		s.Seconds = 0
		steps = append(steps, s)
	}
	return steps
}

// TestSFTDataParallelEqualsSingleProcess: SFT with micro-batches over 2 and 3 in-process ranks ends
// with the single-process run's weights bit for bit and the same metrics (but the step seconds); a
// rank interrupted mid-run stops every rank after the same step with a checkpoint, and the resumed
// job ends identical too. Gradient accumulation itself matches the whole-batch gradient.
func TestSFTDataParallelEqualsSingleProcess(t *testing.T) {
	const vocab = 7
	seqs := bigramSeqs(13, vocab)
	run := func(dir string, micro int, comm Comm, cancelAt int) ([]float32, error) {
		m := newBigramLM(vocab)
		save, load := bigramIO(m)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cfg := SFTConfig{RunDir: dir, Optimizer: DefaultAdamWConfig(), LR: 0.05, Scheduler: "cosine", MaxGradNorm: 0.5,
			BatchSize: 5, MicroBatch: micro, Epochs: 3, Seed: 7, SaveEvery: 2, Save: save, Load: load, Comm: comm,
			OnStep: func(s SFTStep) {
				if s.Step == cancelAt {
					cancel()
				}
			}}
		_, err := RunSFT(ctx, cfg, m, seqs)
		return m.w, err
	}
	job := func(dir string, size, cancelRank, cancelAt int) ([][]float32, []error) {
		comms := newLocalGroup(size)
		ws, errs := make([][]float32, size), make([]error, size)
		var wg sync.WaitGroup
		for r := range comms {
			wg.Go(func() {
				at := 0
				if r == cancelRank {
					at = cancelAt
				}
				ws[r], errs[r] = run(dir, 2, comms[r], at)
			})
		}
		wg.Wait()
		return ws, errs
	}
	single := t.TempDir()
	want, err := run(single, 2, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantMetrics := sftMetricsWithoutSeconds(t, single)
	if len(wantMetrics) != 9 {
		t.Fatalf("single process: %d steps, want 3 epochs of 3", len(wantMetrics))
	}
	check := func(name, dir string, ws [][]float32) {
		t.Helper()
		for r, w := range ws {
			if !slices.Equal(w, want) {
				t.Errorf("%s, rank %d: weights differ from the single-process run", name, r)
			}
		}
		if got := sftMetricsWithoutSeconds(t, dir); !reflect.DeepEqual(got, wantMetrics) {
			t.Errorf("%s: metrics differ from the single-process run:\n%v\nwant\n%v", name, got, wantMetrics)
		}
	}
	for _, size := range []int{2, 3} {
		dir := t.TempDir()
		ws, errs := job(dir, size, -1, 0)
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("%d ranks: %v", size, err)
		}
		check(map[int]string{2: "2 ranks", 3: "3 ranks"}[size], dir, ws)
	}

	dir := t.TempDir()
	_, errs := job(dir, 2, 1, 5)
	for r, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted job, rank %d: %v", r, err)
		}
	}
	if cp := readFile(t, filepath.Join(dir, latestCheckpointFile)); cp != "checkpoint-000005\n" {
		t.Fatalf("interrupted job: latest checkpoint %q, want step 5", cp)
	}
	ws, errs := job(dir, 2, -1, 0)
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("resumed job: %v", err)
	}
	check("resumed job", dir, ws)

	// Micro-batches weighted by their completion tokens give the whole batch's loss and gradient.
	whole := t.TempDir()
	if _, err := run(whole, 0, nil, 0); err != nil {
		t.Fatal(err)
	}
	a, b := sftMetricsWithoutSeconds(t, whole)[0], wantMetrics[0]
	if math.Abs(a.Loss-b.Loss) > 1e-12*a.Loss || math.Abs(a.GradNorm-b.GradNorm) > 1e-6*a.GradNorm {
		t.Errorf("first step: whole batch loss %v, grad norm %v; micro-batches of 2: %v, %v", a.Loss, a.GradNorm, b.Loss,
			b.GradNorm)
	}
}
