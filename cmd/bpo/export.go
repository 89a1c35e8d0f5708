package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/peft"
)

// exportCommand groups the commands that hand a trained adapter to other tools.
func exportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "hand an adapter to other tools: a merged GGUF model, or a HuggingFace PEFT folder",
		Subcommands: []*cli.Command{
			exportMergeCommand(),
			exportPEFTCommand(),
		},
	}
}

func exportMergeCommand() *cli.Command {
	return &cli.Command{
		Name:  "merge",
		Usage: "fold a GGUF LoRA adapter into the model's weights: an ordinary GGUF model for llama.cpp and ollama",
		Description: "Each adapted weight is dequantized, W + scale*(alpha/r)*B*A is added in float32 and the result\n" +
			"re-encoded in the base weight's type, or with --type every 2-D weight in that type. Metadata\n" +
			"(tokenizer, chat template, hyper-parameters) is kept. Example:\n\n" +
			"   bpo export merge --model qwen2.5-math-7b-q8_0.gguf --adapter run/adapter.gguf --out merged.gguf\n" +
			"   ollama create my-model -f Modelfile   # Modelfile: FROM ./merged.gguf",
		Flags: []cli.Flag{
			modelFlag("base GGUF model the adapter was trained on"),
			&cli.StringFlag{
				Name:     "adapter",
				Aliases:  []string{"a"},
				Required: true,
				Usage:    "GGUF LoRA adapter (e.g. RUN/adapter.gguf)",
			},
			&cli.StringFlag{
				Name:  "type",
				Usage: "type of every 2-D weight: f32, f16, bf16, q8_0, q4_0, q4_k, q6_k (default: keep each weight's type)",
			},
			&cli.Float64Flag{Name: "scale", Value: 1, Usage: "adapter scale (1: as trained)"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Usage: "merged GGUF model to write"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("export merge: unexpected argument %q (all settings are options)", c.Args().First())
			}
			opts := llama.MergeOptions{Scale: float32(c.Float64("scale"))}
			if opts.Scale == 0 {
				return errors.New("export merge: --scale 0 merges nothing; copy the model instead")
			}
			if s := c.String("type"); s != "" {
				typ, err := ggml.ParseGGMLType(s)
				if err != nil {
					return fmt.Errorf("export merge: --type: %w", err)
				}
				opts.Type = &typ
			}
			warnOtherBase(c, c.String("model"), c.String("adapter"))
			res, err := llama.MergeAdapter(c.String("model"), c.String("adapter"), c.String("out"), opts)
			if err != nil {
				return fmt.Errorf("export merge: %w", err)
			}
			fmt.Fprintf(
				c.App.Writer,
				"merged %d LoRA pairs (rank %d, alpha %g); %d tensors re-typed\n",
				res.Merged,
				res.Rank,
				res.Alpha,
				res.Retyped,
			)
			return describeWritten(c, c.String("out"))
		},
	}
}

func exportPEFTCommand() *cli.Command {
	return &cli.Command{
		Name:  "peft",
		Usage: "write a GGUF LoRA adapter as a HuggingFace PEFT folder (adapter_config.json + adapter_model.safetensors)",
		Description: "Tensor names and shapes are PEFT's for Llama/Qwen2 causal LMs; llama-architecture Q/K lora_B rows\n" +
			"are put back into HuggingFace's order (llama.cpp's converter permutes them). --model gives the head\n" +
			"counts for that and checks the adapter's shapes. Example:\n\n" +
			"   bpo export peft --model base.gguf --adapter run/adapter.gguf --base-model Qwen/Qwen2.5-Math-7B --out run/peft",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "adapter", Aliases: []string{"a"}, Required: true, Usage: "GGUF LoRA adapter"},
			&cli.StringFlag{
				Name:    "model",
				Aliases: []string{"m"},
				Usage:   "base GGUF model (required for llama-architecture adapters)",
			},
			&cli.StringFlag{
				Name:  "base-model",
				Usage: "base_model_name_or_path for adapter_config.json (default: the adapter's recorded base model)",
			},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Usage: "folder to write"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("export peft: unexpected argument %q (all settings are options)", c.Args().First())
			}
			ad, err := llama.ReadAdapterFile(c.String("adapter"))
			if err != nil {
				return fmt.Errorf("export peft: %w", err)
			}
			opts := peft.ExportOptions{BaseModel: c.String("base-model")}
			if mp := c.String("model"); mp != "" {
				base, err := modelForAdapter(mp, c.String("adapter"))
				if err != nil {
					return fmt.Errorf("export peft: %w", err)
				}
				if opts.Heads, err = peft.HeadsOf(base); err != nil {
					return fmt.Errorf("export peft: %w", err)
				}
			} else if ad.Arch == "llama" {
				return errors.New("export peft: llama-architecture adapters need --model (its head counts order the Q/K rows)")
			}
			if err := peft.Export(ad, c.String("out"), opts); err != nil {
				return fmt.Errorf("export peft: %w", err)
			}
			fmt.Fprintf(
				c.App.Writer,
				"wrote %s: %d LoRA pairs, rank %d, alpha %g\n",
				c.String("out"),
				len(ad.Tensors),
				ad.Tensors[0].Rank,
				ad.Alpha,
			)
			return nil
		},
	}
}

