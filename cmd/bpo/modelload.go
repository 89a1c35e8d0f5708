package main

// Shared helpers of the commands that load a model (info, tokenize, generate, logprobs, and later eval,
// train, pairs): the --model/--adapter/--threads/--ctx flags and their loading with clear errors.

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"

	"github.com/bpo-dev/bpo/llama"
	"github.com/urfave/cli/v2"
)

// modelFlag is the required --model (-m) flag of commands that read a GGUF model; usage says which
// model it is for this command.
func modelFlag(usage string) *cli.StringFlag {
	return &cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: usage, Required: true}
}

// adapterFlag is the repeatable --adapter FILE[:SCALE] flag.
func adapterFlag() *cli.StringSliceFlag {
	return &cli.StringSliceFlag{
		Name:  "adapter",
		Usage: "LoRA adapter GGUF, as FILE or FILE:SCALE (default scale 1); repeat for several",
	}
}

// threadsFlag is the --threads flag; 0 means half the logical CPUs (see defaultThreads).
func threadsFlag() *cli.IntFlag {
	return &cli.IntFlag{
		Name:    "threads",
		Aliases: []string{"t"},
		Value:   0,
		Usage:   "CPU threads (0: half the logical CPUs, at least 1; ggml threads spin-wait, so never use more than the idle cores)",
		Action:  func(_ *cli.Context, n int) error { return checkThreads(n, runtime.NumCPU()) },
	}
}

// checkThreads refuses a --threads value outside 0..cpus: ggml's worker threads spin-wait, so more
// threads than logical CPUs only slow decoding down (1,000 of them also made Ctrl-C unresponsive).
func checkThreads(n, cpus int) error {
	if n < 0 || n > cpus {
		return fmt.Errorf("--threads %d: want 0 (half the CPUs) to %d, the logical CPUs of this machine", n, cpus)
	}
	return nil
}

// defaultThreads is half the logical CPUs (at least 1), like llama.cpp's default of one thread per
// physical core: ggml's worker threads spin-wait, so a thread count above the idle cores makes
// decoding many times slower on a busy machine.
func defaultThreads() int {
	return max(1, runtime.NumCPU()/2)
}

// threadsOf returns the --threads value, 0 replaced by defaultThreads.
func threadsOf(c *cli.Context) int {
	if t := c.Int("threads"); t > 0 {
		return t
	}
	return defaultThreads()
}

// openModel loads a model file; an empty path or a load failure gives an error naming the file.
func openModel(path string, vocabOnly bool) (*llama.Model, error) {
	if path == "" {
		return nil, errors.New("no model file given (--model FILE.gguf)")
	}
	m, err := llama.LoadModel(path, llama.ModelOptions{VocabOnly: vocabOnly})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// parseAdapterSpec splits FILE[:SCALE]. A suffix after the last ':' that is not a number is part of
// the file name.
func parseAdapterSpec(spec string) (string, float32, error) {
	if spec == "" {
		return "", 0, errors.New("empty --adapter value, want FILE or FILE:SCALE")
	}
	if i := strings.LastIndexByte(spec, ':'); i > 0 {
		if s, err := strconv.ParseFloat(spec[i+1:], 32); err == nil {
			if math.IsNaN(s) || math.IsInf(s, 0) {
				return "", 0, fmt.Errorf("--adapter %s: scale %v, want a finite number", spec, s)
			}
			return spec[:i], float32(s), nil
		}
	}
	return spec, 1, nil
}

// loadAdapters loads every FILE[:SCALE] spec for model (the --adapter values). The adapters are
// freed with the model; on an error the ones already loaded are closed.
func loadAdapters(model *llama.Model, specs []string) ([]llama.AdapterScale, error) {
	var out []llama.AdapterScale
	for _, spec := range specs {
		path, scale, err := parseAdapterSpec(spec)
		if err != nil {
			return nil, err
		}
		a, err := llama.LoadAdapter(model, path)
		if err != nil {
			for _, o := range out {
				o.Adapter.Close()
			}
			return nil, fmt.Errorf("--adapter %s: %w", spec, err)
		}
		out = append(out, llama.AdapterScale{Adapter: a, Scale: scale})
	}
	return out, nil
}

// tokenizePrompt tokenizes model input text: special tokens written as text (e.g. "<|im_start|>") are
// parsed, BOS is added when the model asks for it, and a BOS doubled by a template that already starts
// with it is dropped.
func tokenizePrompt(m *llama.Model, text string) ([]llama.Token, error) {
	toks, err := m.Tokenize(text, true, true)
	if err != nil {
		return nil, err
	}
	if bos := m.BOS(); bos >= 0 && len(toks) >= 2 && toks[0] == bos && toks[1] == bos {
		toks = toks[1:]
	}
	return toks, nil
}
