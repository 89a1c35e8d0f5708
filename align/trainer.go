package align

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// TrainConfig configures a preference-optimization run.
type TrainConfig struct {
	RunDir      string      // metrics.jsonl, checkpoint-NNNNNN/ and latest-checkpoint go here
	Loss        Loss        // the preference loss
	Optimizer   AdamWConfig // AdamW hyper-parameters
	LR          float64     // peak learning rate
	Scheduler   string      // constant, linear or cosine
	WarmupRatio float64     // share of the total steps used for warmup (ceil)
	WarmupSteps int         // when > 0, overrides WarmupRatio
	MaxGradNorm float64     // global-norm clipping threshold; 0 disables clipping
	BatchSize   int         // pairs per optimizer step (effective batch)
	MicroBatch  int         // pairs per forward/backward; 0 means BatchSize
	Epochs      int         // passes over the training pairs
	MaxSteps    int         // when > 0, caps the number of optimizer steps
	Seed        uint64      // data order (per-epoch permutations) and the saved RNG
	SaveEvery   int         // checkpoint every N steps; 0 saves only at the end and on interrupt
	// SaveInterval also checkpoints once this much time has passed since the last checkpoint (0:
	// off), so that a SIGKILL, OOM kill or reboot loses minutes of work, not the run.
	SaveInterval    time.Duration
	KeepCheckpoints int // checkpoints kept on disk; 0 means 2
	EvalEvery       int // evaluate every N steps (and at the end) when eval pairs are given
	// DCRThreshold is how far below zero a chosen reward must be to count in dcr_rate; 0 means
	// DefaultDCRThreshold.
	DCRThreshold float64
	DCRAlarm     DCRAlarm   // warn or stop when dcr_rate stays high
	RefRefresh   RefRefresh // TR-DPO reference updates
	// Meta is stored in every checkpoint (e.g. model path and hashes); a resumed run must match it.
	Meta map[string]string
	// SaveAdapter writes the current Params as an adapter into a checkpoint directory; LoadAdapter
	// restores the Params from one (on resume). Both are required.
	SaveAdapter func(dir string) error
	LoadAdapter func(dir string) error
	// OnStep, if set, is called after every logged line (training steps and evaluations).
	OnStep func(StepMetrics)
	// Comm joins the ranks of a data-parallel job (see dataparallel.go); nil means one process.
	// Rank 0 alone writes the run directory and runs the evaluations.
	Comm Comm
}

// TrainResult summarizes a finished (or interrupted) run.
type TrainResult struct {
	Steps       int           // optimizer steps completed in total (including resumed ones)
	ResumedFrom int           // step the run resumed from, 0 for a fresh run
	Last        StepMetrics   // last training step's metrics
	LastEval    *StepMetrics  // last evaluation, if any
	Pairs       int           // pairs trained on by this process
	Elapsed     time.Duration // wall time of Run
	PolicyTime  time.Duration // inside Policy.ForwardBackward (forward + loss + backward)
	LossTime    time.Duration // inside Loss.Compute (part of PolicyTime)
	OptimTime   time.Duration // clipping + AdamW
	EvalTime    time.Duration // evaluations
	SaveTime    time.Duration // checkpoints
	Checkpoint  string        // directory of the last checkpoint written or loaded
}

// PairsPerSecond returns the training throughput of this process.
func (r *TrainResult) PairsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Pairs) / r.Elapsed.Seconds()
}

