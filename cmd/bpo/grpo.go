package main

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/align/llamaalign"
	"github.com/bpo-dev/bpo/eval"
	"github.com/bpo-dev/bpo/eval/bench"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/lora"
	"github.com/bpo-dev/bpo/online"
)

func grpoCommand() *cli.Command {
	flags := generationFlags(8, 1.0, "train where the benchmark has one, else test")
	flags = append(flags,
		&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Usage: "run folder (metrics.jsonl, round-NNN/, checkpoints); an existing run there is resumed"},
		&cli.IntFlag{Name: "rounds", Value: 4, Usage: "sample -> grade -> train rounds"},
		&cli.IntFlag{Name: "questions-per-round", Value: 32, Usage: "prompts sampled per round (--n completions each)"},
		&cli.IntFlag{Name: "batch-questions", Value: 8, Usage: "prompts (groups of --n completions) per optimizer step"},
		&cli.IntFlag{Name: "micro-questions", Usage: "prompts per forward/backward (0: --batch-questions)"},
		&cli.IntFlag{Name: "iterations", Value: 1, Usage: "passes over a round's samples (TRL's num_iterations)"},
		&cli.StringFlag{Name: "loss-type", Value: align.GRPOLossGRPO, Usage: "token aggregation: " + strings.Join(align.GRPOLossTypes(), ", ")},
		&cli.Float64Flag{Name: "epsilon", Value: 0.2, Usage: "lower clipping range of the importance ratio"},
		&cli.Float64Flag{Name: "epsilon-high", Usage: "upper clipping range (0: --epsilon; DAPO uses 0.28)"},
		&cli.Float64Flag{Name: "beta", Value: 0, Usage: "weight of the KL penalty to the reference (the model without adapter)"},
		&cli.BoolFlag{Name: "scale-rewards", Value: true, Usage: "divide advantages by the group's std (GRPO); --scale-rewards=false for Dr. GRPO"},
		&cli.IntFlag{Name: "lora-rank", Value: 16, Usage: "LoRA rank r"},
		&cli.Float64Flag{Name: "lora-alpha", Value: 16, Usage: "LoRA alpha"},
		&cli.StringFlag{Name: "lora-targets", Value: strings.Join(lora.Targets(), ","), Usage: "comma-separated projections to adapt"},
		&cli.StringFlag{Name: "init-adapter", Usage: "start from this LoRA adapter (GGUF file or PEFT folder)"},
		&cli.Float64Flag{Name: "lr", Value: 1e-5, Usage: "learning rate (constant)"},
		&cli.Float64Flag{Name: "weight-decay", Value: 0, Usage: "AdamW decoupled weight decay"},
		&cli.Float64Flag{Name: "adam-beta1", Value: 0.9, Usage: "AdamW beta1"},
		&cli.Float64Flag{Name: "adam-beta2", Value: 0.999, Usage: "AdamW beta2"},
		&cli.Float64Flag{Name: "adam-eps", Value: 1e-8, Usage: "AdamW epsilon"},
		&cli.Float64Flag{Name: "max-grad-norm", Value: 1, Usage: "global gradient-norm clipping (0: off)"},
		&cli.IntFlag{Name: "save-every", Usage: "checkpoint every N steps besides each round's end"},
		&cli.StringFlag{Name: "eval-data", Usage: "benchmark JSONL evaluated greedily before training and after every round (round-NNN/eval)"},
		&cli.IntFlag{Name: "eval-limit", Usage: "evaluate at most this many --eval-data questions"},
	)
	return &cli.Command{
		Name:      "grpo",
		Usage:     "online GRPO-family training of a LoRA adapter with the math grader as the reward",
		UsageText: "bpo grpo --model M.gguf --benchmark gsm8k [--data train.jsonl] --n 8 --out RUN [options]",
		Description: `Runs --rounds rounds. A round samples --n completions (the group) for each of --questions-per-round
questions with the current adapter, grades them (reward 1 when correct, else 0), computes group-normalised
advantages and the sampling policy's per-token log-probs, then takes --iterations passes of optimizer steps
over the groups (--batch-questions per step) with the clipped token-level objective:
  loss = -min(rho A, clip(rho, 1-epsilon, 1+epsilon-high) A) + beta KL_k3,  rho = pi / pi_old per token,
aggregated per --loss-type: grpo (mean per completion, then over completions), dr_grpo (sum / (completions x
--max-new-tokens); use with --scale-rewards=false), dapo (mean over all tokens of the step).
metrics.jsonl uses TRL's names (reward, reward_std, frac_reward_zero_std, completions/mean_length, kl,
clip_ratio/low_mean, clip_ratio/high_mean, clip_ratio/region_mean, ...); bpo plot draws them. With --eval-data
every round's adapter is evaluated greedily into RUN/round-NNN/eval (bpo compare reads those folders).
Ctrl-C checkpoints and stops; re-running the same command resumes (after a kill too) and reproduces the
uninterrupted run; other settings are refused.`,
		Flags:  flags,
		Action: lockedRun(nil, runGRPO),
	}
}

