// Package online runs on-policy training in rounds: each round samples completions from the
// current adapter, grades them, and trains on them (GRPO-family objectives), with a run folder
// that a killed or interrupted run resumes from, reproducing the uninterrupted run.
package online

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/align/llamaalign"
	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// Rollout is a round's graded samples: Groups prompts with GroupSize completions each, stored
// group by group (completion j of group g at index g*GroupSize+j).
type Rollout struct {
	GroupSize int           `json:"group_size"`
	IDs       []string      `json:"ids"` // question id per group
	Seqs      []RolloutSeq  `json:"seqs"`
	Stats     *RolloutStats `json:"stats,omitempty"`
}

// RolloutSeq is one graded, tokenized completion.
type RolloutSeq struct {
	Prompt     []int32   `json:"prompt"`
	Completion []int32   `json:"completion"`
	Reward     float64   `json:"reward"`
	Truncated  bool      `json:"truncated"` // cut at the generation limit
	Advantage  float64   `json:"advantage"`
	OldLogps   []float64 `json:"old_logps"`
	RefLogps   []float64 `json:"ref_logps,omitempty"`
}

// RolloutStats summarise a round's samples.
type RolloutStats struct {
	Reward float64 `json:"reward"`
}

// SampleFunc generates and grades GroupSize completions for each of the round's questions with
// the adapter at adapterPath, working in roundDir (resumable there). It returns the rollout with
// Prompt, Completion, Reward and Truncated filled.
type SampleFunc func(ctx context.Context, round int, adapterPath, roundDir string) (*Rollout, error)

// EvalFunc measures the accuracy of the adapter at adapterPath (resumable in dir).
type EvalFunc func(ctx context.Context, round int, adapterPath, dir string) (float64, error)

// GRPOConfig configures an online GRPO run.
type GRPOConfig struct {
	RunDir            string
	Rounds            int // sample -> grade -> train rounds
	QuestionsPerRound int // prompts sampled per round (the caller's SampleFunc picks them)
	GroupSize         int // completions per prompt (G >= 2)
	BatchQuestions    int // prompts (groups) per optimizer step
	MicroQuestions    int // prompts per forward/backward (0: BatchQuestions)
	Iterations        int // passes over a round's rollout (TRL's num_iterations, mu)
	Objective         align.GRPOConfig
	Optimizer         align.AdamWConfig
	LR                float64
	MaxGradNorm       float64
	Seed              uint64
	SaveEvery         int               // checkpoint every N steps besides each round's end (0: off)
	Settings          map[string]string // remembered in every checkpoint; a resumed run must match
	Sample            SampleFunc
	Eval              EvalFunc // optional: run before training (round 0) and after every round
	OnStep            func(align.GRPOMetrics)
}

// CheckGRPOConfig checks every setting that needs neither a model nor data, so a command can
// refuse bad ones before any sampling.
func CheckGRPOConfig(c GRPOConfig) error {
	switch {
	case c.Rounds < 1:
		return fmt.Errorf("rounds must be >= 1, got %d", c.Rounds)
	case c.GroupSize < 2:
		return fmt.Errorf("group size must be >= 2 (GRPO's advantages compare completions of one prompt), got %d", c.GroupSize)
	case c.QuestionsPerRound < 1:
		return fmt.Errorf("questions per round must be >= 1, got %d", c.QuestionsPerRound)
	case c.BatchQuestions < 1 || c.BatchQuestions > c.QuestionsPerRound:
		return fmt.Errorf("questions per step must be in 1..questions per round (%d), got %d", c.QuestionsPerRound, c.BatchQuestions)
	case c.MicroQuestions < 0 || c.MicroQuestions > c.BatchQuestions:
		return fmt.Errorf("questions per micro-batch must be in 0..%d, got %d", c.BatchQuestions, c.MicroQuestions)
	case c.Iterations < 1:
		return fmt.Errorf("iterations per round must be >= 1, got %d", c.Iterations)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("learning rate must be finite and > 0, got %v", c.LR)
	case math.IsNaN(c.MaxGradNorm) || math.IsInf(c.MaxGradNorm, 0) || c.MaxGradNorm < 0:
		return fmt.Errorf("max grad norm must be finite and >= 0, got %v", c.MaxGradNorm)
	case c.SaveEvery < 0:
		return fmt.Errorf("save-every must be >= 0, got %d", c.SaveEvery)
	}
	if err := c.Objective.Validate(); err != nil {
		return err
	}
	return c.Optimizer.Validate()
}