// Trainer runs preference optimization of a Policy on tokenized pairs with precomputed reference
// log-probs. The data order is a permutation per epoch drawn from (Seed, epoch), so a step's pairs
// depend only on the step number: resuming from a checkpoint replays exactly the same steps.
type Trainer struct {
	cfg                TrainConfig
	policy             Policy
	train, eval        []TokenizedPair
	trainRef, evalRef  []RefLogps
	shapes             []ParamShape
	names              []string
	opt                *AdamW
	sched              Schedule
	rng                *rand.PCG
	step, total, perEp int
	resumedFrom        int
	lastSaved          int
	lastSavedAt        time.Time
	microGrads, avgBuf [][]float32
	refParams          [][]float32 // TR-DPO soft update: the reference's trainable parameters
	refreshed          bool        // the reference log-probs come from a refresh
	alarmRun           int         // consecutive training steps with dcr_rate over the alarm's rate
	alarmStop          bool        // the DCR alarm asks the run to stop
	acc                *GradAccumulator
	comm               Comm
	dp                 *dataParallel // nil in a single-process run
	metrics            *MetricsWriter
	result             TrainResult
}

// Checkpoint file names.
const (
	latestCheckpointFile = "latest-checkpoint"
	stateFileName        = "state.bin"
)

// NewTrainer validates the configuration and data. trainRef/evalRef may be nil for reference-free
// losses. Call Resume to continue from the run directory's latest checkpoint, then Run.
func NewTrainer(
	cfg TrainConfig,
	policy Policy,
	train []TokenizedPair,
	trainRef []RefLogps,
	eval []TokenizedPair,
	evalRef []RefLogps,
) (*Trainer, error) {
	if err := checkTrainConfig(&cfg); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if policy == nil {
		return nil, errors.New("train: no policy")
	}
	if len(train) == 0 {
		return nil, errors.New("train: no training pairs")
	}
	for _, set := range []struct {
		name  string
		pairs []TokenizedPair
		refs  []RefLogps
	}{{"training", train, trainRef}, {"eval", eval, evalRef}} {
		if cfg.Loss.NeedsReference() && len(set.refs) != len(set.pairs) {
			return nil, fmt.Errorf(
				"train: %d %s pairs but %d reference log-probs (loss %s needs them)",
				len(set.pairs),
				set.name,
				len(set.refs),
				cfg.Loss.Name(),
			)
		}
		for i, p := range set.pairs {
			if len(p.Prompt) == 0 || len(p.Chosen) == 0 || len(p.Rejected) == 0 {
				return nil, fmt.Errorf(
					"train: %s pair %d (line %d): prompt, chosen and rejected need at least one token each",
					set.name,
					i,
					p.Line,
				)
			}
		}
		for i, r := range set.refs {
			if !isFinite(r.Chosen) || !isFinite(r.Rejected) {
				return nil, fmt.Errorf(
					"train: %s pair %d: reference log-probs are not finite (%v, %v)",
					set.name,
					i,
					r.Chosen,
					r.Rejected,
				)
			}
			if needsSharedLogps(cfg.Loss) && !(r.ChosenShared < 0 && r.RejectedShared < 0) {
				return nil, fmt.Errorf(
					"train: %s pair %d (line %d): loss %s needs the reference log-probs of the shared prefixes (LD-DPO), got (%v, %v)",
					set.name,
					i,
					set.pairs[i].Line,
					cfg.Loss.Name(),
					r.ChosenShared,
					r.RejectedShared,
				)
			}
		}
	}
	t := &Trainer{cfg: cfg, policy: policy, train: train, trainRef: trainRef, eval: eval, evalRef: evalRef}
	t.shapes = policy.ParamShapes()
	for _, s := range t.shapes {
		t.names = append(t.names, s.Name)
	}
	var err error
	if t.opt, err = NewAdamW(cfg.Optimizer, t.shapes); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if t.acc, err = NewGradAccumulator(t.shapes); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	t.perEp = (len(train) + cfg.BatchSize - 1) / cfg.BatchSize
	t.total = cfg.Epochs * t.perEp
	if cfg.MaxSteps > 0 && (t.total == 0 || cfg.MaxSteps < t.total) {
		t.total = cfg.MaxSteps
	}
	warmup := cfg.WarmupSteps
	if warmup == 0 {
		if warmup, err = WarmupStepsFromRatio(cfg.WarmupRatio, t.total); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
	}
	if t.sched, err = NewSchedule(cfg.Scheduler, cfg.LR, warmup, t.total); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	t.rng = rand.NewPCG(cfg.Seed, 0x7472616e) // reserved for stochastic training features
	if cfg.RefRefresh.Enabled() {
		if !cfg.Loss.NeedsReference() {
			return nil, fmt.Errorf(
				"train: reference refresh needs a loss that uses the reference (%s does not)",
				cfg.Loss.Name(),
			)
		}
		for _, p := range policy.Params() {
			t.refParams = append(t.refParams, append([]float32(nil), p...))
		}
	}
	t.microGrads = make([][]float32, len(t.shapes))
	for i, s := range t.shapes {
		t.microGrads[i] = make([]float32, s.Size)
	}
	if t.comm = commOrSingle(cfg.Comm); t.comm.Size() > 1 {
		t.dp = newDataParallel(t.comm, t.shapes)
	}
	return t, nil
}