// grpoConfig reads the flags into a run configuration and checks them (before any model loads).
func grpoConfig(c *cli.Context) (online.GRPOConfig, error) {
	eh := c.Float64("epsilon-high")
	if eh == 0 {
		eh = c.Float64("epsilon")
	}
	cfg := online.GRPOConfig{
		RunDir: c.String("out"), Rounds: c.Int("rounds"), QuestionsPerRound: c.Int("questions-per-round"),
		GroupSize: c.Int("n"), BatchQuestions: c.Int("batch-questions"), MicroQuestions: c.Int("micro-questions"),
		Iterations: c.Int("iterations"),
		Objective: align.GRPOConfig{LossType: c.String("loss-type"), EpsilonLow: c.Float64("epsilon"), EpsilonHigh: eh,
			Beta: c.Float64("beta"), ScaleRewards: c.Bool("scale-rewards"), MaxCompletionLength: c.Int("max-new-tokens")},
		Optimizer: adamConfig(c), LR: c.Float64("lr"), MaxGradNorm: c.Float64("max-grad-norm"),
		Seed: c.Uint64("seed"), SaveEvery: c.Int("save-every"),
	}
	if err := online.CheckGRPOConfig(cfg); err != nil {
		return cfg, fmt.Errorf("grpo settings (--n is the group size): %w", err)
	}
	if c.Float64("temperature") <= 0 {
		return cfg, fmt.Errorf("grpo: --temperature %v: sampling must be random (> 0), or every completion of a group is the same", c.Float64("temperature"))
	}
	return cfg, nil
}

// grpoSettings are the flags a resumed run must share with the run that started the folder.
func grpoSettings(c *cli.Context) (map[string]string, error) {
	m := map[string]string{}
	for _, name := range []string{"benchmark", "split", "prompt", "shots", "template", "method", "limit", "shard", "id", "n",
		"temperature", "top-p", "top-k", "seed", "max-new-tokens", "stop", "rounds", "questions-per-round", "batch-questions",
		"micro-questions", "iterations", "loss-type", "epsilon", "epsilon-high", "beta", "scale-rewards", "lora-rank",
		"lora-alpha", "lora-targets", "lr", "weight-decay", "adam-beta1", "adam-beta2", "adam-eps", "max-grad-norm", "eval-limit"} {
		m[name] = fmt.Sprint(c.Value(name))
	}
	for _, name := range []string{"model", "data", "init-adapter", "eval-data", "prompt-template", "shots-data"} {
		if p := c.String(name); p != "" {
			fp, err := eval.FileFingerprint(p)
			if err != nil {
				return nil, fmt.Errorf("--%s: %w", name, err)
			}
			m[name] = fp
		}
	}
	return m, nil
}

