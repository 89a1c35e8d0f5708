package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/mathgen"
	"github.com/bpo-dev/bpo/nn"
)

// modelCommand groups the commands that write model files.
func modelCommand() *cli.Command {
	return &cli.Command{
		Name:  "model",
		Usage: "make model files: random-weight models with a real tokenizer, quantized copies",
		Subcommands: []*cli.Command{
			modelRandomCommand(),
			modelQuantizeCommand(),
		},
	}
}

// modelRandomCommand writes a llama-, llama3- or qwen2-shaped model with random weights.
func modelRandomCommand() *cli.Command {
	return &cli.Command{
		Name:  "random",
		Usage: "write a random-weight llama/llama3/qwen2-shaped GGUF model with a real tokenizer",
		Description: "For tests and benchmarks of architectures without small real weights. The tokenizer (all\n" +
			"tokenizer.* metadata) is copied from --vocab-from, e.g. a vocabulary-only file, or --vocab math\n" +
			"uses the demo's math-task tokenizer (package mathgen). Example: a\n" +
			"Qwen2.5-0.5B-shaped Q8_0 model:\n\n" +
			"   bpo model random --arch qwen2 --vocab-from ggml-vocab-qwen2.gguf \\\n" +
			"      --layers 24 --embedding 896 --ff 4864 --heads 14 --heads-kv 2 --tied-output --type q8_0 --out qwen2-0.5b-random.gguf",
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:  "arch",
				Value: "llama",
				Usage: nn.RandomModelArchs(),
			},
			&cli.StringFlag{
				Name:  "vocab-from",
				Usage: "GGUF file whose tokenizer is copied (e.g. ggml-vocab-qwen2.gguf)",
			},
			&cli.StringFlag{
				Name:  "vocab",
				Usage: "built-in tokenizer instead of --vocab-from: \"math\" (the demo's math-task SPM vocabulary, ChatML template)",
			},
			&cli.IntFlag{Name: "layers", Value: 2, Usage: "transformer blocks"},
			&cli.IntFlag{Name: "embedding", Value: 64, Usage: "embedding (hidden) size"},
			&cli.IntFlag{Name: "ff", Value: 128, Usage: "feed-forward hidden size"},
			&cli.IntFlag{Name: "heads", Value: 4, Usage: "attention heads"},
			&cli.IntFlag{Name: "heads-kv", Usage: "key/value heads (0: same as --heads)"},
			&cli.IntFlag{
				Name:  "head-dim",
				Usage: "attention head size, for architectures whose files write key_length (0: embedding/heads)",
			},
			&cli.IntFlag{
				Name:  "sliding-window",
				Usage: "attention window of the sliding-window layers, for architectures that have them (0: the recipe's default)",
			},
			&cli.IntFlag{Name: "context-length", Value: 2048, Usage: "training context length written to the metadata"},
			&cli.StringFlag{Name: "type", Value: "f32", Usage: "weight type: f32, f16, q8_0, q4_0, q4_k, q6_k"},
			&cli.BoolFlag{
				Name:  "tied-output",
				Usage: "no output.weight: the output projection reuses token_embd.weight",
			},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the random weights"},
			&cli.StringFlag{Name: "name", Usage: "general.name (default bpo-random-ARCH)"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "GGUF file to write", Required: true},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("model random: unexpected argument %q (all settings are options)", c.Args().First())
			}
			typ, err := ggml.ParseGGMLType(c.String("type"))
			if err != nil {
				return fmt.Errorf("model random: --type: %w", err)
			}
			spec := nn.RandomModelSpec{
				Arch: c.String("arch"), VocabFrom: c.String("vocab-from"),
				Layers: c.Int("layers"), Embedding: c.Int("embedding"), FeedForward: c.Int("ff"),
				Heads: c.Int("heads"), HeadsKV: c.Int("heads-kv"), ContextLength: c.Int("context-length"),
				HeadDim: c.Int("head-dim"), SlidingWindow: c.Int("sliding-window"),
				Type: typ, TiedOutput: c.Bool("tied-output"), Seed: c.Uint64("seed"), Name: c.String("name"),
			}
			if spec.HeadsKV == 0 {
				spec.HeadsKV = spec.Heads
			}
			switch v := c.String("vocab"); {
			case v != "" && spec.VocabFrom != "":
				return errors.New("model random: give either --vocab-from or --vocab, not both")
			case v == "math":
				spec.Vocab = mathgen.Vocab()
			case v != "":
				return fmt.Errorf("model random: --vocab %q, want \"math\" (or use --vocab-from FILE.gguf)", v)
			case spec.VocabFrom == "":
				return errors.New(
					"model random: give --vocab-from FILE.gguf (a model or vocabulary-only file with a tokenizer) or --vocab math",
				)
			}
			out := c.String("out")
			if err := nn.WriteRandomModel(out, spec); err != nil {
				return fmt.Errorf("model random: %w", err)
			}
			return describeWritten(c, out)
		},
	}
}

// modelQuantizeCommand re-encodes a model with llama.cpp's quantizer.
func modelQuantizeCommand() *cli.Command {
	return &cli.Command{
		Name:      "quantize",
		Usage:     "re-encode a GGUF model as q8_0, q4_0, q4_k, q6_k or f16 with llama.cpp's quantizer",
		ArgsUsage: "IN.gguf OUT.gguf",
		Description: "Example:\n\n" +
			"   bpo model quantize --type q8_0 model-f32.gguf model-q8_0.gguf",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "type", Value: "q8_0", Usage: "target type: f16, q8_0, q4_0, q4_k (Q4_K_M), q6_k"},
			threadsFlag(),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return errors.New("model quantize: give IN.gguf and OUT.gguf (options go before them)")
			}
			in, out := c.Args().Get(0), c.Args().Get(1)
			typ, err := ggml.ParseGGMLType(c.String("type"))
			if err != nil {
				return fmt.Errorf("model quantize: --type: %w", err)
			}
			inInfo, err := os.Stat(in)
			if err != nil {
				return fmt.Errorf("model quantize: %w", err)
			}
			if outInfo, err := os.Stat(out); err == nil && os.SameFile(inInfo, outInfo) {
				return fmt.Errorf(
					"model quantize: OUT %s is the input file: give another path (the input would be overwritten)",
					out,
				)
			}
			if err := llama.QuantizeModel(in, out, typ, threadsOf(c)); err != nil {
				return fmt.Errorf("model quantize: %w", err)
			}
			return describeWritten(c, out)
		},
	}
}

// describeWritten prints a one-line summary of a model file just written.
func describeWritten(c *cli.Context, path string) error {
	f, err := ggml.ReadGGUF(path)
	if err != nil {
		return fmt.Errorf("reading back %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	var params int64
	for _, t := range f.Tensors {
		params += t.Elements()
	}
	arch := f.Arch()
	layers, _ := f.Uint(arch + ".block_count")
	emb, _ := f.Uint(arch + ".embedding_length")
	fmt.Fprintf(c.App.Writer, "wrote %s: %s, %d layers, embedding %d, %s params, %d tensors, %s\n",
		path, arch, layers, emb, humanCount(float64(params)), len(f.Tensors), humanBytes(float64(st.Size())))
	return nil
}
