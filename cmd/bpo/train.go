package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/align/llamaalign"
	"github.com/bpo-dev/bpo/llama"
)

func trainCommand() *cli.Command {
	flags := append(trainingFlags(5e-6, 8), lossParamFlags()...)
	flags = append(
		flags,
		&cli.StringFlag{
			Name:  "loss",
			Value: "bpo",
			Usage: "preference loss, or a weighted sum NAME[(PARAM=VALUE,...)][:WEIGHT],... (e.g. bpo:1,sft:0.2); losses: " + strings.Join(
				align.LossNames(),
				", ",
			),
		},
		&cli.Float64Flag{
			Name:  "ld-alpha",
			Usage: "LD-DPO in (0, 1): the tokens beyond the shorter completion's length count alpha times (policy and reference); 0: off",
		},
		&cli.BoolFlag{
			Name:  "use-weighting",
			Usage: "WPO weighting: scale each pair's loss by exp(mean token logp of chosen + of rejected), without gradient",
		},
		&cli.Float64Flag{
			Name:  "dcr-threshold",
			Value: align.DefaultDCRThreshold,
			Usage: "a chosen reward counts as degraded (dcr_rate) when below -THRESHOLD",
		},
		&cli.StringFlag{
			Name:  "dcr-alarm",
			Usage: "RATE[:STEPS][:warn|stop]: warn, or stop with a checkpoint, when dcr_rate > RATE for STEPS consecutive steps",
		},
		&cli.StringFlag{
			Name:  "ref-refresh",
			Usage: "TR-DPO: hard:N (reference = policy every N steps) or soft:ALPHA:N (reference = ALPHA·policy + (1-ALPHA)·reference)",
		},
		&cli.IntFlag{
			Name:  "micro-batch",
			Usage: "pairs per forward/backward (gradient accumulation); 0: the whole batch",
		},
		&cli.IntFlag{Name: "max-prompt-length", Value: 256, Usage: "max prompt tokens"},
		&cli.StringFlag{Name: "truncation-mode", Value: "keep_end", Usage: "keep_end, keep_start or error"},
		&cli.Float64Flag{Name: "eval-split", Usage: "share of the pairs held out for evaluation (0: none)"},
		&cli.IntFlag{Name: "eval-every", Value: 0, Usage: "evaluate every N steps (and at the end)"},
		&cli.IntFlag{Name: "keep-checkpoints", Value: 2, Usage: "checkpoints kept on disk"},
		&cli.BoolFlag{Name: "strict", Usage: "stop at the first malformed data line instead of skipping it"},
	)
	return &cli.Command{
		Name:      "train",
		Usage:     "preference optimization with LoRA: BPO, DPO, IPO, SLiC/hinge, Cal-DPO, DPOP, SimPO, ORPO, RPO, TRL's other offline losses, or a weighted sum of them",
		UsageText: "bpo train --model M.gguf --data pairs.jsonl --loss bpo|dpo|... --out RUN_DIR [options]",
		Description: `Data: JSONL with {"prompt","chosen","rejected"} strings, conversational message lists, or
{"question","chosen":{"solution"},"rejected":{"solution"}}. Conversational prompts get the model's
chat template (or --template); EOS is appended to completions. Reference log-probs come from the base
model through llama.cpp, computed once and cached next to the run (RUN_DIR/../.bpo-refcache). Metrics
with TRL's names go to RUN_DIR/metrics.jsonl; the adapter to RUN_DIR/adapter.gguf (loadable by
llama.cpp, ollama and --adapter). Re-running resumes; Ctrl-C saves a checkpoint.`,
		Flags:  flags,
		Action: lockedRun(checkTrainFlags, runTrain),
	}
}

// checkTrainFlags refuses bad training and loss settings before the run directory is touched.
func checkTrainFlags(c *cli.Context) error {
	if _, err := checkpointing(c); err != nil {
		return err
	}
	_, err := trainOptionsFromFlags(c)
	return err
}