// StepsPerRound is the number of optimizer steps each round takes.
func (c GRPOConfig) StepsPerRound() int {
	return c.Iterations * ((c.QuestionsPerRound + c.BatchQuestions - 1) / c.BatchQuestions)
}

// File names of a run folder.
const (
	latestFile   = "latest-checkpoint"
	stateFile    = "state.bin"
	rolloutFile  = "rollout.json"
	evalDoneFile = "accuracy.json"
	startDir     = "start"
)

// RoundDir is the folder of round r (1-based; round 0 holds the evaluation before training).
func RoundDir(runDir string, r int) string {
	return filepath.Join(runDir, fmt.Sprintf("round-%03d", r))
}

// GRPOResult summarises a run.
type GRPOResult struct {
	Steps       int
	ResumedFrom int
	Accuracies  map[int]float64 // by round (0: before training)
}

type grpoRun struct {
	cfg     GRPOConfig
	pol     *llamaalign.LlamaPolicy
	opt     *align.AdamW
	step    int
	total   int
	perPass int
	tokens  int
	mw      *os.File
	res     GRPOResult
}

// RunGRPO trains pol online, resuming the run folder's latest checkpoint when there is one.
func RunGRPO(ctx context.Context, cfg GRPOConfig, pol *llamaalign.LlamaPolicy) (*GRPOResult, error) {
	if err := CheckGRPOConfig(cfg); err != nil {
		return nil, fmt.Errorf("grpo: %w", err)
	}
	if cfg.Sample == nil || cfg.RunDir == "" {
		return nil, errors.New("grpo: a run folder and a sampler are required")
	}
	if cfg.MicroQuestions == 0 {
		cfg.MicroQuestions = cfg.BatchQuestions
	}
	r := &grpoRun{cfg: cfg, pol: pol, res: GRPOResult{Accuracies: map[int]float64{}}}
	r.perPass = (cfg.QuestionsPerRound + cfg.BatchQuestions - 1) / cfg.BatchQuestions
	r.total = cfg.Rounds * cfg.StepsPerRound()
	var err error
	if r.opt, err = align.NewAdamW(cfg.Optimizer, pol.ParamShapes()); err != nil {
		return nil, fmt.Errorf("grpo: %w", err)
	}
	if err := os.MkdirAll(cfg.RunDir, 0o755); err != nil {
		return nil, fmt.Errorf("grpo: %w", err)
	}
	if err := r.resume(); err != nil {
		return nil, err
	}
	metricsPath := filepath.Join(cfg.RunDir, align.MetricsFileName)
	if err := align.TruncateStepLines(metricsPath, r.step); err != nil {
		return nil, fmt.Errorf("grpo: %w", err)
	}
	if r.mw, err = os.OpenFile(metricsPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
		return nil, fmt.Errorf("grpo: %w", err)
	}
	defer r.mw.Close()
	spr := cfg.StepsPerRound()
	for {
		round := r.step / spr // rounds completed
		if round > 0 || r.step == 0 {
			if err := r.evaluate(ctx, round); err != nil {
				return r.stop(ctx, err)
			}
		}
		if r.step >= r.total {
			break
		}
		ro, err := r.rollout(ctx, round+1)
		if err != nil {
			return r.stop(ctx, err)
		}
		for r.step < (round+1)*spr {
			if ctx.Err() != nil {
				return r.stop(ctx, ctx.Err())
			}
			if err := r.trainStep(ctx, round+1, ro); err != nil {
				return r.stop(ctx, err)
			}
			if (cfg.SaveEvery > 0 && r.step%cfg.SaveEvery == 0) || r.step%spr == 0 {
				if err := r.checkpoint(); err != nil {
					return &r.res, err
				}
			}
		}
	}
	r.res.Steps = r.step
	return &r.res, nil
}

// stop checkpoints the completed steps when the context was cancelled and returns err.
func (r *grpoRun) stop(ctx context.Context, err error) (*GRPOResult, error) {
	r.res.Steps = r.step
	if ctx.Err() != nil {
		if cerr := r.checkpoint(); cerr != nil {
			return &r.res, fmt.Errorf("interrupted at step %d, and saving the checkpoint failed: %w", r.step, cerr)
		}
		return &r.res, fmt.Errorf("interrupted after step %d (run again to resume): %w", r.step, ctx.Err())
	}
	return &r.res, err
}

func (r *grpoRun) meta() map[string]string {
	m := map[string]string{"total_steps": strconv.Itoa(r.total), "seed": strconv.FormatUint(r.cfg.Seed, 10)}
	for k, v := range r.cfg.Settings {
		m["user."+k] = v
	}
	return m
}