func runGRPO(c *cli.Context) error {
	cfg, err := grpoConfig(c)
	if err != nil {
		return err
	}
	if cfg.Settings, err = grpoSettings(c); err != nil {
		return err
	}
	var evalSamples []bench.Sample
	if p := c.String("eval-data"); p != "" {
		if evalSamples, err = bench.Load(c.String("benchmark"), p); err != nil {
			return err
		}
		if k := c.Int("eval-limit"); k > 0 && k < len(evalSamples) {
			evalSamples = evalSamples[:k]
		}
	}
	s, err := setupEval(c, true)
	if err != nil {
		return err
	}
	defer s.Close()
	if len(s.samples) < cfg.QuestionsPerRound {
		return fmt.Errorf("grpo: --questions-per-round %d but only %d questions selected", cfg.QuestionsPerRound, len(s.samples))
	}
	// Every prompt plus --max-new-tokens must fit the model's context: the training graph scores
	// prompt and completion together.
	limit := s.model.Info().ContextLength
	for _, set := range [][]bench.Sample{s.samples, evalSamples} {
		for _, smp := range set {
			p, err := s.opts.Prompter.Prompt(smp)
			if err != nil {
				return err
			}
			toks, err := s.gen.RenderPrompt(p)
			if err != nil {
				return err
			}
			if limit > 0 && len(toks)+c.Int("max-new-tokens") > limit {
				return fmt.Errorf("grpo: question %s: %d prompt tokens + --max-new-tokens %d exceed the model's %d-token context", smp.ID, len(toks), c.Int("max-new-tokens"), limit)
			}
		}
	}
	lora, err := initialLoRA(c)
	if err != nil {
		return err
	}
	device, err := deviceOf(c) // the sampler's model is already there; the policy trains there too
	if err != nil {
		return err
	}
	pol, err := llamaalign.NewLlamaLoRAPolicyOn(c.String("model"), lora, threadsOf(c), device)
	if err != nil {
		return err
	}
	defer pol.Close()
	sayTrainDevice(c.App.ErrWriter, "grpo", pol.Model().TrainDevice())
	order := rand.New(rand.NewPCG(c.Uint64("seed"), 0x6772706f)).Perm(len(s.samples))
	cfg.Sample = func(ctx context.Context, round int, adapterPath, roundDir string) (*online.Rollout, error) {
		qs := make([]bench.Sample, cfg.QuestionsPerRound)
		for i := range qs {
			qs[i] = s.samples[order[((round-1)*cfg.QuestionsPerRound+i)%len(order)]]
		}
		opts := s.opts
		opts.Gen.Seed = c.Uint64("seed") + uint64(round)
		recs, err := runWithAdapter(ctx, c, s, adapterPath, qs, opts, filepath.Join(roundDir, "samples"), fmt.Sprintf("round %d sampling", round))
		if err != nil {
			return nil, err
		}
		return rolloutOf(s.model, align.PromptTemplate(c.String("template")), recs, cfg.GroupSize)
	}
	if len(evalSamples) > 0 {
		cfg.Eval = func(ctx context.Context, round int, adapterPath, dir string) (float64, error) {
			opts := s.opts
			opts.Gen = eval.GenParams{N: 1, MaxNewTokens: c.Int("max-new-tokens"), Stop: c.StringSlice("stop")}
			recs, err := runWithAdapter(ctx, c, s, adapterPath, evalSamples, opts, dir, fmt.Sprintf("round %d eval", round))
			if err != nil {
				return 0, err
			}
			n := 0
			for _, r := range recs {
				if r.Correct {
					n++
				}
			}
			acc := float64(n) / float64(len(recs))
			fmt.Fprintf(c.App.ErrWriter, "round %d: eval accuracy %.4f (%d/%d)\n", round, acc, n, len(recs))
			return acc, nil
		}
	}
	cfg.OnStep = func(m align.GRPOMetrics) {
		if m.Split == "" {
			fmt.Fprintf(c.App.ErrWriter, "step %d (round %d): loss %.4f reward %.3f reward_std %.3f kl %.4f clip %.3f len %.1f grad_norm %.3f\n",
				m.Step, m.Round, m.Loss, m.Reward, m.RewardStd, m.KL, m.ClipRegionMean, m.MeanLength, m.GradNorm)
		}
	}
	res, err := online.RunGRPO(c.Context, cfg, pol)
	if err != nil {
		return err
	}
	final := filepath.Join(cfg.RunDir, align.AdapterFileName)
	if err := pol.SaveAdapter(cfg.RunDir, map[string]string{"bpo.trainer": "grpo"}); err != nil {
		return err
	}
	fmt.Printf("grpo: %d steps (resumed from %d); adapter %s\n", res.Steps, res.ResumedFrom, final)
	for r := 0; r <= cfg.Rounds; r++ {
		if acc, ok := res.Accuracies[r]; ok {
			fmt.Printf("grpo: round %d accuracy %.4f (%s)\n", r, acc, filepath.Join(online.RoundDir(cfg.RunDir, r), "eval"))
		}
	}
	return nil
}

