package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/align/llamaalign"
	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/lora"
	"github.com/bpo-dev/bpo/nn"
	"github.com/bpo-dev/bpo/peft"
)

// Flags shared by `bpo sft` and `bpo train`: model, data, run directory, LoRA and optimizer.
func trainingFlags(defaultLR float64, defaultBatch int) []cli.Flag {
	return []cli.Flag{
		modelFlag("base GGUF model"),
		&cli.StringFlag{Name: "data", Aliases: []string{"d"}, Required: true, Usage: "training JSONL file"},
		&cli.StringFlag{
			Name:     "out",
			Aliases:  []string{"o"},
			Required: true,
			Usage:    "run directory (metrics.jsonl, checkpoints, the final adapter); an existing run there is resumed",
		},
		&cli.IntFlag{Name: "lora-rank", Value: 16, Usage: "LoRA rank r"},
		&cli.Float64Flag{Name: "lora-alpha", Value: 16, Usage: "LoRA alpha (update scale alpha/r)"},
		&cli.StringFlag{
			Name:  "lora-targets",
			Value: strings.Join(lora.Targets(), ","),
			Usage: "comma-separated projections to adapt",
		},
		&cli.StringFlag{
			Name:  "init-adapter",
			Usage: "continue training from this LoRA adapter, a GGUF file or a HuggingFace PEFT folder (its rank and targets are used)",
		},
		&cli.Float64Flag{Name: "lr", Value: defaultLR, Usage: "peak learning rate"},
		&cli.StringFlag{
			Name:  "scheduler",
			Value: "constant",
			Usage: "learning-rate schedule: constant, linear or cosine (all with linear warmup)",
		},
		&cli.Float64Flag{Name: "warmup-ratio", Value: 0.03, Usage: "share of the steps used for warmup"},
		&cli.Float64Flag{Name: "weight-decay", Value: 0, Usage: "AdamW decoupled weight decay"},
		&cli.Float64Flag{Name: "adam-beta1", Value: 0.9, Usage: "AdamW beta1"},
		&cli.Float64Flag{Name: "adam-beta2", Value: 0.999, Usage: "AdamW beta2"},
		&cli.Float64Flag{Name: "adam-eps", Value: 1e-8, Usage: "AdamW epsilon"},
		&cli.Float64Flag{Name: "max-grad-norm", Value: 1, Usage: "global gradient-norm clipping (0: off)"},
		&cli.IntFlag{Name: "batch-size", Value: defaultBatch, Usage: "examples per optimizer step (effective batch)"},
		&cli.IntFlag{Name: "epochs", Value: 1, Usage: "passes over the data"},
		&cli.IntFlag{Name: "max-steps", Usage: "stop after this many optimizer steps (0: epochs decide)"},
		&cli.Uint64Flag{Name: "seed", Value: 42, Usage: "seed for LoRA init and data order"},
		&cli.IntFlag{Name: "save-every", Usage: "checkpoint every N steps (0: at the end and on Ctrl-C)"},
		&cli.Float64Flag{
			Name:  "save-minutes",
			Value: 10,
			Usage: "also checkpoint when this many minutes passed since the last checkpoint, so a kill loses minutes, not the run (0: off)",
		},
		&cli.IntFlag{Name: "max-length", Value: 2048, Usage: "max tokens of prompt + completion"},
		&cli.StringFlag{
			Name:  "template",
			Usage: "chat template for conversational prompts: the model's own (default) or a built-in name (chatml, llama3, ...)",
		},
		threadsFlag(),
		trainDeviceFlag(),
		backendDirFlag(),
		&cli.StringFlag{
			Name:  "checkpointing",
			Value: "auto",
			Usage: "LoRA training: recompute each block's activations in the backward pass instead of keeping them " +
				"(on: memory linear in sequence length, about one more forward pass of time; auto: on when keeping them would take more than a quarter of the available memory; off)",
		},
	}
}

// checkpointing reads --checkpointing.
func checkpointing(c *cli.Context) (nn.Checkpointing, error) {
	ck, err := nn.ParseCheckpointing(c.String("checkpointing"))
	if err != nil {
		return 0, fmt.Errorf("--checkpointing: %w", err)
	}
	return ck, nil
}