func runTrain(c *cli.Context) error {
	modelPath, runDir, dataPath := c.String("model"), c.String("out"), c.String("data")
	ckpt, err := checkpointing(c)
	if err != nil {
		return err
	}
	device, err := deviceOf(c) // loads the backend library before any work starts
	if err != nil {
		return err
	}
	opts, err := trainOptionsFromFlags(c)
	if err != nil {
		return err
	}
	loss := opts.loss
	// Settings first: LoRA (and --init-adapter) and the optimizer settings are checked before the
	// data is tokenized and the reference pass runs (hours on a real model).
	lora, err := initialLoRA(c)
	if err != nil {
		return err
	}
	settings, err := trainSettings(c)
	if err == nil {
		err = settings.CheckSettings()
	}
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	data, err := align.LoadPreferences(dataPath, align.LoadOptions{Strict: c.Bool("strict")})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "train: %s: %s\n", dataPath, data.Summary())
	for i, s := range data.Skipped {
		if i == 5 {
			fmt.Fprintf(os.Stderr, "  ... %d more skipped lines\n", len(data.Skipped)-5)
			break
		}
		fmt.Fprintf(os.Stderr, "  skipped %v\n", s)
	}
	if len(data.Examples) == 0 {
		return fmt.Errorf("%s: no valid pairs", dataPath)
	}
	trainEx, evalEx, err := align.SplitEval(data.Examples, c.Float64("eval-split"), c.Uint64("seed"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	trunc := truncationOf(c)
	tmpl := align.PromptTemplate(c.String("template"))

	prep, err := prepareTraining(c, opts, trainEx, evalEx, trunc, tmpl)
	if err != nil {
		return err
	}

	policy, err := llamaalign.NewLlamaLoRAPolicyOn(modelPath, lora, threadsOf(c), device)
	if err != nil {
		return err
	}
	defer policy.Close()
	policy.Model().SetCheckpointing(ckpt)
	sayTrainDevice(os.Stderr, "train", policy.Model().TrainDevice())
	adapterMeta := map[string]string{
		"bpo.base_model":                filepath.Base(modelPath),
		llama.KeyAdapterBaseFingerprint: prep.modelFP,
		"bpo.loss":                      loss.Name(),
		"bpo.loss_params":               loss.Params().String(),
	}
	if _, composed := loss.(*align.ComposedLoss); composed {
		adapterMeta["bpo.loss_spec"] = align.LossSpec(loss)
	}
	var bar *progress
	interval, err := saveInterval(c)
	if err != nil {
		return err
	}
	cfg := align.TrainConfig{
		RunDir: runDir, Loss: loss, Optimizer: adamConfig(c), LR: c.Float64("lr"), Scheduler: c.String("scheduler"),
		WarmupRatio: c.Float64("warmup-ratio"), MaxGradNorm: c.Float64("max-grad-norm"), BatchSize: c.Int("batch-size"),
		MicroBatch: c.Int("micro-batch"), Epochs: c.Int("epochs"), MaxSteps: c.Int("max-steps"), Seed: c.Uint64("seed"),
		SaveEvery: c.Int(
			"save-every",
		), SaveInterval: interval, KeepCheckpoints: c.Int("keep-checkpoints"), EvalEvery: c.Int("eval-every"),
		DCRThreshold: opts.dcrThreshold, DCRAlarm: opts.alarm, RefRefresh: opts.refresh,
		Meta: map[string]string{
			"model":      prep.modelFP,
			"data":       prep.dataHash,
			"lora_rank":  fmt.Sprint(lora.Rank),
			"lora_alpha": fmt.Sprint(lora.Alpha),
		},
		SaveAdapter: func(dir string) error { return policy.SaveAdapter(dir, adapterMeta) },
		LoadAdapter: policy.LoadAdapter,
		Comm:        commOf(c),
		OnStep: func(s align.StepMetrics) {
			if s.Split == "eval" || !isRank0(c) {
				return
			}
			if s.Event != "" {
				fmt.Fprintf(
					os.Stderr,
					"\ntrain: step %d: %s (dcr_rate %.2f, rewards/chosen %+.4f)\n",
					s.Step,
					eventText(s.Event),
					s.DCRRate,
					s.RewardsChosen,
				)
			}
			bar.Describe(
				fmt.Sprintf(
					"%s loss %.4f margin %+.3f chosen %+.3f",
					loss.Name(),
					s.Loss,
					s.RewardsMargins,
					s.RewardsChosen,
				),
			)
			bar.Add(1)
		},
	}
	trainer, err := align.NewTrainer(cfg, policy, prep.trainPairs, prep.trainRef, prep.evalPairs, prep.evalRef)
	if err != nil {
		return err
	}
	resumed, err := trainer.Resume()
	if err != nil {
		return err
	}
	if w := worldOf(c); w.Size() > 1 {
		fmt.Fprintf(
			os.Stderr,
			"train: rank %d of %d (MPI): micro-batches of %d pairs dealt to the ranks\n",
			w.Rank(),
			w.Size(),
			cmp.Or(c.Int("micro-batch"), c.Int("batch-size")),
		)
		if !isRank0(c) {
			res, err := trainer.Run(c.Context)
			if err == nil {
				fmt.Fprintf(os.Stderr, "train: rank %d done after %d steps\n", w.Rank(), res.Steps)
			}
			return err
		}
	}
	bar = newProgress(trainer.TotalSteps(), "train")
	if resumed {
		fmt.Fprintf(os.Stderr, "train: resuming at step %d of %d\n", trainer.Step(), trainer.TotalSteps())
		bar.Add(trainer.Step())
	}
	res, err := trainer.Run(c.Context)
	bar.Finish()
	if errors.Is(err, align.ErrDCRAlarm) && res != nil {
		if cerr := copyFileAtomic(filepath.Join(res.Checkpoint, align.AdapterFileName), filepath.Join(runDir, align.AdapterFileName)); cerr != nil {
			return cerr
		}
		fmt.Fprintf(
			os.Stderr,
			"train: stopped by the DCR alarm; adapter of step %d in %s\n",
			res.Steps,
			filepath.Join(runDir, align.AdapterFileName),
		)
		return err
	}
	if err != nil {
		if errors.Is(err, c.Context.Err()) && res != nil {
			fmt.Fprintf(
				os.Stderr,
				"train: interrupted; checkpoint saved in %s (run the same command to resume)\n",
				res.Checkpoint,
			)
		}
		return err
	}
	if err := copyFileAtomic(filepath.Join(res.Checkpoint, align.AdapterFileName), filepath.Join(runDir, align.AdapterFileName)); err != nil {
		return err
	}
	l := res.Last
	fmt.Printf(
		"train: %s, %d steps, loss %.4f, rewards/chosen %+.4f, rewards/rejected %+.4f, margins %+.4f, dcr_rate %.2f\n",
		loss.Name(),
		res.Steps,
		l.Loss,
		l.RewardsChosen,
		l.RewardsRejected,
		l.RewardsMargins,
		l.DCRRate,
	)
	if len(l.Components) > 0 {
		fmt.Printf("train: loss components (unweighted):")
		for _, t := range loss.(*align.ComposedLoss).Components() {
			fmt.Printf(" %s %.4f (weight %g)", t.Loss.Name(), l.Components[t.Loss.Name()], t.Weight)
		}
		fmt.Println()
	}
	fmt.Printf(
		"train: %.3f pairs/s; time in policy forward+backward %s, optimizer %s, checkpoints %s, eval %s\n",
		res.PairsPerSecond(),
		res.PolicyTime.Round(1e6),
		res.OptimTime.Round(1e6),
		res.SaveTime.Round(1e6),
		res.EvalTime.Round(1e6),
	)
	fmt.Printf("train: adapter %s\n", filepath.Join(runDir, align.AdapterFileName))
	return nil
}

// cachedReference loads reference log-probs from the cache shared by runs beside runDir, or computes
// and stores them.
func cachedReference(
	c *cli.Context,
	m *llama.Model,
	pairs []align.TokenizedPair,
	key, runDir, split string,
) ([]align.RefLogps, error) {
	dir := filepath.Join(filepath.Dir(filepath.Clean(runDir)), ".bpo-refcache")
	path := filepath.Join(dir, key[:24]+".bin")
	refs, err := align.LoadRefCache(path, key, len(pairs))
	if comm := commOf(c); comm != nil {
		// The ranks of an MPI job take the cache only if all of them found it.
		hits, gerr := align.GatherFloat64s(comm, []float64{boolFloat(err == nil)})
		if gerr != nil {
			return nil, fmt.Errorf("reference log-probs (%s): %w", split, gerr)
		}
		for _, h := range hits {
			if h[0] == 0 {
				err = errors.New("not cached on every rank")
			}
		}
	}
	if err == nil {
		fmt.Fprintf(os.Stderr, "train: %s reference log-probs from cache %s\n", split, path)
		return refs, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if comm := commOf(c); comm != nil {
		refs, err := align.ShardedReferenceLogps(
			c.Context, comm, pairs,
			func(ctx context.Context, shard []align.TokenizedPair) ([]align.RefLogps, error) {
				return llamaalign.ReferenceLogps(ctx, m, shard, threadsOf(c), nil)
			},
		)
		if err != nil {
			return nil, err
		}
		if comm.Rank() == 0 {
			if err := align.SaveRefCache(path, key, refs); err != nil {
				return nil, err
			}
		}
		return refs, nil
	}
	bar := newProgress(len(pairs), "reference log-probs ("+split+")")
	done := 0
	refs, err = llamaalign.ReferenceLogps(c.Context, m, pairs, threadsOf(c), func(n int) { bar.Add(n - done); done = n })
	bar.Finish()
	if err != nil {
		return nil, err
	}
	if err := align.SaveRefCache(path, key, refs); err != nil {
		return nil, err
	}
	return refs, nil
}

// addSharedReference fills the shared-prefix sums of refs (LD-DPO) from the reference model, cached
// like the full sums.
func addSharedReference(
	c *cli.Context,
	m *llama.Model,
	pairs []align.TokenizedPair,
	refs []align.RefLogps,
	key, runDir, split string,
) error {
	shared, err := cachedReference(c, m, align.SharedPrefixPairs(pairs), key, runDir, split+" shared prefixes")
	if err != nil {
		return err
	}
	for i := range refs {
		refs[i].ChosenShared, refs[i].RejectedShared = shared[i].Chosen, shared[i].Rejected
	}
	return nil
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// preparedData are the tokenized pairs of a run and, for losses with a reference, the reference
// model's log-probs.
type preparedData struct {
	trainPairs, evalPairs []align.TokenizedPair
	trainRef, evalRef     []align.RefLogps
	modelFP, dataHash     string
}

// prepareTraining tokenizes the pairs and scores them with the reference (the base model through
// llama.cpp, adapter off), cached by model, data and settings. The model is closed on return, before
// the training graph is built.
func prepareTraining(
	c *cli.Context,
	opts trainOptions,
	trainEx, evalEx []align.PreferenceExample,
	trunc align.Truncation,
	tmpl align.PromptTemplate,
) (preparedData, error) {
	modelPath, runDir, dataPath := c.String("model"), c.String("out"), c.String("data")
	m, err := llama.LoadModel(modelPath, llama.ModelOptions{})
	if err != nil {
		return preparedData{}, err
	}
	defer m.Close()
	trunc.MaxLength = capToContext(m, trunc.MaxLength)
	var p preparedData
	var cut1, cut2 int
	if p.trainPairs, cut1, err = llamaalign.TokenizePreferences(m, trainEx, tmpl, trunc); err != nil {
		return p, fmt.Errorf("%s: %w", dataPath, err)
	}
	if p.evalPairs, cut2, err = llamaalign.TokenizePreferences(m, evalEx, tmpl, trunc); err != nil {
		return p, fmt.Errorf("%s: %w", dataPath, err)
	}
	fmt.Fprintf(
		os.Stderr,
		"train: %d train / %d eval pairs, %d truncated\n",
		len(p.trainPairs),
		len(p.evalPairs),
		cut1+cut2,
	)
	if p.modelFP, err = align.FileFingerprint(modelPath); err != nil {
		return p, err
	}
	if p.dataHash, err = align.FileHash(dataPath); err != nil {
		return p, err
	}
	if !opts.loss.NeedsReference() {
		return p, nil
	}
	settings := fmt.Sprintf("%s|%+v|eval=%v|seed=%d", tmpl, trunc, c.Float64("eval-split"), c.Uint64("seed"))
	key := func(split string) string { return align.RefCacheKey(p.modelFP, p.dataHash, settings, split) }
	p.trainRef, err = cachedReference(c, m, p.trainPairs, key("train"), runDir, "train")
	if err == nil && len(p.evalPairs) > 0 {
		p.evalRef, err = cachedReference(c, m, p.evalPairs, key("eval"), runDir, "eval")
	}
	if err == nil && opts.ldAlpha != 0 {
		// LD-DPO also reads the reference's log-probs of the completions' shared prefixes.
		err = addSharedReference(c, m, p.trainPairs, p.trainRef, key("train-shared"), runDir, "train")
		if err == nil && len(p.evalPairs) > 0 {
			err = addSharedReference(c, m, p.evalPairs, p.evalRef, key("eval-shared"), runDir, "eval")
		}
	}
	return p, err
}
