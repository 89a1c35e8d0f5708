// Command train benchmarks the training engine (package llama's differentiable graph through
// package align's LoRA policy) on the Qwen2.5-0.5B-shaped random Q8_0 model of bench/bridge:
//
//   - engine: one 256-token sequence (prompt 64 + completion 192), LoRA rank 16 on all seven
//     projections: forward only (LogProbs) against forward + backward (LogProbsAndGradient), tokens/s,
//     CPU time, peak RSS (VmHWM), PeakComputeBytes; the first step's warm-up apart; the same work by
//     PyTorch (torchpeer.py, F32 and bf16 autocast) alternating with ours; and one step with 1 and
//     with 2 threads while a competing CPU-bound process runs;
//   - llama: the training graph's forward against llama.cpp's forward of the same tokens (same threads);
//   - trainer: align.Trainer steps of preference pairs (reference log-probs through llama.cpp), pairs/s
//     and where a step's time goes;
//   - memory: peak RSS of one step on a pair of 256, 512, 1,024 and 2,048 tokens per sequence, with
//     checkpointing on and off, each in a fresh process (2 threads);
//   - memory8b: the same for a Llama-3.1-8B-shaped Q4_K model and 1,024 tokens (generated once, 4.6 GB).
//
// Every sample records the 1-minute load average. Results go to -out/train.json (see package bench).
//
//	train [-threads 1] [-reps 3] [-steps 2] [-only engine,llama,trainer,memory,memory8b] [-cpuprofile FILE]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/bpo-dev/bpo/bench"
	"github.com/bpo-dev/bpo/bench/benchmodel"
	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
)

// llama8BVocab is the fixture whose tokenizer (Llama-3 BPE) the 8B-shaped model uses.
const llama8BVocab = "models/ggml-vocab-llama-bpe.gguf"

// options are the command-line settings.
type options struct {
	vocab, cache, out, command, only, cpuprofile string
	weights, probe, probeModel                   string
	threads, reps, prompt, complete              int
	batch, steps, pairPrompt, pairComplete       int
	loss                                         string
	seed                                         uint64
}

