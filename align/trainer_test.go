package align

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// toyPolicy adapts the toy bigram model to the Policy interface; pairs are TokenizedPairs whose
// prompt's last token conditions the completion.
type toyPolicy struct {
	m      *toyModel
	nanAt  int // when > 0, the forward of the nanAt-th ForwardBackward call returns NaN
	calls  int
	cancel func()
}

func (p *toyPolicy) ParamShapes() []ParamShape { return p.m.lora.ParamShapes() }
func (p *toyPolicy) Params() [][]float32       { return p.m.lora.Params() }

func toInts(s []int32) []int {
	out := make([]int, len(s))
	for i, v := range s {
		out[i] = int(v)
	}
	return out
}

func (p *toyPolicy) toyBatch(batch []TokenizedPair) []toyPair {
	out := make([]toyPair, len(batch))
	for i, b := range batch {
		out[i] = toyPair{prompt: int(b.Prompt[len(b.Prompt)-1]), chosen: toInts(b.Chosen), rejected: toInts(b.Rejected)}
	}
	return out
}

func (p *toyPolicy) Forward(ctx context.Context, batch []TokenizedPair) ([]float64, []float64, error) {
	w := p.m.weights(false)
	c, r := make([]float64, len(batch)), make([]float64, len(batch))
	for i, tp := range p.toyBatch(batch) {
		c[i] = p.m.seqLogp(w, tp.prompt, tp.chosen, 0, nil)
		r[i] = p.m.seqLogp(w, tp.prompt, tp.rejected, 0, nil)
	}
	return c, r, nil
}

func (p *toyPolicy) ForwardBackward(ctx context.Context, batch []TokenizedPair, loss LossFunc, grads [][]float32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.calls++
	c, r, _ := p.Forward(ctx, batch)
	if p.nanAt > 0 && p.calls == p.nanAt {
		c[0] = math.NaN()
	}
	_, pg, err := loss(c, r)
	if err != nil {
		return err
	}
	// reuse the toy's exact chain rule through a loss that replays pg
	replay := replayLoss{grads: pg}
	_, _, g, err := p.m.batchLossGrad(replay, p.toyBatch(batch))
	if err != nil {
		return err
	}
	for i := range grads {
		for j := range grads[i] {
			grads[i][j] += g[i][j]
		}
	}
	return nil
}

// replayLoss returns fixed per-pair gradients: it lets the toy back-propagate coefficients that
// the trainer's loss computed.
type replayLoss struct{ grads []PairGrad }

func (replayLoss) Name() string                                       { return "replay" }
func (replayLoss) Params() LossParams                                 { return LossParams{} }
func (replayLoss) NeedsReference() bool                               { return false }
func (replayLoss) Rewards(PairLogps) (float64, float64)               { return 0, 0 }
func (r replayLoss) Compute([]PairLogps) (float64, []PairGrad, error) { return 0, r.grads, nil }

// toyData returns n tokenized pairs and their reference log-probs.
func toyData(m *toyModel, n int, seed uint64) ([]TokenizedPair, []RefLogps) {
	pairs := toyPairs(m, n, seed)
	tps := make([]TokenizedPair, n)
	refs := make([]RefLogps, n)
	to32 := func(s []int) []int32 {
		out := make([]int32, len(s))
		for i, v := range s {
			out[i] = int32(v)
		}
		return out
	}
	for i, p := range pairs {
		tps[i] = TokenizedPair{Line: i + 1, Prompt: []int32{int32(p.prompt)}, Chosen: to32(p.chosen), Rejected: to32(p.rejected)}
		refs[i] = RefLogps{Chosen: p.refC, Rejected: p.refR}
	}
	return tps, refs
}

// toyAdapterIO saves/loads the LoRA tensors as raw float32 (the real trainer writes GGUF).
func toyAdapterIO(l *LoRA) (save, load func(dir string) error) {
	save = func(dir string) error {
		f, err := os.Create(filepath.Join(dir, "adapter.bin"))
		if err != nil {
			return err
		}
		defer f.Close()
		for _, p := range l.Params() {
			if err := binary.Write(f, binary.LittleEndian, p); err != nil {
				return err
			}
		}
		return nil
	}
	load = func(dir string) error {
		f, err := os.Open(filepath.Join(dir, "adapter.bin"))
		if err != nil {
			return err
		}
		defer f.Close()
		for _, p := range l.Params() {
			if err := binary.Read(f, binary.LittleEndian, p); err != nil {
				return err
			}
		}
		return nil
	}
	return save, load
}

