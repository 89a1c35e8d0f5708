package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/llama"
)

// infoCommand prints a model's metadata.
func infoCommand() *cli.Command {
	return &cli.Command{
		Name:      "info",
		Usage:     "show a GGUF model's metadata (architecture, sizes, tokenizer, chat template) or a LoRA adapter's (rank, alpha, targets, base model)",
		ArgsUsage: "MODEL.gguf|ADAPTER.gguf",
		Description: "Prints architecture, layers, embedding size, heads, KV heads, vocabulary, context length,\n" +
			"rope settings, file type, parameter count and chat template. Vocabulary-only files (no tensors)\n" +
			"are shown too, without the hyper-parameters. For a LoRA adapter: architecture, rank, alpha,\n" +
			"target projections, layers and the base model it was trained on. Example:\n\n" +
			"   bpo info testdata/models/stories260K.gguf\n" +
			"   bpo info run/adapter.gguf\n" +
			"   bpo info --json model.gguf",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the metadata as one JSON object"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("info: give exactly one MODEL.gguf (options go before it)")
			}
			path := c.Args().First()
			f, err := ggml.ReadGGUF(path)
			if err != nil {
				return fmt.Errorf("info: %w", err)
			}
			if f.String("general.type") == "adapter" {
				ai, err := llama.ReadAdapterInfo(path)
				if err != nil {
					return fmt.Errorf("info: %w", err)
				}
				if c.Bool("json") {
					enc := json.NewEncoder(c.App.Writer)
					enc.SetIndent("", "  ")
					return enc.Encode(ai)
				}
				writeAdapterInfo(c.App.Writer, ai)
				return nil
			}
			m, err := openModel(path, len(f.Tensors) == 0)
			if err != nil {
				return fmt.Errorf("info: %w", err)
			}
			defer m.Close()
			info := m.Info()
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			writeInfo(c.App.Writer, info, len(f.Tensors))
			return nil
		},
	}
}

// writeInfo prints the metadata as aligned "key: value" lines.
func writeInfo(w io.Writer, info llama.ModelInfo, tensors int) {
	row := func(k string, v any) { fmt.Fprintf(w, "%-16s %v\n", k+":", v) }
	row("file", info.Path)
	row("arch", info.Arch)
	if info.Name != "" {
		row("name", info.Name)
	}
	if tensors == 0 {
		row("tensors", "none (vocabulary-only file)")
	} else {
		row("description", info.Description)
		row("layers", info.Layers)
		row("embedding", info.Embedding)
		row("feed forward", info.FeedForward)
		row("heads", info.Heads)
		row("kv heads", info.HeadsKV)
		row("context length", info.ContextLength)
		rope := fmt.Sprintf("freq_base %g", info.RopeFreqBase)
		if info.RopeScaling != "" {
			rope += ", scaling " + info.RopeScaling
		}
		row("rope", rope)
		row("rms norm eps", fmt.Sprintf("%g", float32(info.RmsNormEps))) // stored as float32 in GGUF
		row("file type", info.FileType)
		row("params", fmt.Sprintf("%d (%s)", info.Params, humanCount(float64(info.Params))))
		row("size", fmt.Sprintf("%d bytes (%s)", info.SizeBytes, humanBytes(float64(info.SizeBytes))))
		row("tied output", info.TiedOutput)
		row("tensors", tensors)
	}
	row("vocab size", info.VocabSize)
	row("vocab type", info.VocabType)
	row("bos/eos/eot", fmt.Sprintf("%d / %d / %d", info.BOS, info.EOS, info.EOT))
	row("add bos", info.AddBOS)
	switch t := info.ChatTemplate; {
	case t == "":
		row("chat template", "none")
	case len(t) <= 72 && !strings.Contains(t, "\n"):
		row("chat template", t)
	default:
		first := strings.SplitN(t, "\n", 2)[0]
		if len(first) > 72 {
			first = first[:72]
		}
		row("chat template", fmt.Sprintf("%q... (%d bytes; --json shows all)", first, len(t)))
	}
}

// writeAdapterInfo prints a LoRA adapter's description as aligned "key: value" lines.
func writeAdapterInfo(w io.Writer, ai llama.AdapterInfo) {
	row := func(k string, v any) { fmt.Fprintf(w, "%-16s %v\n", k+":", v) }
	row("file", ai.Path)
	row("type", "LoRA adapter")
	row("arch", ai.Arch)
	if ai.Rank > 0 {
		row("rank", ai.Rank)
	} else {
		row("rank", fmt.Sprintf("varies: %v", ai.Ranks))
	}
	row("alpha", fmt.Sprintf("%g (scale alpha/r = %g)", ai.Alpha, ai.Scale))
	row("targets", strings.Join(ai.Targets, ", "))
	row("layers", layerSpan(ai.Layers))
	row("lora pairs", ai.Pairs)
	row("params", fmt.Sprintf("%d (%s)", ai.Params, humanCount(float64(ai.Params))))
	row("tensor types", strings.Join(ai.Types, ", "))
	base := ai.BaseModel
	if base == "" {
		base = "not recorded"
	}
	row("base model", base)
	if ai.BaseFingerprint != "" {
		row("fingerprint", ai.BaseFingerprint)
	}
	keys := slices.Sorted(maps.Keys(ai.Meta))
	for _, k := range keys {
		row(k, ai.Meta[k])
	}
}

// layerSpan writes sorted layer numbers compactly: "0-31 (32)" or "0, 2, 5 (3)".
func layerSpan(layers []int) string {
	if len(layers) == 0 {
		return "none"
	}
	if layers[len(layers)-1]-layers[0] == len(layers)-1 {
		if len(layers) == 1 {
			return fmt.Sprintf("%d (1)", layers[0])
		}
		return fmt.Sprintf("%d-%d (%d)", layers[0], layers[len(layers)-1], len(layers))
	}
	s := make([]string, len(layers))
	for i, l := range layers {
		s[i] = fmt.Sprint(l)
	}
	return fmt.Sprintf("%s (%d)", strings.Join(s, ", "), len(layers))
}

// humanCount writes 1234567 as "1.23M".
func humanCount(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2fB", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.2fK", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// humanBytes writes a byte count with a binary unit, e.g. "1.13 MiB".
func humanBytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", v)
	}
	return fmt.Sprintf("%.2f %s", v, units[i])
}