func main() {
	var o options
	flag.StringVar(
		&o.vocab,
		"vocab",
		"",
		"vocabulary-only GGUF with the qwen2 tokenizer (default: the repository's testdata/"+benchmodel.DefaultVocab+")",
	)
	flag.StringVar(
		&o.cache,
		"cache",
		"bench/.cache",
		"directory of the generated model (shared with bench/bridge) and temporary run directories",
	)
	flag.StringVar(&o.out, "out", "bench/results", "directory for train.json")
	flag.StringVar(&o.command, "command", "make bench", "command recorded in the result")
	flag.StringVar(&o.only, "only", "", "comma-separated jobs to run: engine, llama, trainer (default all)")
	flag.StringVar(
		&o.cpuprofile,
		"cpuprofile",
		"",
		"write a CPU profile of the run to this file (ggml time shows as cgo)",
	)
	flag.StringVar(
		&o.weights,
		"weights",
		"q8_0",
		"type of the generated model's 2-D weights (q8_0 as bench/bridge; f16 and bf16 run in their own type)",
	)
	flag.IntVar(
		&o.threads,
		"threads",
		1,
		"CPU threads of every job (keep at most the number of idle cores: ggml threads spin-wait)",
	)
	flag.IntVar(&o.reps, "reps", 3, "timed runs of each engine and llama.cpp measurement (after one warm-up)")
	flag.IntVar(&o.prompt, "prompt", 64, "engine: prompt tokens of the sequence")
	flag.IntVar(&o.complete, "completion", 192, "engine: completion (scored) tokens of the sequence")
	flag.IntVar(&o.batch, "batch", 4, "trainer: pairs per step")
	flag.IntVar(&o.steps, "steps", 2, "trainer: optimizer steps (the first is reported apart as warm-up)")
	flag.IntVar(&o.pairPrompt, "pair-prompt", 64, "trainer: prompt tokens of each pair")
	flag.IntVar(&o.pairComplete, "pair-completion", 96, "trainer: tokens of each completion")
	flag.StringVar(&o.loss, "loss", "bpo", "trainer: preference loss (align.LossNames)")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the token ids and the LoRA init")
	flag.StringVar(
		&o.probe,
		"probe",
		"",
		"internal (memory jobs): run one step of TOKENS,CHECKPOINTING on -probe-model in this process and print its peak RSS as JSON",
	)
	flag.StringVar(&o.probeModel, "probe-model", "", "internal: the model of -probe")
	spin := flag.Bool("spin", false, "internal: burn one CPU until killed (the competing process of the engine job)")
	flag.Parse()
	if *spin {
		spinForever()
	}
	if o.probe != "" {
		if err := runProbe(o.probeModel, o.probe, o.threads, o.seed); err != nil {
			fmt.Fprintln(os.Stderr, "train -probe:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "train:", err)
		os.Exit(1)
	}
}

// jobs parses -only.
func jobs(only string) (map[string]bool, error) {
	all := []string{"engine", "llama", "trainer", "memory", "memory8b"}
	sel := map[string]bool{}
	if only == "" {
		for _, j := range all {
			sel[j] = true
		}
		return sel, nil
	}
	for _, j := range strings.Split(only, ",") {
		j = strings.TrimSpace(j)
		ok := false
		for _, a := range all {
			ok = ok || a == j
		}
		if !ok {
			return nil, fmt.Errorf("-only: unknown job %q (jobs: %s)", j, strings.Join(all, ", "))
		}
		sel[j] = true
	}
	return sel, nil
}

func run(o options) error {
	if o.threads < 1 || o.reps < 1 || o.steps < 1 || o.batch < 1 || o.prompt < 1 || o.complete < 1 ||
		o.pairPrompt < 1 ||
		o.pairComplete < 1 {
		return errors.New("-threads, -reps, -steps, -batch and the token counts must be >= 1")
	}
	sel, err := jobs(o.only)
	if err != nil {
		return err
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	typ, err := ggml.ParseGGMLType(o.weights)
	if err != nil {
		return fmt.Errorf("-weights: %w", err)
	}
	name, title := "train", "Training engine and preference trainer (Qwen2.5-0.5B-shaped random Q8_0, LoRA r16 on all projections)"
	if typ != ggml.TypeQ8_0 {
		name, title = "train-"+strings.ToLower(typ.String()), strings.Replace(title, "Q8_0", typ.String(), 1)
	}
	if len(sel) == 1 && sel["memory8b"] {
		name, title = "train-8b", "One preference step on a Llama-3.1-8B-shaped random Q4_K model: peak memory and time"
	}
	res := bench.Start(name, title, o.command)
	if o.vocab, err = benchmodel.VocabPath(o.vocab); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	model, err := benchmodel.Ensure(o.cache, o.vocab, typ)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	res.Config["model"] = benchmodel.Describe(o.vocab, typ)
	res.Config["threads"] = strconv.Itoa(
		o.threads,
	) + " (every job: training graph, llama.cpp forward, reference scoring)"
	res.Config["runs"] = fmt.Sprintf(
		"%d timed runs per engine / llama.cpp metric after one warm-up, alternating",
		o.reps,
	)
	if sel["engine"] || sel["llama"] {
		ec := engineConfig{
			model:    model,
			weights:  typ,
			threads:  o.threads,
			prompt:   o.prompt,
			complete: o.complete,
			reps:     o.reps,
			seed:     o.seed,
		}
		if err := runEngine(res, ec, sel["engine"], sel["llama"]); err != nil {
			return err
		}
	}
	if sel["trainer"] {
		tc := trainerConfig{model: model, cache: o.cache, threads: o.threads, batch: o.batch, steps: o.steps,
			prompt: o.pairPrompt, complete: o.pairComplete, loss: o.loss, seed: o.seed}
		if err := runTrainer(res, tc); err != nil {
			return err
		}
	}
	if sel["memory"] {
		mc := memoryConfig{
			model:   model,
			name:    "qwen2.5-0.5b-shape " + typ.String(),
			lengths: []int{256, 512, 1024, 2048},
			ckpts:   []string{"on", "off"},
			threads: 2,
			seed:    o.seed,
		}
		if err := runMemory(res, mc); err != nil {
			return err
		}
	}
	if sel["memory8b"] {
		vocab, err := fixture.Path(llama8BVocab)
		if err != nil {
			return err
		}
		spec := benchmodel.Llama8BSpec
		spec.VocabFrom = vocab
		big, err := benchmodel.EnsureSpec(o.cache, spec)
		if err != nil {
			return fmt.Errorf("8B model: %w", err)
		}
		res.Config["memory8b model"] = fmt.Sprintf(
			"llama3 %d layers, embedding %d, ff %d, %d heads, %d KV heads, %s, vocab %s (random weights)",
			spec.Layers,
			spec.Embedding,
			spec.FeedForward,
			spec.Heads,
			spec.HeadsKV,
			spec.Type,
			llama8BVocab,
		)
		mc := memoryConfig{
			model:   big,
			name:    "llama3.1-8b-shape " + spec.Type.String(),
			lengths: []int{1024},
			ckpts:   []string{"on"},
			threads: 2,
			seed:    o.seed,
		}
		if err := runMemory(res, mc); err != nil {
			return err
		}
	}
	path, err := res.Finish(o.out)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "train: wrote %s (%.0f s)\n", path, res.Duration)
	for _, q := range res.Ratios {
		fmt.Fprintf(os.Stderr, "train: %-60.60s %.3f (best vs best %.3f, goal %.3g)\n", q.Name, q.Value, q.Best, q.Goal)
	}
	return nil
}