func newToyTrainer(t *testing.T, dir string, lossName string, mutate func(*TrainConfig)) (*Trainer, *toyPolicy) {
	t.Helper()
	m := newToyModel(t, 12, 4, 1)
	train, refs := toyData(m, 30, 2)
	eval, evalRefs := toyData(m, 6, 3)
	loss, err := NewLossFromSpec(lossName, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	save, load := toyAdapterIO(m.lora)
	cfg := TrainConfig{
		RunDir: dir, Loss: loss, Optimizer: DefaultAdamWConfig(), LR: 0.03, Scheduler: "cosine", WarmupRatio: 0.1,
		MaxGradNorm: 1, BatchSize: 8, MicroBatch: 3, Epochs: 6, Seed: 11, SaveEvery: 5, EvalEvery: 10,
		SaveAdapter: save, LoadAdapter: load, Meta: map[string]string{"model": "toy"},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	p := &toyPolicy{m: m}
	tr, err := NewTrainer(cfg, p, train, refs, eval, evalRefs)
	if err != nil {
		t.Fatal(err)
	}
	return tr, p
}

// TestTrainerResumeIsExact interrupts a run (as Ctrl-C would) and resumes it in a fresh process
// state; metrics.jsonl must be byte-identical to an uninterrupted run's.
func TestTrainerResumeIsExact(t *testing.T) {
	tests := []struct {
		name, loss string
		mutate     func(*TrainConfig)
	}{
		{"bpo", "bpo", nil},
		{"dpo", "dpo", nil},
		{"composed", "bpo:1,sft:0.2", nil},
		// refreshed at the start of steps 7, 13 and 19: the checkpoint of step 13 holds a refreshed reference
		{"soft-refresh", "dpo", func(c *TrainConfig) { c.RefRefresh = RefRefresh{Every: 6, Mix: 0.5} }},
		// refreshed at the start of step 14: the resumed run does it
		{"hard-refresh", "bpo", func(c *TrainConfig) { c.RefRefresh = RefRefresh{Every: 13, Mix: 1} }},
		{"dcr-alarm-warn", "dpo", func(c *TrainConfig) { c.DCRAlarm = DCRAlarm{Rate: 0.1, Steps: 2} }},
	}
	for _, tc := range tests {
		lossName := tc.loss
		t.Run(tc.name, func(t *testing.T) {
			full := t.TempDir()
			tr, _ := newToyTrainer(t, full, lossName, tc.mutate)
			if tr.TotalSteps() != 24 { // 6 epochs x ceil(30/8)
				t.Fatalf("total steps %d", tr.TotalSteps())
			}
			res, err := tr.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res.Steps != 24 || res.Pairs != 6*30 || res.LastEval == nil || res.LastEval.Step != 24 {
				t.Fatalf("result %+v", res)
			}

			parted := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			tr, _ = newToyTrainer(t, parted, lossName, func(c *TrainConfig) {
				if tc.mutate != nil {
					tc.mutate(c)
				}
				c.OnStep = func(s StepMetrics) {
					if s.Step == 13 && s.Split == "" {
						cancel()
					}
				}
			})
			_, err = tr.Run(ctx)
			if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted after step 13") {
				t.Fatalf("interrupted run: %v", err)
			}
			cancel()
			tr, _ = newToyTrainer(t, parted, lossName, tc.mutate)
			ok, err := tr.Resume()
			if err != nil || !ok || tr.Step() != 13 {
				t.Fatalf("resume: %v %v step %d", ok, err, tr.Step())
			}
			res2, err := tr.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res2.ResumedFrom != 13 || res2.Steps != 24 {
				t.Fatalf("resumed result %+v", res2)
			}
			a, _ := os.ReadFile(filepath.Join(full, MetricsFileName))
			b, _ := os.ReadFile(filepath.Join(parted, MetricsFileName))
			if string(a) != string(b) {
				t.Fatalf("metrics differ:\nfull:\n%s\nresumed:\n%s", a, b)
			}
			if n := strings.Count(string(a), `"split":"eval"`); n != 3 { // steps 10, 20, 24
				t.Errorf("%d eval lines, want 3", n)
			}
			entries, _ := os.ReadDir(parted)
			var cps []string
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), "checkpoint-") || strings.HasPrefix(e.Name(), ".") {
					cps = append(cps, e.Name())
				}
			}
			if strings.Join(cps, ",") != "checkpoint-000020,checkpoint-000024" {
				t.Errorf("checkpoints on disk: %v", cps)
			}
			latest, _ := os.ReadFile(filepath.Join(parted, latestCheckpointFile))
			if strings.TrimSpace(string(latest)) != "checkpoint-000024" {
				t.Errorf("latest-checkpoint = %q", latest)
			}
		})
	}
}