func (r *grpoRun) resume() error {
	name, err := os.ReadFile(filepath.Join(r.cfg.RunDir, latestFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("grpo: resume: %w", err)
	}
	dir := filepath.Join(r.cfg.RunDir, strings.TrimSpace(string(name)))
	st, err := align.LoadTrainState(filepath.Join(dir, stateFile))
	if err != nil {
		return fmt.Errorf("grpo: resume: %w", err)
	}
	want := r.meta()
	keys := make([]string, 0, len(want)+len(st.Meta))
	for k := range want {
		keys = append(keys, k)
	}
	for k := range st.Meta {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "num_tokens" {
			continue
		}
		if st.Meta[k] != want[k] {
			return fmt.Errorf("grpo: resume from %s: the run was started with %s=%q, this one has %q (use a new run folder to change settings)", dir, strings.TrimPrefix(k, "user."), st.Meta[k], want[k])
		}
	}
	if err := st.Optimizer.CheckShapes(r.pol.ParamShapes()); err != nil {
		return fmt.Errorf("grpo: resume from %s: %w", dir, err)
	}
	if err := r.pol.LoadAdapter(dir); err != nil {
		return fmt.Errorf("grpo: resume from %s: %w", dir, err)
	}
	r.opt, r.step = st.Optimizer, int(st.Step)
	r.tokens, _ = strconv.Atoi(st.Meta["num_tokens"])
	r.res.ResumedFrom = r.step
	return nil
}

// checkpoint writes checkpoint-NNNNNN (adapter + optimizer state) and points latest-checkpoint at
// it; older checkpoints are removed (round folders keep each round's start adapter).
func (r *grpoRun) checkpoint() error {
	name := fmt.Sprintf("checkpoint-%06d", r.step)
	final := filepath.Join(r.cfg.RunDir, name)
	tmp := filepath.Join(r.cfg.RunDir, "."+name+".tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := r.pol.SaveAdapter(tmp, nil); err != nil {
		return fmt.Errorf("checkpoint %s: %w", name, err)
	}
	meta := r.meta()
	meta["num_tokens"] = strconv.Itoa(r.tokens)
	st := &align.TrainState{Step: int64(r.step), Optimizer: r.opt, RNG: rand.NewPCG(r.cfg.Seed, 0), Meta: meta}
	if err := align.SaveTrainState(filepath.Join(tmp, stateFile), st); err != nil {
		return fmt.Errorf("checkpoint %s: %w", name, err)
	}
	if err := os.RemoveAll(final); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := atomicfile.WriteFunc(filepath.Join(r.cfg.RunDir, latestFile), func(w io.Writer) error {
		_, err := io.WriteString(w, name+"\n")
		return err
	}); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	entries, err := os.ReadDir(r.cfg.RunDir)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "checkpoint-") && e.Name() != name {
			if err := os.RemoveAll(filepath.Join(r.cfg.RunDir, e.Name())); err != nil {
				return fmt.Errorf("checkpoint: %w", err)
			}
		}
	}
	return nil
}

// evaluate runs cfg.Eval on the current adapter as the result of round `round` (0: before
// training), once: the accuracy is kept in the round folder and logged.
func (r *grpoRun) evaluate(ctx context.Context, round int) error {
	if r.cfg.Eval == nil {
		return nil
	}
	dir := RoundDir(r.cfg.RunDir, round)
	donePath := filepath.Join(dir, evalDoneFile)
	if raw, err := os.ReadFile(donePath); err == nil {
		var acc float64
		if err := json.Unmarshal(raw, &acc); err != nil {
			return fmt.Errorf("%s: %w", donePath, err)
		}
		r.res.Accuracies[round] = acc
		return nil
	}
	adir := filepath.Join(dir, "adapter")
	if err := os.MkdirAll(adir, 0o755); err != nil {
		return err
	}
	if err := r.pol.SaveAdapter(adir, nil); err != nil {
		return err
	}
	acc, err := r.cfg.Eval(ctx, round, filepath.Join(adir, align.AdapterFileName), filepath.Join(dir, "eval"))
	if err != nil {
		return fmt.Errorf("round %d eval: %w", round, err)
	}
	if err := r.log(align.GRPOMetrics{Step: r.step, Round: round, Split: "eval", Accuracy: acc}); err != nil {
		return err
	}
	r.res.Accuracies[round] = acc
	return atomicfile.Write(donePath, []byte(strconv.FormatFloat(acc, 'g', -1, 64)+"\n"))
}

