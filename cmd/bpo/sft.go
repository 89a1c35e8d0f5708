package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/align/llamaalign"
	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/atomicfile"
	"github.com/bpo-dev/bpo/llama"
)

func sftCommand() *cli.Command {
	flags := append(
		trainingFlags(1e-4, 8),
		&cli.BoolFlag{Name: "strict", Usage: "stop at the first malformed data line instead of skipping it"},
		&cli.IntFlag{
			Name:  "micro-batch",
			Usage: "sequences per forward/backward (gradient accumulation); 0: the whole batch (under MPI: batch / ranks)",
		},
		&cli.BoolFlag{
			Name:  "full",
			Usage: "train every weight (small F32/F16 models) instead of a LoRA adapter; writes RUN_DIR/model.gguf",
		},
	)
	return &cli.Command{
		Name:      "sft",
		Usage:     "supervised fine-tuning: minimize the completion tokens' NLL (LoRA, or all weights with --full)",
		UsageText: "bpo sft --model M.gguf --data train.jsonl --out RUN_DIR [--full] [options]",
		Description: `Each JSONL line is {"prompt","completion"}, {"text"}, {"question","answer"} (GSM8K style:
prompt "Question: q\nAnswer:", completion " a") or {"messages":[...]} ending with the assistant's turn.
EOS is appended to every completion. Metrics go to RUN_DIR/metrics.jsonl; the result is
RUN_DIR/adapter.gguf (LoRA) or RUN_DIR/model.gguf (--full). Re-running the same command resumes from
the last checkpoint and reproduces the uninterrupted run's losses; Ctrl-C saves a checkpoint.`,
		Flags:  flags,
		Action: lockedRun(func(c *cli.Context) error { _, err := checkpointing(c); return err }, runSFT),
	}
}