// CheckSettings validates the hyper-parameters of c (learning rate and schedule, warmup, batch sizes,
// epochs, clipping, checkpoint and eval intervals, AdamW) without any data or model, so that a
// command can refuse bad settings before its expensive preparation (tokenizing, the reference pass).
func (c TrainConfig) CheckSettings() error {
	if err := checkTrainSettings(&c); err != nil {
		return err
	}
	if err := c.Optimizer.Validate(); err != nil {
		return err
	}
	if _, err := WarmupStepsFromRatio(c.WarmupRatio, 1); err != nil {
		return err
	}
	if c.WarmupSteps < 0 {
		return fmt.Errorf("warmup steps must be >= 0, got %d", c.WarmupSteps)
	}
	if _, err := NewSchedule(c.Scheduler, c.LR, 0, 1); err != nil {
		return err
	}
	return nil
}

func checkTrainConfig(c *TrainConfig) error {
	switch {
	case c.RunDir == "":
		return errors.New("no run directory")
	case c.Loss == nil:
		return errors.New("no loss")
	case c.SaveAdapter == nil || c.LoadAdapter == nil:
		return errors.New("SaveAdapter and LoadAdapter are required")
	}
	return checkTrainSettings(c)
}

// checkTrainSettings checks the step-count and interval settings and fills their defaults.
func checkTrainSettings(c *TrainConfig) error {
	switch {
	case c.BatchSize <= 0:
		return fmt.Errorf("batch size must be > 0, got %d", c.BatchSize)
	case c.MicroBatch < 0 || c.MicroBatch > c.BatchSize:
		return fmt.Errorf("micro-batch must be in 1..batch size %d (0 = batch size), got %d", c.BatchSize, c.MicroBatch)
	case c.Epochs < 0 || c.MaxSteps < 0 || (c.Epochs == 0 && c.MaxSteps == 0):
		return fmt.Errorf("need epochs > 0 or max steps > 0 (got %d, %d)", c.Epochs, c.MaxSteps)
	case !isFinite(c.MaxGradNorm) || c.MaxGradNorm < 0:
		return fmt.Errorf("max grad norm must be >= 0, got %v", c.MaxGradNorm)
	case c.SaveEvery < 0 || c.EvalEvery < 0 || c.KeepCheckpoints < 0 || c.SaveInterval < 0:
		return errors.New("save-every, eval-every, keep-checkpoints and the save interval must be >= 0")
	case !isFinite(c.DCRThreshold) || c.DCRThreshold < 0:
		return fmt.Errorf("DCR threshold must be a finite number >= 0, got %v", c.DCRThreshold)
	case !isFinite(c.DCRAlarm.Rate) || c.DCRAlarm.Rate < 0 || c.DCRAlarm.Rate >= 1 || c.DCRAlarm.Steps < 0:
		return fmt.Errorf(
			"DCR alarm rate must be in [0, 1) and steps >= 0, got %v and %d",
			c.DCRAlarm.Rate,
			c.DCRAlarm.Steps,
		)
	case c.RefRefresh.Every < 0 || (c.RefRefresh.Enabled() && !(c.RefRefresh.Mix > 0 && c.RefRefresh.Mix <= 1)):
		return fmt.Errorf(
			"reference refresh needs every >= 0 and mix in (0, 1], got %d and %v",
			c.RefRefresh.Every,
			c.RefRefresh.Mix,
		)
	}
	if c.DCRThreshold == 0 {
		c.DCRThreshold = DefaultDCRThreshold
	}
	if c.DCRAlarm.Steps == 0 {
		c.DCRAlarm.Steps = 1
	}
	if c.MicroBatch == 0 {
		c.MicroBatch = c.BatchSize
	}
	if c.KeepCheckpoints == 0 {
		c.KeepCheckpoints = 2
	}
	if c.Epochs == 0 {
		c.Epochs = math.MaxInt32 / 2 // bounded by MaxSteps
	}
	return nil
}

