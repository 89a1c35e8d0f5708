package main

// `bpo devices --placement`: where ggml's scheduler puts the nodes of the training step's graph and
// of llama.cpp's inference graph for one model on one device, and why a node stays on the CPU.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/align/llamaalign"
	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/lora"
	"github.com/bpo-dev/bpo/nn"
	"github.com/urfave/cli/v2"
)

// placementText is the short sequence whose graphs are placed: over 32 tokens, the batch from which
// ggml offloads the ops of weights held by the CPU.
const placementText = "Once upon a time, there was a little girl who liked to play. She had a red ball and a big dog. " +
	"One day, the dog ran after the ball into the park."

// graphPlacement is one graph's placement, or why it could not be placed on the device.
type graphPlacement struct {
	Graph     string          `json:"graph"`
	Tokens    int             `json:"tokens"`
	Placement *ggml.Placement `json:"placement,omitempty"`
	Error     string          `json:"error,omitempty"`
}

// placementOutput is the --json output of `bpo devices --placement`.
type placementOutput struct {
	Model  string           `json:"model"`
	Device string           `json:"device"`
	Graphs []graphPlacement `json:"graphs"`
}

func placementFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "placement", Usage: "with --model: print where ggml's scheduler puts each op of the model's graphs on --device, and why an op stays on the CPU"},
		&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "GGUF model file (with --placement)"},
		deviceFlag(),
		&cli.BoolFlag{Name: "kv-f16", Usage: "with --placement: llama.cpp's graph with an F16 KV cache (as bpo eval uses) instead of F32 (logprobs, pairs)"},
		threadsFlag(),
	}
}

// placeGraphs places the LoRA training step (forward and backward) and llama.cpp's inference graph of
// model on the device of --device.
func placeGraphs(c *cli.Context) (placementOutput, error) {
	path := c.String("model")
	if path == "" {
		return placementOutput{}, errors.New("--placement needs --model FILE.gguf")
	}
	if err := llama.CheckModelFile(path); err != nil { // before ggml sees the file
		return placementOutput{}, err
	}
	device, err := deviceOf(c)
	if err != nil {
		return placementOutput{}, err
	}
	// Tokenize with the vocabulary alone, and let the training model go before llama.cpp loads the
	// weights onto the device: one copy of the weights on it at a time.
	vocab, err := llama.LoadModel(path, llama.ModelOptions{VocabOnly: true})
	if err != nil {
		return placementOutput{}, err
	}
	toks, err := vocab.Tokenize(placementText, true, false)
	vocab.Close()
	if err != nil {
		return placementOutput{}, err
	}
	out := placementOutput{Model: path, Device: device}
	threads := threadsOf(c)

	train := graphPlacement{Graph: "training step (LoRA rank 8 on every projection, forward and backward)", Tokens: len(toks)}
	if pl, err := trainPlacement(path, device, toks, threads); err != nil {
		if !errors.Is(err, ggml.ErrDevice) {
			return placementOutput{}, fmt.Errorf("training graph: %w", err)
		}
		train.Error = err.Error() // e.g. an architecture not yet run on a device
	} else {
		train.Placement = &pl
	}
	out.Graphs = append(out.Graphs, train)

	m, err := llama.LoadModel(path, llama.ModelOptions{Device: device})
	if err != nil {
		return placementOutput{}, err
	}
	defer m.Close()
	cache := "F32"
	if c.Bool("kv-f16") {
		cache = "F16"
	}
	pl, err := m.Placement(toks, llama.ContextOptions{Threads: threads, KVF16: c.Bool("kv-f16")})
	if err != nil {
		return placementOutput{}, fmt.Errorf("inference graph: %w", err)
	}
	out.Graphs = append(out.Graphs, graphPlacement{Graph: "llama.cpp inference (" + cache + " KV cache, one batch)", Tokens: len(toks), Placement: &pl})
	return out, nil
}

// trainPlacement places one LoRA step over toks (half prompt, half completion).
func trainPlacement(path, device string, toks []llama.Token, threads int) (ggml.Placement, error) {
	base, err := llamaalign.BaseTensors(path)
	if err != nil {
		return ggml.Placement{}, err
	}
	l, err := align.NewLoRA(align.LoRAConfig{Rank: 8, Alpha: 16, Targets: lora.Targets(), Seed: 1}, base)
	if err != nil {
		return ggml.Placement{}, err
	}
	pairs := make([]lora.Tensor, len(l.Tensors))
	for i, t := range l.Tensors {
		pairs[i] = *t
	}
	tm, err := nn.NewTrainModel(path, nn.TrainOptions{LoRA: pairs, LoRAAlpha: float32(l.Alpha), Threads: threads, Device: device})
	if err != nil {
		return ggml.Placement{}, err
	}
	defer tm.Close()
	seq := nn.TrainSeq{Tokens: make([]int32, len(toks)), PromptLen: len(toks) / 2}
	for i, t := range toks {
		seq.Tokens[i] = int32(t)
	}
	return tm.StepPlacement([]nn.TrainSeq{seq}, true)
}

// printPlacement writes one table per graph: op, backend, nodes and, for nodes on the CPU while a
// device is scheduled, why.
func printPlacement(w io.Writer, out placementOutput) error {
	for i, g := range out.Graphs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if g.Placement == nil {
			fmt.Fprintf(w, "%s on %s: not placed: %s\n", g.Graph, out.Device, g.Error)
			continue
		}
		p := g.Placement
		fmt.Fprintf(w, "%s, %d tokens: %d nodes, %d on the CPU", g.Graph, g.Tokens, p.Nodes(""), p.Nodes("CPU"))
		if p.Device != "CPU" {
			fmt.Fprintf(w, ", %d on %s", p.Nodes(p.Device), p.Device)
		}
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "OP\tBACKEND\tNODES\tWHY ON THE CPU")
		for _, r := range p.Rows {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", strings.ToLower(r.Op), r.Backend, r.Nodes, r.Reason)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// placementAction is `bpo devices --placement`.
func placementAction(c *cli.Context) error {
	out, err := placeGraphs(c)
	if err != nil {
		return fmt.Errorf("devices --placement: %w", err)
	}
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(out)
	}
	return printPlacement(c.App.Writer, out)
}