func runSFT(c *cli.Context) error {
	modelPath, runDir := c.String("model"), c.String("out")
	ckpt, err := checkpointing(c)
	if err != nil {
		return err
	}
	if c.Bool("full") {
		for _, f := range []string{"lora-rank", "lora-alpha", "lora-targets"} {
			if c.IsSet(f) {
				return fmt.Errorf(
					"sft: --%s has no effect with --full (every weight is trained, no adapter): drop one of them",
					f,
				)
			}
		}
	}
	device, err := deviceOf(c) // loads the backend library before any work starts
	if err != nil {
		return err
	}
	if c.Bool("full") && device != "cpu" {
		return fmt.Errorf("--device %s: %w: full-parameter training runs on the CPU only (LoRA training runs on %s)", device, ggml.ErrDevice, device)
	}
	examples, skipped, err := align.LoadSFTFile(c.String("data"), align.LoadOptions{Strict: c.Bool("strict")})
	if err != nil {
		return err
	}
	for i, s := range skipped {
		if i == 5 {
			fmt.Fprintf(os.Stderr, "  ... %d more skipped lines\n", len(skipped)-5)
			break
		}
		fmt.Fprintf(os.Stderr, "  skipped %v\n", s)
	}
	if len(skipped) > 0 {
		fmt.Fprintf(os.Stderr, "sft: %d malformed lines skipped (--strict stops at the first)\n", len(skipped))
	}
	m, err := llama.LoadModel(modelPath, llama.ModelOptions{VocabOnly: true})
	if err != nil {
		return err
	}
	seqs, cut, err := llamaalign.TokenizeSFT(
		m,
		examples,
		align.PromptTemplate(c.String("template")),
		capToContext(m, c.Int("max-length")),
	)
	m.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", c.String("data"), err)
	}
	fmt.Fprintf(os.Stderr, "sft: %d examples (%d cut to --max-length %d)\n", len(seqs), cut, c.Int("max-length"))
	full := c.Bool("full")
	var policy *llamaalign.LlamaPolicy
	var save, load func(dir string) error
	if full {
		policy, err = llamaalign.NewLlamaFullPolicy(modelPath, threadsOf(c))
		if err != nil {
			return err
		}
		save = func(dir string) error { return policy.SaveModel(modelPath, filepath.Join(dir, "model.gguf")) }
		load = func(dir string) error { return policy.LoadModelParams(filepath.Join(dir, "model.gguf")) }
	} else {
		lora, err := initialLoRA(c)
		if err != nil {
			return err
		}
		policy, err = llamaalign.NewLlamaLoRAPolicyOn(modelPath, lora, threadsOf(c), device)
		if err != nil {
			return err
		}
		policy.Model().SetCheckpointing(ckpt)
		sayTrainDevice(os.Stderr, "sft", policy.Model().TrainDevice())
		meta := map[string]string{"bpo.base_model": filepath.Base(modelPath), "bpo.trainer": "sft"}
		if fp, err := align.FileFingerprint(modelPath); err == nil {
			meta[llama.KeyAdapterBaseFingerprint] = fp
		}
		save = func(dir string) error { return policy.SaveAdapter(dir, meta) }
		load = policy.LoadAdapter
	}
	defer policy.Close()
	fp, err := align.FileFingerprint(modelPath)
	if err != nil {
		return err
	}
	dataHash, err := align.FileHash(c.String("data"))
	if err != nil {
		return err
	}
	var bar *progress
	interval, err := saveInterval(c)
	if err != nil {
		return err
	}
	cfg := align.SFTConfig{
		RunDir: runDir, Optimizer: adamConfig(c), LR: c.Float64("lr"), Scheduler: c.String("scheduler"),
		WarmupRatio: c.Float64("warmup-ratio"), MaxGradNorm: c.Float64("max-grad-norm"), BatchSize: c.Int("batch-size"),
		Epochs: c.Int(
			"epochs",
		), MaxSteps: c.Int("max-steps"), Seed: c.Uint64("seed"), SaveEvery: c.Int("save-every"), SaveInterval: interval,
		Meta: map[string]string{"model": fp, "data": dataHash, "full": fmt.Sprint(full)},
		Save: save, Load: load,
		MicroBatch: c.Int("micro-batch"), Comm: commOf(c),
		OnStep: func(s align.SFTStep) {
			if !isRank0(c) {
				return
			}
			bar.Describe(fmt.Sprintf("sft loss %.4f", s.Loss))
			bar.Add(1)
		},
	}
	total := (len(seqs) + cfg.BatchSize - 1) / max(cfg.BatchSize, 1) * max(cfg.Epochs, 1)
	if cfg.MaxSteps > 0 && (cfg.Epochs <= 0 || cfg.MaxSteps < total) {
		total = cfg.MaxSteps
	}
	if w := worldOf(c); w.Size() > 1 {
		if cfg.MicroBatch == 0 {
			cfg.MicroBatch = (cfg.BatchSize + w.Size() - 1) / w.Size()
		}
		fmt.Fprintf(os.Stderr, "sft: rank %d of %d (MPI): micro-batches of %d sequences dealt to the ranks\n",
			w.Rank(), w.Size(), cfg.MicroBatch)
		if !isRank0(c) {
			res, err := align.RunSFT(c.Context, cfg, policy, seqs)
			if err == nil {
				fmt.Fprintf(os.Stderr, "sft: rank %d done after %d steps\n", w.Rank(), res.Steps)
			}
			return err
		}
	}
	bar = newProgress(total, "sft")
	res, err := align.RunSFT(c.Context, cfg, policy, seqs)
	bar.Finish()
	if err != nil {
		if errors.Is(err, c.Context.Err()) && res != nil {
			fmt.Fprintf(
				os.Stderr,
				"sft: interrupted; checkpoint saved in %s (run the same command to resume)\n",
				res.Checkpoint,
			)
		}
		return err
	}
	name := "adapter.gguf"
	if full {
		name = "model.gguf"
	}
	if err := copyFileAtomic(filepath.Join(res.Checkpoint, name), filepath.Join(runDir, name)); err != nil {
		return err
	}
	fmt.Printf(
		"sft: %d steps (resumed from %d), last loss %.4f, %s -> %s\n",
		res.Steps,
		res.ResumedFrom,
		res.Last.Loss,
		res.Elapsed.Round(1e9),
		filepath.Join(runDir, name),
	)
	return nil
}

// copyFileAtomic copies src to dst through a temporary file in dst's folder.
func copyFileAtomic(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return atomicfile.Write(dst, data)
}