// TotalSteps returns the number of optimizer steps of the whole run.
func (t *Trainer) TotalSteps() int { return t.total }

// Step returns the number of optimizer steps completed.
func (t *Trainer) Step() int { return t.step }

// runMeta is what a checkpoint must share with the run that resumes it.
func (t *Trainer) runMeta() map[string]string {
	m := map[string]string{
		"loss":        t.cfg.Loss.Name(),
		"loss_params": t.cfg.Loss.Params().String(),
		"batch_size":  strconv.Itoa(t.cfg.BatchSize),
		"seed":        strconv.FormatUint(t.cfg.Seed, 10),
		"train_pairs": strconv.Itoa(len(t.train)),
		"lr":          strconv.FormatFloat(t.cfg.LR, 'g', -1, 64),
		"scheduler":   t.sched.Kind,
		"total_steps": strconv.Itoa(t.total),
	}
	if t.cfg.RefRefresh.Enabled() {
		m["ref_refresh"] = t.cfg.RefRefresh.String()
	}
	if c, ok := t.cfg.Loss.(*ComposedLoss); ok {
		m["loss_spec"] = c.Spec() // the components' weights and parameters (loss_params is the first's)
	}
	for k, v := range t.cfg.Meta {
		m["user."+k] = v
	}
	return m
}

// stepPairs returns the training pair indices of 0-based step s.
func (t *Trainer) stepPairs(s int) (idx []int, epoch float64) {
	ep, within := s/t.perEp, s%t.perEp
	perm := rand.New(rand.NewPCG(t.cfg.Seed, uint64(ep))).Perm(len(t.train))
	lo := within * t.cfg.BatchSize
	hi := min(lo+t.cfg.BatchSize, len(t.train))
	return perm[lo:hi], float64(ep) + float64(hi)/float64(len(t.train))
}