func adamConfig(c *cli.Context) align.AdamWConfig {
	return align.AdamWConfig{
		Beta1:       c.Float64("adam-beta1"),
		Beta2:       c.Float64("adam-beta2"),
		Eps:         c.Float64("adam-eps"),
		WeightDecay: c.Float64("weight-decay"),
	}
}

// initialLoRA builds the starting adapter: NewLoRA's seeded init, or the tensors of --init-adapter.
func initialLoRA(c *cli.Context) (*align.LoRA, error) {
	model := c.String("model")
	if path := c.String("init-adapter"); path != "" {
		if !peft.IsFolder(path) {
			return llamaalign.LoRAFromAdapterFile(path)
		}
		base, err := ggml.ReadGGUF(model)
		if err != nil {
			return nil, err
		}
		ad, err := peft.Import(path, base)
		if err != nil {
			return nil, fmt.Errorf("--init-adapter: %w", err)
		}
		return llamaalign.LoRAFromAdapter(ad)
	}
	base, err := llamaalign.BaseTensors(model)
	if err != nil {
		return nil, err
	}
	var targets []string
	for _, t := range strings.Split(c.String("lora-targets"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			targets = append(targets, t)
		}
	}
	l, err := align.NewLoRA(
		align.LoRAConfig{
			Rank:    c.Int("lora-rank"),
			Alpha:   c.Float64("lora-alpha"),
			Targets: targets,
			Seed:    c.Uint64("seed"),
		},
		base,
	)
	if err != nil {
		return nil, fmt.Errorf("--lora-*: %w", err)
	}
	return l, nil
}

// saveInterval is --save-minutes as a duration; negative or non-finite values are an error.
func saveInterval(c *cli.Context) (time.Duration, error) {
	m := c.Float64("save-minutes")
	if !(m >= 0) || m > 1e6 {
		return 0, fmt.Errorf("--save-minutes %v: want a number of minutes >= 0", m)
	}
	return time.Duration(m * float64(time.Minute)), nil
}

// trainSettings are the hyper-parameter flags of `bpo train` as a TrainConfig (for CheckSettings).
func trainSettings(c *cli.Context) (align.TrainConfig, error) {
	interval, err := saveInterval(c)
	return align.TrainConfig{Optimizer: adamConfig(c), LR: c.Float64("lr"), Scheduler: c.String("scheduler"),
		WarmupRatio: c.Float64("warmup-ratio"), MaxGradNorm: c.Float64("max-grad-norm"), BatchSize: c.Int("batch-size"),
		MicroBatch: c.Int("micro-batch"), Epochs: c.Int("epochs"), MaxSteps: c.Int("max-steps"),
		SaveEvery: c.Int(
			"save-every",
		), SaveInterval: interval, KeepCheckpoints: c.Int("keep-checkpoints"), EvalEvery: c.Int("eval-every")}, err
}

// capToContext caps a --max-length (0: none) at the model's training context: longer sequences
// cannot be scored, and used to abort training at the step that met them.
func capToContext(m *llama.Model, maxLength int) int {
	// From the file: a vocabulary-only load (sft tokenizes with one) has no hyper-parameters.
	ctxLen, _ := m.File().Uint(m.Info().Arch + ".context_length")
	n := int(min(ctxLen, 1<<30))
	if n > 0 && (maxLength <= 0 || maxLength > n) {
		fmt.Fprintf(os.Stderr, "note: --max-length %d capped to the model's context length %d\n", maxLength, n)
		return n
	}
	return maxLength
}

// truncationOf reads --max-length, --max-prompt-length and --truncation-mode, which bpo train and
// bpo filter share; keep_end never cuts the prompt's first token (BOS).
func truncationOf(c *cli.Context) align.Truncation {
	return align.Truncation{MaxLength: c.Int("max-length"), MaxPromptLength: c.Int("max-prompt-length"),
		Mode: c.String("truncation-mode"), KeepLeading: 1}
}