func (r *grpoRun) log(m align.GRPOMetrics) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := r.mw.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if r.cfg.OnStep != nil {
		r.cfg.OnStep(m)
	}
	return nil
}

// rollout returns round's rollout: read back when it was made already, else sampled with the
// current adapter (the round's start), graded, and given advantages and old/reference log-probs.
func (r *grpoRun) rollout(ctx context.Context, round int) (*Rollout, error) {
	dir := RoundDir(r.cfg.RunDir, round)
	path := filepath.Join(dir, rolloutFile)
	if raw, err := os.ReadFile(path); err == nil {
		var ro Rollout
		if err := json.Unmarshal(raw, &ro); err != nil {
			return nil, fmt.Errorf("%s: %w (delete the round folder to sample it again)", path, err)
		}
		if ro.GroupSize != r.cfg.GroupSize || len(ro.Seqs) != len(ro.IDs)*ro.GroupSize {
			return nil, fmt.Errorf("%s: %d completions in %d groups of %d, the run wants groups of %d", path, len(ro.Seqs), len(ro.IDs), ro.GroupSize, r.cfg.GroupSize)
		}
		return &ro, nil
	}
	if within := r.step % r.cfg.StepsPerRound(); within != 0 {
		return nil, fmt.Errorf("%s is missing but the run is %d steps into round %d", path, within, round)
	}
	sdir := filepath.Join(dir, startDir)
	if err := os.MkdirAll(sdir, 0o755); err != nil {
		return nil, err
	}
	if err := r.pol.SaveAdapter(sdir, nil); err != nil {
		return nil, err
	}
	ro, err := r.cfg.Sample(ctx, round, filepath.Join(sdir, align.AdapterFileName), dir)
	if err != nil {
		return nil, fmt.Errorf("round %d: sample: %w", round, err)
	}
	if ro.GroupSize != r.cfg.GroupSize || len(ro.Seqs) != len(ro.IDs)*ro.GroupSize || len(ro.IDs) == 0 {
		return nil, fmt.Errorf("round %d: the sampler returned %d completions for %d questions, want groups of %d", round, len(ro.Seqs), len(ro.IDs), r.cfg.GroupSize)
	}
	rewards := make([]float64, len(ro.Seqs))
	seqs := make([]align.TokenSeq, len(ro.Seqs))
	mean := 0.0
	for i, s := range ro.Seqs {
		if len(s.Completion) == 0 {
			return nil, fmt.Errorf("round %d: completion %d of question %s has no tokens", round, i%ro.GroupSize, ro.IDs[i/ro.GroupSize])
		}
		rewards[i] = s.Reward
		mean += s.Reward
		seqs[i] = align.TokenSeq{Prompt: s.Prompt, Completion: s.Completion}
	}
	ro.Stats = &RolloutStats{Reward: mean / float64(len(rewards))}
	adv, err := align.GroupAdvantages(rewards, ro.GroupSize, r.cfg.Objective.ScaleRewards)
	if err != nil {
		return nil, err
	}
	// Old log-probs: the round's start policy through the training graph, so that a step on
	// unchanged weights has ratios of exactly 1.
	for lo := 0; lo < len(seqs); lo += r.cfg.MicroQuestions * ro.GroupSize {
		hi := min(lo+r.cfg.MicroQuestions*ro.GroupSize, len(seqs))
		old, err := r.pol.TokenLogProbs(ctx, seqs[lo:hi])
		if err != nil {
			return nil, fmt.Errorf("round %d: old log-probs: %w", round, err)
		}
		var ref [][]float64
		if r.cfg.Objective.Beta > 0 {
			if ref, err = r.pol.ReferenceTokenLogProbs(ctx, seqs[lo:hi]); err != nil {
				return nil, fmt.Errorf("round %d: reference log-probs: %w", round, err)
			}
		}
		for i := lo; i < hi; i++ {
			ro.Seqs[i].Advantage = adv[i]
			ro.Seqs[i].OldLogps = old[i-lo]
			if ref != nil {
				ro.Seqs[i].RefLogps = ref[i-lo]
			}
		}
	}
	b, err := json.Marshal(ro)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, b); err != nil {
		return nil, err
	}
	return ro, nil
}

// stepGroups returns the rollout's group indices of the 0-based step k within a round: a
// permutation per pass drawn from (Seed, round, pass).
func (r *grpoRun) stepGroups(round, k, groups int) []int {
	pass, within := k/r.perPass, k%r.perPass
	perm := rand.New(rand.NewPCG(r.cfg.Seed, uint64(round)<<16|uint64(pass))).Perm(groups)
	lo := within * r.cfg.BatchQuestions
	return perm[min(lo, groups):min(lo+r.cfg.BatchQuestions, groups)]
}