// TestTrainerStopsOnNaN: a NaN log-prob stops the run at that step with a clear error, and the last
// good checkpoint stays the latest.
func TestTrainerStopsOnNaN(t *testing.T) {
	dir := t.TempDir()
	tr, p := newToyTrainer(t, dir, "dpo", nil)
	p.nanAt = 3*7 + 1 // 3 micro-batches per step: first micro-batch of step 8
	_, err := tr.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "step 8:") || !strings.Contains(err.Error(), "policy chosen logp is not finite") {
		t.Fatalf("error %v", err)
	}
	latest, _ := os.ReadFile(filepath.Join(dir, latestCheckpointFile))
	if strings.TrimSpace(string(latest)) != "checkpoint-000005" {
		t.Errorf("latest-checkpoint = %q, want checkpoint-000005", latest)
	}
	ms, err := ReadMetrics(filepath.Join(dir, MetricsFileName))
	if err != nil || ms[len(ms)-1].Step != 7 {
		t.Fatalf("metrics end at %+v, %v", ms[len(ms)-1], err)
	}
}

func TestTrainerResumeRejectsOtherSettings(t *testing.T) {
	dir := t.TempDir()
	tr, _ := newToyTrainer(t, dir, "bpo", func(c *TrainConfig) { c.MaxSteps = 5 })
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	tr, _ = newToyTrainer(t, dir, "bpo", func(c *TrainConfig) { c.MaxSteps = 5 })
	if _, err := tr.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already holds latest-checkpoint from an earlier run") {
		t.Fatalf("fresh run over an old one: %v", err)
	}
	tr, _ = newToyTrainer(t, dir, "bpo", func(c *TrainConfig) { c.MaxSteps = 5; c.Seed = 12 })
	if _, err := tr.Resume(); err == nil || !strings.Contains(err.Error(), `seed="11", this run has "12"`) {
		t.Fatalf("resume with another seed: %v", err)
	}
	tr, _ = newToyTrainer(t, dir, "bpo", func(c *TrainConfig) { c.MaxSteps = 5 })
	if ok, err := tr.Resume(); !ok || err != nil || tr.Step() != 5 {
		t.Fatalf("resume of a finished run: %v %v", ok, err)
	}
	if res, err := tr.Run(context.Background()); err != nil || res.Steps != 5 || res.Pairs != 0 {
		t.Fatalf("finished run re-run: %+v %v", res, err)
	}
}

func TestNewTrainerErrors(t *testing.T) {
	m := newToyModel(t, 12, 4, 1)
	train, refs := toyData(m, 4, 2)
	loss, _ := NewLoss("dpo", LossParams{Beta: 0.1})
	save, load := toyAdapterIO(m.lora)
	base := TrainConfig{RunDir: t.TempDir(), Loss: loss, Optimizer: DefaultAdamWConfig(), LR: 1e-3, Scheduler: "constant",
		BatchSize: 2, Epochs: 1, SaveAdapter: save, LoadAdapter: load}
	empty := append([]TokenizedPair(nil), train...)
	empty[1].Chosen = nil
	tests := []struct {
		name    string
		mutate  func(*TrainConfig)
		train   []TokenizedPair
		refs    []RefLogps
		wantErr string
	}{
		{"batch", func(c *TrainConfig) { c.BatchSize = 0 }, train, refs, "batch size must be > 0"},
		{"micro", func(c *TrainConfig) { c.MicroBatch = 3 }, train, refs, "micro-batch must be in 1..batch size 2"},
		{"steps", func(c *TrainConfig) { c.Epochs = 0 }, train, refs, "need epochs > 0 or max steps > 0"},
		{"adapter io", func(c *TrainConfig) { c.SaveAdapter = nil }, train, refs, "SaveAdapter and LoadAdapter are required"},
		{"refs", nil, train, refs[:3], "4 training pairs but 3 reference log-probs"},
		{"empty completion", nil, empty, refs, "training pair 1 (line 2): prompt, chosen and rejected need at least one token each"},
		{"no data", nil, nil, nil, "no training pairs"},
		{"lr", func(c *TrainConfig) { c.LR = 0 }, train, refs, "learning rate must be a finite number > 0"},
		{"schedule", func(c *TrainConfig) { c.Scheduler = "step" }, train, refs, `unknown lr schedule "step"`},
	}
	for _, tc := range tests {
		cfg := base
		if tc.mutate != nil {
			tc.mutate(&cfg)
		}
		if _, err := NewTrainer(cfg, &toyPolicy{m: m}, tc.train, tc.refs, nil, nil); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}
