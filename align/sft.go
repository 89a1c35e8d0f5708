package align

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// SFTConfig configures supervised fine-tuning: the mean negative log-likelihood of completion tokens.
type SFTConfig struct {
	RunDir      string
	Optimizer   AdamWConfig
	LR          float64
	Scheduler   string
	WarmupRatio float64
	MaxGradNorm float64
	BatchSize   int // sequences per optimizer step
	Epochs      int
	MaxSteps    int
	Seed        uint64
	SaveEvery   int // checkpoint every N steps (0: only at the end and on interrupt)
	// SaveInterval also checkpoints once this much time has passed since the last checkpoint (0: off).
	SaveInterval time.Duration
	// Meta is stored in checkpoints; a resumed run must match it.
	Meta map[string]string
	// Save writes the trained weights (adapter or model) into a checkpoint directory; Load restores them.
	Save func(dir string) error
	Load func(dir string) error
	// OnStep, if set, is called after every step.
	OnStep func(SFTStep)
	// MicroBatch is the sequences per forward/backward (gradient accumulation); 0: the whole batch.
	MicroBatch int
	// Comm joins the ranks of a data-parallel job (see sftparallel.go); nil means one process. Rank 0
	// writes the run directory; every rank reads its checkpoints.
	Comm Comm
}

// SFTStep is one line of an SFT run's metrics.jsonl.
type SFTStep struct {
	Step         int     `json:"step"`
	Epoch        float64 `json:"epoch"`
	Loss         float64 `json:"loss"`
	GradNorm     float64 `json:"grad_norm"`
	LearningRate float64 `json:"learning_rate"`
	Tokens       int     `json:"tokens"`
	Seconds      float64 `json:"seconds"`
}

// SFTResult summarizes a run.
type SFTResult struct {
	Steps       int
	ResumedFrom int
	Last        SFTStep
	Elapsed     time.Duration
	Checkpoint  string
}

// SFTPolicy is what SFT trains: a model's NLL gradient over parameters (llamaalign.Policy wraps the
// training graph).
type SFTPolicy interface {
	ParamShapes() []ParamShape
	Params() [][]float32
	// NLLGradient adds the gradient of the batch's mean completion NLL into grads and returns that NLL.
	NLLGradient(ctx context.Context, batch []TokenSeq, grads [][]float32) (float64, error)
}