// runWithAdapter generates and grades qs with the adapter file applied (resumable in dir) and
// returns the records in the order of qs.
func runWithAdapter(ctx context.Context, c *cli.Context, s *evalSetup, adapterPath string, qs []bench.Sample, opts eval.Options, dir, label string) ([]eval.Record, error) {
	a, err := llama.LoadAdapter(s.model, adapterPath)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	if err := s.ctx.SetAdapters(llama.AdapterScale{Adapter: a, Scale: 1}); err != nil {
		return nil, err
	}
	defer s.ctx.SetAdapters()
	fp, err := eval.FileFingerprint(adapterPath)
	if err != nil {
		return nil, err
	}
	opts.Adapters, opts.AdapterIDs = []string{adapterPath}, []string{"scale 1, file " + fp}
	bar := newProgress(len(qs), label)
	last := 0
	opts.OnProgress = func(done, total int) { bar.Add(done - last); last = done }
	_, err = eval.Run(ctx, s.gen, c.String("benchmark"), qs, opts, dir)
	bar.Finish()
	if err != nil {
		return nil, err
	}
	recs, err := eval.ReadRecords(dir)
	if err != nil {
		return nil, err
	}
	rank := map[string]int{}
	for i, q := range qs {
		rank[q.ID] = i
	}
	recs = slices.DeleteFunc(recs, func(r eval.Record) bool { _, ok := rank[r.ID]; return !ok })
	slices.SortStableFunc(recs, func(a, b eval.Record) int { return cmp.Compare(rank[a.ID], rank[b.ID]) })
	if len(recs) != len(qs) {
		return nil, fmt.Errorf("%s: %d of %d questions graded", dir, len(recs), len(qs))
	}
	return recs, nil
}

// rolloutOf tokenizes graded records (group-size completions each) into a rollout: reward 1 for a
// correct completion, else 0; a completion cut at the generation limit has no end token.
func rolloutOf(m *llama.Model, tmpl align.PromptTemplate, recs []eval.Record, g int) (*online.Rollout, error) {
	ro := &online.Rollout{GroupSize: g}
	for _, r := range recs {
		if len(r.Responses) != g {
			return nil, fmt.Errorf("question %s: %d completions, want %d", r.ID, len(r.Responses), g)
		}
		ex := make([]align.SFTExample, g)
		for j, text := range r.Responses {
			ex[j] = align.SFTExample{Line: j + 1, Prompt: r.Prompt.Text, Completion: text}
			for _, msg := range r.Prompt.Messages {
				ex[j].PromptMessages = append(ex[j].PromptMessages, align.Message{Role: msg.Role, Content: msg.Content})
			}
		}
		seqs, _, err := llamaalign.TokenizeSFT(m, ex, tmpl, 0)
		if err != nil {
			return nil, fmt.Errorf("question %s: %w", r.ID, err)
		}
		ro.IDs = append(ro.IDs, r.ID)
		for j, sq := range seqs {
			comp := sq.Completion
			truncated := j < len(r.Stops) && r.Stops[j] == "length"
			if truncated && len(comp) > 1 {
				comp = comp[:len(comp)-1] // no end token: the model did not stop
			}
			reward := 0.0
			if r.Corrects[j] {
				reward = 1
			}
			ro.Seqs = append(ro.Seqs, online.RolloutSeq{Prompt: sq.Prompt, Completion: comp, Reward: reward, Truncated: truncated})
		}
	}
	return ro, nil
}