func (r *grpoRun) trainStep(ctx context.Context, round int, ro *Rollout) error {
	k := r.step % r.cfg.StepsPerRound()
	idx := r.stepGroups(round, k, len(ro.IDs))
	shapes := r.pol.ParamShapes()
	grads := make([][]float32, len(shapes))
	names := make([]string, len(shapes))
	for i, s := range shapes {
		grads[i] = make([]float32, s.Size)
		names[i] = s.Name
	}
	var m align.GRPOMetrics
	var total align.GRPOStats
	if len(idx) > 0 {
		var members []int
		for _, g := range idx {
			for j := range ro.GroupSize {
				members = append(members, g*ro.GroupSize+j)
			}
		}
		lengths := make([]int, len(members))
		for i, s := range members {
			lengths[i] = len(ro.Seqs[s].Completion)
		}
		weights, err := r.cfg.Objective.TokenWeights(lengths)
		if err != nil {
			return err
		}
		micro := r.cfg.MicroQuestions * ro.GroupSize
		for lo := 0; lo < len(members); lo += micro {
			hi := min(lo+micro, len(members))
			seqs := make([]align.TokenSeq, 0, hi-lo)
			samples := make([]align.GRPOSample, 0, hi-lo)
			for _, s := range members[lo:hi] {
				rs := ro.Seqs[s]
				seqs = append(seqs, align.TokenSeq{Prompt: rs.Prompt, Completion: rs.Completion})
				samples = append(samples, align.GRPOSample{Advantage: rs.Advantage, OldLogps: rs.OldLogps, RefLogps: rs.RefLogps})
			}
			err := r.pol.TokenForwardBackward(ctx, seqs, func(lp [][]float64) ([][]float64, error) {
				_, coef, st, err := r.cfg.Objective.Objective(samples, weights[lo:hi], lp)
				total.Add(st)
				return coef, err
			}, grads)
			if err != nil {
				return fmt.Errorf("step %d: %w", r.step+1, err)
			}
		}
		m = rewardMetrics(ro, idx)
	}
	norm, err := align.ClipGradNorm(grads, names, r.cfg.MaxGradNorm)
	if err != nil {
		return fmt.Errorf("step %d: %w", r.step+1, err)
	}
	if err := r.opt.Step(r.pol.Params(), grads, r.cfg.LR); err != nil {
		return fmt.Errorf("step %d: %w", r.step+1, err)
	}
	r.step++
	r.tokens += total.Tokens
	m.Step, m.Round, m.Loss, m.GradNorm, m.LearningRate, m.NumTokens = r.step, round, total.Loss, norm, r.cfg.LR, r.tokens
	if total.Tokens > 0 {
		n := float64(total.Tokens)
		m.KL = total.KLSum / n
		m.ClipLowMean, m.ClipHighMean = float64(total.LowClip)/n, float64(total.HighClip)/n
		m.ClipRegionMean = float64(total.LowClip+total.HighClip) / n
	}
	return r.log(m)
}

// rewardMetrics are the reward and length statistics of the step's groups.
func rewardMetrics(ro *Rollout, groups []int) align.GRPOMetrics {
	var m align.GRPOMetrics
	n := 0
	m.MinLength = math.Inf(1)
	for _, g := range groups {
		seqs := ro.Seqs[g*ro.GroupSize : (g+1)*ro.GroupSize]
		mean := 0.0
		for _, s := range seqs {
			mean += s.Reward
		}
		mean /= float64(len(seqs))
		ss := 0.0
		for _, s := range seqs {
			ss += (s.Reward - mean) * (s.Reward - mean)
			l := float64(len(s.Completion))
			m.Reward += s.Reward
			m.MeanLength += l
			m.MinLength = math.Min(m.MinLength, l)
			m.MaxLength = math.Max(m.MaxLength, l)
			if s.Truncated {
				m.ClippedRatio++
			}
			n++
		}
		std := math.Sqrt(ss / float64(len(seqs)-1))
		m.RewardStd += std
		if std == 0 {
			m.FracRewardZeroStd++
		}
	}
	m.Reward /= float64(n)
	m.MeanLength /= float64(n)
	m.ClippedRatio /= float64(n)
	m.RewardStd /= float64(len(groups))
	m.FracRewardZeroStd /= float64(len(groups))
	return m
}