// Resume restores the latest checkpoint of the run directory, if there is one, and reports whether
// it did. The metrics file is cut back to the checkpoint's step.
func (t *Trainer) Resume() (bool, error) {
	name, err := os.ReadFile(filepath.Join(t.cfg.RunDir, latestCheckpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("resume: %w", err)
	}
	dir := filepath.Join(t.cfg.RunDir, strings.TrimSpace(string(name)))
	st, err := LoadTrainState(filepath.Join(dir, stateFileName))
	if err != nil {
		return false, fmt.Errorf("resume: %w", err)
	}
	if err := st.Optimizer.CheckShapes(t.shapes); err != nil {
		return false, fmt.Errorf("resume from %s: %w", dir, err)
	}
	want := t.runMeta()
	keys := slices.Sorted(maps.Keys(want))
	for _, k := range keys {
		if st.Meta[k] != want[k] {
			return false, fmt.Errorf(
				"resume from %s: the checkpoint was made with %s=%q, this run has %q (use a new run directory to change settings)",
				dir,
				k,
				st.Meta[k],
				want[k],
			)
		}
	}
	if st.Step < 0 || st.Step > int64(t.total) {
		return false, fmt.Errorf("resume from %s: step %d outside 0..%d", dir, st.Step, t.total)
	}
	if err := t.cfg.LoadAdapter(dir); err != nil {
		return false, fmt.Errorf("resume from %s: load adapter: %w", dir, err)
	}
	if err := t.loadRefreshed(dir); err != nil {
		return false, fmt.Errorf("resume from %s: %w", dir, err)
	}
	if t.comm.Rank() == 0 {
		if err := TruncateMetricsAfter(filepath.Join(t.cfg.RunDir, MetricsFileName), int(st.Step)); err != nil {
			return false, fmt.Errorf("resume: %w", err)
		}
	}
	if t.cfg.DCRAlarm.Rate > 0 {
		// The alarm counts consecutive steps: recount the run of high-DCR steps from the metrics.
		steps, err := ReadMetrics(filepath.Join(t.cfg.RunDir, MetricsFileName))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("resume: %w", err)
		}
		t.alarmRun = 0
		for _, s := range steps {
			if (s.Split == "" || s.Split == "train") && s.Step <= int(st.Step) {
				if s.DCRRate > t.cfg.DCRAlarm.Rate {
					t.alarmRun++
				} else {
					t.alarmRun = 0
				}
			}
		}
	}
	t.opt, t.rng = st.Optimizer, st.RNG
	t.step, t.resumedFrom, t.lastSaved = int(st.Step), int(st.Step), int(st.Step)
	t.result.Checkpoint = dir
	return true, nil
}

// Run trains until the last step, saving checkpoints as configured. When ctx is cancelled it saves
// a checkpoint of the last completed step and returns the context's error. A non-finite loss or
// gradient stops the run with an error and no checkpoint (the last good one stays).
func (t *Trainer) Run(ctx context.Context) (*TrainResult, error) {
	start := time.Now()
	if err := os.MkdirAll(t.cfg.RunDir, 0o755); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	t.lastSavedAt = time.Now()
	if t.comm.Rank() == 0 {
		if err := removeStaleCheckpointTemps(t.cfg.RunDir); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		if t.resumedFrom == 0 && t.step == 0 {
			if err := t.checkFreshRunDir(); err != nil {
				return nil, err
			}
		}
		mw, err := OpenMetricsWriter(filepath.Join(t.cfg.RunDir, MetricsFileName))
		if err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		t.metrics = mw
		defer mw.Close()
	}
	t.result.ResumedFrom = t.resumedFrom
	finish := func(err error) (*TrainResult, error) {
		t.result.Steps = t.step
		t.result.Elapsed = time.Since(start)
		return &t.result, err
	}
	for t.step < t.total {
		// A data-parallel step decides on interruptions collectively (in its gathers).
		if t.dp == nil && ctx.Err() != nil {
			return finish(t.interrupted(ctx))
		}
		if err := t.trainStep(ctx); err != nil {
			if ctx.Err() != nil || errors.Is(err, errJobInterrupted) {
				return finish(t.interrupted(ctx))
			}
			return finish(err)
		}
		if t.alarmStop {
			if err := t.checkpoint(); err != nil {
				return finish(err)
			}
			return finish(fmt.Errorf("%w: dcr_rate above %v for %d consecutive steps at step %d (checkpoint %s)",
				ErrDCRAlarm, t.cfg.DCRAlarm.Rate, t.cfg.DCRAlarm.Steps, t.step, t.result.Checkpoint))
		}
		if t.cfg.EvalEvery > 0 && len(t.eval) > 0 && t.step%t.cfg.EvalEvery == 0 && t.step < t.total {
			// Not interruptible: an interruption here would save step t.step's checkpoint without its
			// eval line, and the resumed run would never write it. The next step sees the interruption.
			if err := t.evaluate(context.WithoutCancel(ctx)); err != nil {
				return finish(err)
			}
		}
		everyN := t.cfg.SaveEvery > 0 && t.step%t.cfg.SaveEvery == 0
		everyT := t.cfg.SaveInterval > 0 && time.Since(t.lastSavedAt) >= t.cfg.SaveInterval
		if (everyN || everyT) && t.step < t.total {
			if err := t.checkpoint(); err != nil {
				return finish(err)
			}
		}
	}
	if len(t.eval) > 0 && (t.result.LastEval == nil || t.result.LastEval.Step != t.step) {
		if err := t.evaluate(ctx); err != nil {
			if ctx.Err() != nil {
				return finish(t.interrupted(ctx))
			}
			return finish(err)
		}
	}
	if t.lastSaved != t.step {
		if err := t.checkpoint(); err != nil {
			return finish(err)
		}
	}
	return finish(nil)
}