// RunSFT trains policy on seqs. Each epoch visits the sequences in a permutation drawn from (Seed,
// epoch), so a step's batch depends only on its number: a run resumed from a checkpoint (Resume in
// RunDir) reproduces the uninterrupted run's losses exactly. Cancelling ctx saves a checkpoint.
func RunSFT(ctx context.Context, cfg SFTConfig, policy SFTPolicy, seqs []TokenSeq) (*SFTResult, error) {
	if len(seqs) == 0 {
		return nil, errors.New("sft: no training sequences")
	}
	if cfg.BatchSize <= 0 || cfg.Epochs <= 0 && cfg.MaxSteps <= 0 || cfg.LR <= 0 || math.IsNaN(cfg.LR) {
		return nil, fmt.Errorf(
			"sft: batch size (%d), epochs or max steps (%d, %d) and lr (%v) must be > 0",
			cfg.BatchSize,
			cfg.Epochs,
			cfg.MaxSteps,
			cfg.LR,
		)
	}
	if cfg.Save == nil || cfg.Load == nil {
		return nil, errors.New("sft: Save and Load are required")
	}
	perEpoch := (len(seqs) + cfg.BatchSize - 1) / cfg.BatchSize
	total := perEpoch * max(cfg.Epochs, 1)
	if cfg.MaxSteps > 0 && (cfg.Epochs <= 0 || cfg.MaxSteps < total) {
		total = cfg.MaxSteps
	}
	warm, err := WarmupStepsFromRatio(cfg.WarmupRatio, total)
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	sched, err := NewSchedule(orDefault(cfg.Scheduler, "constant"), cfg.LR, warm, total)
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	shapes := policy.ParamShapes()
	names := make([]string, len(shapes))
	for i, s := range shapes {
		names[i] = s.Name
	}
	opt, err := NewAdamW(cfg.Optimizer, shapes)
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	gradient, err := newSFTGradient(policy, shapes, cfg.MicroBatch, cfg.Comm)
	if err != nil {
		return nil, err
	}
	comm := commOrSingle(cfg.Comm)
	writer := comm.Rank() == 0 // the rank that writes metrics and checkpoints
	if err := os.MkdirAll(cfg.RunDir, 0o755); err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	meta := map[string]string{
		"kind":      "sft",
		"lr":        fmt.Sprint(cfg.LR),
		"batch":     fmt.Sprint(cfg.BatchSize),
		"seed":      fmt.Sprint(cfg.Seed),
		"steps":     fmt.Sprint(total),
		"sequences": fmt.Sprint(len(seqs)),
		"scheduler": sched.Kind,
	}
	for k, v := range cfg.Meta {
		meta[k] = v
	}
	res := &SFTResult{}
	step := 0
	metricsPath := filepath.Join(cfg.RunDir, MetricsFileName)
	if name, err := os.ReadFile(filepath.Join(cfg.RunDir, latestCheckpointFile)); err == nil {
		dir := filepath.Join(cfg.RunDir, strings.TrimSpace(string(name)))
		st, err := LoadTrainState(filepath.Join(dir, stateFileName))
		if err != nil {
			return nil, fmt.Errorf("sft resume: %w", err)
		}
		for k, v := range meta {
			if st.Meta[k] != v {
				return nil, fmt.Errorf(
					"sft resume from %s: checkpoint has %s=%q, this run %q (use a new run directory to change settings)",
					dir,
					k,
					st.Meta[k],
					v,
				)
			}
		}
		if err := st.Optimizer.CheckShapes(shapes); err != nil {
			return nil, fmt.Errorf("sft resume: %w", err)
		}
		if err := cfg.Load(dir); err != nil {
			return nil, fmt.Errorf("sft resume: %w", err)
		}
		opt, step = st.Optimizer, int(st.Step)
		res.ResumedFrom, res.Checkpoint = step, dir
		if writer {
			if err := truncateJSONLSteps(metricsPath, step); err != nil {
				return nil, fmt.Errorf("sft resume: %w", err)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("sft: %w", err)
	} else if writer {
		// Metrics without a checkpoint: a run killed before its first checkpoint starts over.
		if err := truncateJSONLSteps(metricsPath, 0); err != nil {
			return nil, fmt.Errorf("sft: clear the metrics of a run killed before its first checkpoint: %w", err)
		}
	}
	lastSavedAt := time.Now()
	mf := io.Discard
	if writer {
		if err := removeStaleCheckpointTemps(cfg.RunDir); err != nil {
			return nil, fmt.Errorf("sft: %w", err)
		}
		f, err := os.OpenFile(metricsPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("sft: %w", err)
		}
		defer f.Close()
		mf = f
	}
	save := func() error {
		name := fmt.Sprintf("checkpoint-%06d", step)
		tmp := filepath.Join(cfg.RunDir, "."+name+".tmp")
		final := filepath.Join(cfg.RunDir, name)
		if !writer {
			res.Checkpoint = final // rank 0 writes it
			return nil
		}
		os.RemoveAll(tmp)
		if err := os.Mkdir(tmp, 0o755); err != nil {
			return err
		}
		if err := cfg.Save(tmp); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("save weights: %w", err)
		}
		if err := SaveTrainState(filepath.Join(tmp, stateFileName), &TrainState{Step: int64(step), Optimizer: opt, RNG: rand.NewPCG(cfg.Seed, 0), Meta: meta}); err != nil {
			os.RemoveAll(tmp)
			return err
		}
		os.RemoveAll(final)
		if err := os.Rename(tmp, final); err != nil {
			return err
		}
		prev, _ := os.ReadFile(filepath.Join(cfg.RunDir, latestCheckpointFile))
		if err := atomicfile.WriteFunc(filepath.Join(cfg.RunDir, latestCheckpointFile), func(w io.Writer) error {
			_, err := io.WriteString(w, name+"\n")
			return err
		}); err != nil {
			return err
		}
		if p := strings.TrimSpace(string(prev)); p != "" && p != name {
			os.RemoveAll(filepath.Join(cfg.RunDir, p))
		}
		res.Checkpoint = final
		return nil
	}
	grads := make([][]float32, len(shapes))
	for i, s := range shapes {
		grads[i] = make([]float32, s.Size)
	}
	t0 := time.Now()
	for step < total {
		// The ranks of a job decide on an interruption together, in the step's gathers.
		if comm.Size() == 1 && ctx.Err() != nil {
			if err := save(); err != nil {
				return nil, fmt.Errorf("sft: save on interrupt: %w", err)
			}
			return res, ctx.Err()
		}
		ep, within := step/perEpoch, step%perEpoch
		perm := rand.New(rand.NewPCG(cfg.Seed, uint64(ep))).Perm(len(seqs))
		lo, hi := within*cfg.BatchSize, min((within+1)*cfg.BatchSize, len(seqs))
		batch := make([]TokenSeq, 0, hi-lo)
		tokens := 0
		for _, i := range perm[lo:hi] {
			batch = append(batch, seqs[i])
			tokens += len(seqs[i].Completion)
		}
		ts := time.Now()
		loss, err := gradient.compute(ctx, batch, grads)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, errJobInterrupted) {
				if err := save(); err != nil {
					return nil, fmt.Errorf("sft: save on interrupt: %w", err)
				}
				return res, cmp.Or(ctx.Err(), err)
			}
			return nil, fmt.Errorf("sft step %d: %w (last good checkpoint: %s)", step+1, err, res.Checkpoint)
		}
		norm, err := GradNorm(grads, names)
		if err == nil && cfg.MaxGradNorm > 0 {
			norm, err = ClipGradNorm(grads, names, cfg.MaxGradNorm)
		}
		if err != nil {
			return nil, fmt.Errorf("sft step %d: %w (last good checkpoint: %s)", step+1, err, res.Checkpoint)
		}
		lr := sched.LR(step)
		if err := opt.Step(policy.Params(), grads, lr); err != nil {
			return nil, fmt.Errorf("sft step %d: %w", step+1, err)
		}
		step++
		line := SFTStep{
			Step:         step,
			Epoch:        float64(ep) + float64(hi)/float64(len(seqs)),
			Loss:         loss,
			GradNorm:     norm,
			LearningRate: lr,
			Tokens:       tokens,
			Seconds:      time.Since(ts).Seconds(),
		}
		b, _ := json.Marshal(line)
		if _, err := mf.Write(append(b, '\n')); err != nil {
			return nil, fmt.Errorf("sft: write metrics: %w", err)
		}
		res.Last = line
		if cfg.OnStep != nil {
			cfg.OnStep(line)
		}
		everyN := cfg.SaveEvery > 0 && step%cfg.SaveEvery == 0
		everyT := cfg.SaveInterval > 0 && time.Since(lastSavedAt) >= cfg.SaveInterval
		if (everyN || everyT) && step < total {
			lastSavedAt = time.Now()
			if err := save(); err != nil {
				return nil, fmt.Errorf("sft: checkpoint: %w", err)
			}
		}
	}
	if f, ok := mf.(*os.File); ok {
		if err := f.Sync(); err != nil {
			return nil, err
		}
	}
	if err := save(); err != nil {
		return nil, fmt.Errorf("sft: checkpoint: %w", err)
	}
	res.Steps, res.Elapsed = step, time.Since(t0)
	return res, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// truncateJSONLSteps keeps the lines of a metrics file whose "step" is <= step.
func truncateJSONLSteps(path string, step int) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep []byte
	for _, line := range strings.SplitAfter(string(raw), "\n") {
		var s struct {
			Step int `json:"step"`
		}
		if strings.TrimSpace(line) == "" || json.Unmarshal([]byte(line), &s) != nil || s.Step > step {
			continue
		}
		keep = append(keep, line...)
	}
	return atomicfile.WriteFunc(path, func(w io.Writer) error { _, err := w.Write(keep); return err })
}