// warnOtherBase warns when the adapter records the fingerprint of another base file than model
// (a quantized copy of the training base is a legitimate reason, so this is no error; shapes and
// architecture are checked by the merge itself).
func warnOtherBase(c *cli.Context, model, adapter string) {
	ai, err := llama.ReadAdapterInfo(adapter)
	if err != nil || ai.BaseFingerprint == "" {
		return
	}
	if fp, err := align.FileFingerprint(model); err == nil && fp != ai.BaseFingerprint {
		fmt.Fprintf(
			c.App.ErrWriter,
			"warning: %s was trained on %s, and %s is another file (fingerprint differs); merging since the shapes fit\n",
			adapter,
			ai.BaseModel,
			model,
		)
	}
}

// modelForAdapter reads the base model and checks the GGUF adapter against it (architecture and shapes).
func modelForAdapter(modelPath, adapterPath string) (*ggml.GGUFFile, error) {
	base, err := ggml.ReadGGUF(modelPath)
	if err != nil {
		return nil, err
	}
	if err := llama.CheckAdapterFits(adapterPath, base); err != nil {
		return nil, err
	}
	return base, nil
}

// importCommand turns adapters made elsewhere into bpo's GGUF adapters.
func importCommand() *cli.Command {
	return &cli.Command{
		Name:  "import",
		Usage: "turn an adapter made elsewhere into a GGUF LoRA adapter",
		Subcommands: []*cli.Command{{
			Name:      "peft",
			Usage:     "convert a HuggingFace PEFT LoRA folder into a GGUF adapter for --model",
			ArgsUsage: "PEFT_DIR",
			Description: "The folder needs adapter_config.json and adapter_model.safetensors; its names must be\n" +
				"Llama/Qwen2 projections (q/k/v/o_proj, gate/up/down_proj). `bpo train --init-adapter PEFT_DIR`\n" +
				"reads such a folder directly. Example:\n\n" +
				"   bpo import peft --model base.gguf --out adapter.gguf ./my-peft-adapter",
			Flags: []cli.Flag{
				modelFlag("base GGUF model the adapter is for"),
				&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Usage: "GGUF adapter to write"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return errors.New("import peft: give exactly one PEFT_DIR (options go before it)")
				}
				base, err := ggml.ReadGGUF(c.String("model"))
				if err != nil {
					return fmt.Errorf("import peft: %w", err)
				}
				ad, err := peft.Import(c.Args().First(), base)
				if err != nil {
					return fmt.Errorf("import peft: %w", err)
				}
				if err := llama.WriteAdapterFile(c.String("out"), ad.Arch, ad.Alpha, ad.Tensors, ad.Meta); err != nil {
					return fmt.Errorf("import peft: %w", err)
				}
				fmt.Fprintf(
					c.App.Writer,
					"wrote %s: %d LoRA pairs, rank %d, alpha %g\n",
					c.String("out"),
					len(ad.Tensors),
					ad.Tensors[0].Rank,
					ad.Alpha,
				)
				return nil
			},
		}},
	}
}