// checkFreshRunDir refuses to start a new run over an earlier one's checkpoint. Metrics without a
// checkpoint are from a run killed before its first checkpoint: nothing can be resumed, so they
// are cleared and the run starts over.
func (t *Trainer) checkFreshRunDir() error {
	fi, err := os.Stat(filepath.Join(t.cfg.RunDir, latestCheckpointFile))
	if err == nil && fi.Size() > 0 {
		return fmt.Errorf(
			"train: %s already holds %s from an earlier run: resume it or use a new run directory",
			t.cfg.RunDir,
			latestCheckpointFile,
		)
	}
	if err := truncateJSONLSteps(filepath.Join(t.cfg.RunDir, MetricsFileName), 0); err != nil {
		return fmt.Errorf("train: clear the metrics of a run killed before its first checkpoint: %w", err)
	}
	return nil
}

// interrupted saves the completed steps and returns the cancellation error.
func (t *Trainer) interrupted(ctx context.Context) error {
	if t.lastSaved != t.step {
		if err := t.checkpoint(); err != nil {
			return fmt.Errorf("interrupted at step %d, and saving the checkpoint failed: %w", t.step, err)
		}
	}
	cause := ctx.Err()
	if cause == nil {
		cause = errJobInterrupted // another rank of the job was interrupted
	}
	return fmt.Errorf("interrupted after step %d (checkpoint %s): %w", t.step, t.result.Checkpoint, cause)
}

// pairLogps joins policy log-probs with the reference and token counts.
func pairLogps(batch []TokenizedPair, refs []RefLogps, idx []int, chosen, rejected []float64) ([]PairLogps, error) {
	if len(chosen) != len(batch) || len(rejected) != len(batch) {
		return nil, fmt.Errorf("policy returned %d/%d log-probs for %d pairs", len(chosen), len(rejected), len(batch))
	}
	out := make([]PairLogps, len(batch))
	for i, p := range batch {
		out[i] = PairLogps{
			PolicyChosen:   chosen[i],
			PolicyRejected: rejected[i],
			ChosenTokens:   len(p.Chosen),
			RejectedTokens: len(p.Rejected),
		}
		if refs != nil {
			r := refs[idx[i]]
			out[i].RefChosen, out[i].RefRejected = r.Chosen, r.Rejected
			out[i].RefChosenShared, out[i].RefRejectedShared = r.ChosenShared, r.RejectedShared
		}
	}
	return out, nil
}

// trainStep runs one optimizer step over its micro-batches.
func (t *Trainer) trainStep(ctx context.Context) error {
	var events []string
	if t.cfg.RefRefresh.Enabled() && t.step > 0 && t.step%t.cfg.RefRefresh.Every == 0 {
		// At the start of the step, so that a checkpoint of the previous step resumes into it.
		if err := t.refreshReference(ctx); err != nil {
			return err
		}
		events = append(events, "ref_refresh")
	}
	idx, epoch := t.stepPairs(t.step)
	ma := NewMetricsAccumulator(t.cfg.Loss)
	ma.SetDCRThreshold(t.cfg.DCRThreshold)
	t.acc.Reset()
	withPrompt, withShared := needsPromptLogps(t.cfg.Loss), needsSharedLogps(t.cfg.Loss)
	if t.dp != nil {
		if err := t.trainStepParallel(ctx, idx, ma); err != nil {
			return err
		}
	}
	for lo := 0; t.dp == nil && lo < len(idx); lo += t.cfg.MicroBatch { // one process
		mIdx := idx[lo:min(lo+t.cfg.MicroBatch, len(idx))]
		batch := t.pairsAt(mIdx)
		fwd, lay := extendBatch(batch, withPrompt, withShared)
		lossFn := t.microBatchLoss(batch, mIdx, lay, len(fwd), func(pl []PairLogps, l float64, _, _ []float64) { ma.Add(pl, l) })
		for _, g := range t.microGrads {
			clear(g)
		}
		t0 := time.Now()
		err := t.policy.ForwardBackward(ctx, fwd, lossFn, t.microGrads)
		t.result.PolicyTime += time.Since(t0)
		if err != nil {
			return fmt.Errorf("step %d: %w", t.step+1, err)
		}
		if ma.Pairs() != lo+len(mIdx) {
			return fmt.Errorf("step %d: the policy did not call the loss exactly once per micro-batch", t.step+1)
		}
		if err := t.acc.Add(t.microGrads, len(mIdx)); err != nil {
			return fmt.Errorf("step %d: %w", t.step+1, err)
		}
	}
	t0 := time.Now()
	avg, err := t.acc.Average(t.avgBuf)
	if err != nil {
		return fmt.Errorf("step %d: %w", t.step+1, err)
	}
	t.avgBuf = avg
	norm, err := ClipGradNorm(avg, t.names, t.cfg.MaxGradNorm)
	if err != nil {
		return fmt.Errorf("step %d: %w", t.step+1, err)
	}
	lr := t.sched.LR(t.step)
	if err := t.opt.Step(t.policy.Params(), avg, lr); err != nil {
		return fmt.Errorf("step %d: %w", t.step+1, err)
	}
	t.result.OptimTime += time.Since(t0)
	t.step++
	t.result.Pairs += len(idx)
	sm, err := ma.Finish(t.step, epoch, norm, lr)
	if err != nil {
		return err
	}
	if a := t.cfg.DCRAlarm; a.Rate > 0 {
		if sm.DCRRate > a.Rate {
			t.alarmRun++
		} else {
			t.alarmRun = 0
		}
		if t.alarmRun >= a.Steps {
			events = append(events, "dcr_alarm")
			t.alarmStop = a.Stop
		}
	}
	sm.Event = strings.Join(events, ",")
	t.result.Last = sm
	return t.log(sm)
}

func (t *Trainer) log(sm StepMetrics) error {
	if t.metrics != nil { // nil on the data-parallel ranks other than 0
		if err := t.metrics.Write(sm); err != nil {
			return err
		}
	}
	if t.cfg.OnStep != nil {
		t.cfg.OnStep(sm)
	}
	return nil
}

// evaluate computes the loss and metrics on the eval pairs (forward only) and logs them with
// split "eval".
func (t *Trainer) evaluate(ctx context.Context) error {
	if t.comm.Rank() != 0 {
		return nil // rank 0 evaluates while the others wait in the next step's gather
	}
	t0 := time.Now()
	defer func() { t.result.EvalTime += time.Since(t0) }()
	ma := NewMetricsAccumulator(t.cfg.Loss)
	ma.SetDCRThreshold(t.cfg.DCRThreshold)
	for lo := 0; lo < len(t.eval); lo += t.cfg.MicroBatch {
		hi := min(lo+t.cfg.MicroBatch, len(t.eval))
		idx := make([]int, hi-lo)
		for i := range idx {
			idx[i] = lo + i
		}
		pl, err := forwardLogps(ctx, t.policy, t.cfg.Loss, t.eval[lo:hi], t.evalRef, idx)
		if err != nil {
			return fmt.Errorf("eval at step %d: %w", t.step, err)
		}
		l, _, err := t.cfg.Loss.Compute(pl)
		if err != nil {
			return fmt.Errorf("eval at step %d: %w", t.step, err)
		}
		ma.Add(pl, l)
	}
	_, epoch := t.stepPairs(max(t.step-1, 0))
	sm, err := ma.Finish(t.step, epoch, 0, t.sched.LR(t.step))
	if err != nil {
		return err
	}
	sm.Split = "eval"
	t.result.LastEval = &sm
	return t.log(sm)
}

// checkpoint writes RUN_DIR/checkpoint-NNNNNN (adapter + state) through a temporary directory,
// points latest-checkpoint at it and prunes old checkpoints.
func (t *Trainer) checkpoint() error {
	if t.comm.Rank() != 0 {
		t.lastSaved, t.lastSavedAt = t.step, time.Now() // rank 0 writes the checkpoints
		return nil
	}
	t0 := time.Now()
	defer func() { t.result.SaveTime += time.Since(t0) }()
	name := fmt.Sprintf("checkpoint-%06d", t.step)
	final := filepath.Join(t.cfg.RunDir, name)
	tmp := filepath.Join(t.cfg.RunDir, "."+name+".tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := t.cfg.SaveAdapter(tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("checkpoint %s: save adapter: %w", name, err)
	}
	if err := t.saveRefreshed(tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("checkpoint %s: refreshed reference: %w", name, err)
	}
	_, epoch := t.stepPairs(max(t.step-1, 0))
	st := &TrainState{Step: int64(t.step), Epoch: int64(epoch), Cursor: int64(t.step % t.perEp * t.cfg.BatchSize),
		Optimizer: t.opt, RNG: t.rng, Meta: t.runMeta()}
	if err := SaveTrainState(filepath.Join(tmp, stateFileName), st); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("checkpoint %s: %w", name, err)
	}
	if err := os.RemoveAll(final); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := atomicfile.WriteFunc(filepath.Join(t.cfg.RunDir, latestCheckpointFile), func(w io.Writer) error {
		_, err := io.WriteString(w, name+"\n")
		return err
	}); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	t.lastSaved, t.lastSavedAt = t.step, time.Now()
	t.result.Checkpoint = final
	return t.prune(name)
}

// prune removes all but the newest KeepCheckpoints checkpoint directories.
func (t *Trainer) prune(latest string) error {
	entries, err := os.ReadDir(t.cfg.RunDir)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	var cps []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "checkpoint-") {
			cps = append(cps, e.Name())
		}
	}
	sort.Strings(cps)
	for len(cps) > t.cfg.KeepCheckpoints {
		if cps[0] != latest {
			if err := os.RemoveAll(filepath.Join(t.cfg.RunDir, cps[0])); err != nil {
				return fmt.Errorf("checkpoint: prune: %w", err)
			}
		}
		cps = cps[1:]
	}
	return nil
}

// pairsAt returns the training pairs at the given indices.
func (t *Trainer) pairsAt(idx []int) []TokenizedPair {
	batch := make([]TokenizedPair, len(idx))
	for i, j := range idx {
		batch[i] = t.train[j]
	}
	return batch
}

// microBatchLoss is the loss function of one micro-batch (indices mIdx of the training pairs, nFwd
// sequences forwarded with layout lay): the policy's log-probs become the loss and its gradients;
// done sees each call's pair log-probs, loss and the raw chosen/rejected log-probs.
func (t *Trainer) microBatchLoss(batch []TokenizedPair, mIdx []int, lay auxLayout, nFwd int,
	done func(pl []PairLogps, loss float64, chosen, rejected []float64)) func(chosen, rejected []float64) (float64, []PairGrad, error) {
	return func(chosen, rejected []float64) (float64, []PairGrad, error) {
		pl, err := lay.logps(batch, t.trainRef, mIdx, chosen, rejected)
		if err != nil {
			return 0, nil, err
		}
		t0 := time.Now()
		l, g, err := t.cfg.Loss.Compute(pl)
		t.result.LossTime += time.Since(t0)
		if err != nil {
			return 0, nil, err
		}
		done(pl, l, chosen, rejected)
		return l, lay.grads(g, nFwd), nil
	}
}
