package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bpo-dev/bpo/eval"
	"github.com/bpo-dev/bpo/eval/bench"
	"github.com/bpo-dev/bpo/eval/benchdata"
	"github.com/bpo-dev/bpo/eval/grader"
	"github.com/bpo-dev/bpo/eval/llamagen"
	"github.com/bpo-dev/bpo/llama"
)

// generationFlags are shared by `bpo eval` and `bpo pairs`.
//
// defaultSplit describes which embedded split is read without --data and --split.
func generationFlags(defaultN int, defaultTemp float64, defaultSplit string) []cli.Flag {
	return []cli.Flag{
		modelFlag("GGUF model"),
		adapterFlag(),
		&cli.StringFlag{
			Name:    "benchmark",
			Aliases: []string{"b"},
			Value:   "gsm8k",
			Usage:   "benchmark: " + strings.Join(bench.Names(), ", "),
		},
		&cli.StringFlag{
			Name:    "data",
			Aliases: []string{"d"},
			Usage:   "benchmark JSONL file (default: the public set embedded in bpo, see `bpo data list`)",
		},
		&cli.StringFlag{
			Name:  "split",
			Usage: "split of the embedded set: test or train (default: " + defaultSplit + ")",
		},
		&cli.StringFlag{
			Name:  "prompt",
			Value: bench.FormatBoxed,
			Usage: "prompt format: " + strings.Join(bench.Formats(), ", "),
		},
		&cli.IntFlag{Name: "shots", Value: 0, Usage: "gsm8k-fewshot: number of shots taken from --shots-data"},
		&cli.StringFlag{
			Name:  "shots-data",
			Usage: "gsm8k-fewshot: JSONL file of the shot examples (default: the embedded GSM8K train set)",
		},
		&cli.StringFlag{Name: "prompt-template", Usage: "template format: Go text/template file"},
		&cli.StringFlag{
			Name:  "template",
			Usage: "chat template for chat prompts: the model's own (default) or a built-in name (chatml, llama3, ...)",
		},
		&cli.StringFlag{
			Name:  "method",
			Value: string(grader.MethodQwen),
			Usage: "grading: qwen (Qwen2.5-Math extraction + equivalence), strict (#### N) or flexible (last number)",
		},
		&cli.IntFlag{Name: "limit", Usage: "evaluate at most this many questions"},
		&cli.StringFlag{Name: "shard", Usage: "i/n: keep questions i, i+n, i+2n, ..."},
		&cli.StringSliceFlag{Name: "id", Usage: "evaluate only these sample ids (repeatable)"},
		&cli.IntFlag{Name: "n", Value: defaultN, Usage: "samples per question (k)"},
		&cli.Float64Flag{Name: "temperature", Value: defaultTemp, Usage: "sampling temperature (0: greedy)"},
		&cli.Float64Flag{Name: "top-p", Value: 1, Usage: "nucleus sampling"},
		&cli.IntFlag{Name: "top-k", Usage: "top-k sampling (0: off)"},
		&cli.Uint64Flag{Name: "seed", Value: 0, Usage: "sampling seed"},
		&cli.IntFlag{Name: "max-new-tokens", Value: 1024, Usage: "max generated tokens per response"},
		&cli.StringSliceFlag{Name: "stop", Usage: "extra stop string (repeatable)"},
		&cli.IntFlag{Name: "parallel", Value: 8, Usage: "sequences decoded in parallel"},
		&cli.IntFlag{
			Name:  "ctx",
			Usage: "KV-cache cells shared by the parallel sequences (default: parallel x (longest prompt + max new tokens))",
		},
		threadsFlag(),
		deviceFlag(),
		backendDirFlag(),
	}
}

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:      "eval",
		Usage:     "generate answers to a math benchmark with a GGUF model (and adapters) and grade them",
		UsageText: "bpo eval --model M.gguf [--adapter A.gguf] --benchmark math500 [--data test.jsonl] --out RUN_DIR [options]",
		Description: `Writes RUN_DIR/samples.jsonl (prompt, responses, extracted answers, gold, correct, tokens per
question), RUN_DIR/summary.json and RUN_DIR/summary.md (accuracy with a 95% Wilson interval, per
subject/level, maj@k and pass@k for --n > 1, tokens/s). Re-running resumes: finished questions are kept.
Greedy decoding (the default) gives the same answers whatever --parallel is. Without --data the
benchmark's test split built into bpo is evaluated (bpo data list shows the sets).`,
		Flags: append(
			generationFlags(1, 0, "test"),
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Usage: "run directory"},
		),
		Action: runEval,
	}
}

// evalSetup is a loaded model, context, generator and the selected samples.
type evalSetup struct {
	model    *llama.Model
	ctx      *llama.Context
	adapters []*llama.Adapter
	gen      *llamagen.Generator
	samples  []bench.Sample
	opts     eval.Options
}

func (s *evalSetup) Close() {
	for _, a := range s.adapters {
		a.Close()
	}
	if s.ctx != nil {
		s.ctx.Close()
	}
	if s.model != nil {
		s.model.Close()
	}
}

// loadBenchmark reads the questions of --benchmark: from --data, else from the embedded set's
// --split (default: test, or for preferTrain the train split where the benchmark has one).
func loadBenchmark(c *cli.Context, preferTrain bool) ([]bench.Sample, error) {
	name, data, split := c.String("benchmark"), c.String("data"), c.String("split")
	if data != "" {
		if split != "" {
			return nil, fmt.Errorf("--split %s picks an embedded set; it does not apply to --data %s", split, data)
		}
		return bench.Load(name, data)
	}
	if split == "" {
		split = "test"
		if preferTrain && benchdata.Has(name, "train") {
			split = "train"
		}
	}
	samples, err := bench.LoadEmbedded(name, split)
	if err != nil {
		return nil, fmt.Errorf("%w (or pass --data FILE)", err)
	}
	fmt.Fprintf(c.App.ErrWriter, "%s/%s: %d questions (embedded)\n", name, split, len(samples))
	return samples, nil
}

// setupEval loads the model and the selected questions; preferTrain as in loadBenchmark.
func setupEval(c *cli.Context, preferTrain bool) (*evalSetup, error) {
	genParams := eval.GenParams{
		N:            c.Int("n"),
		MaxNewTokens: c.Int("max-new-tokens"),
		Temperature:  c.Float64("temperature"),
		TopP:         c.Float64("top-p"),
		TopK:         c.Int("top-k"),
		Seed:         c.Uint64("seed"),
		Stop:         c.StringSlice("stop"),
	}
	if err := checkGenFlags(genParams, c.Int("parallel")); err != nil {
		return nil, err
	}
	samples, err := loadBenchmark(c, preferTrain)
	if err != nil {
		return nil, err
	}
	sel := bench.Selection{IDs: c.StringSlice("id"), Limit: c.Int("limit")}
	if sh := c.String("shard"); sh != "" {
		if sel.ShardIndex, sel.ShardCount, err = bench.ParseShard(sh); err != nil {
			return nil, fmt.Errorf("--shard: %w", err)
		}
	}
	if samples, err = bench.Select(samples, sel); err != nil {
		return nil, err
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf(
			"--data %s: no questions to evaluate (empty file, or --id/--shard/--limit selected none)",
			c.String("data"),
		)
	}
	var shots []bench.Sample
	if k := c.Int("shots"); k > 0 {
		var all []bench.Sample
		if p := c.String("shots-data"); p != "" {
			all, err = bench.Load(bench.GSM8K, p)
		} else {
			all, err = bench.LoadEmbedded(bench.GSM8K, "train")
		}
		if err != nil {
			return nil, err
		}
		shots = all[:min(k, len(all))]
	}
	prompter, err := bench.NewPrompter(c.String("prompt"), shots, c.String("prompt-template"))
	if err != nil {
		return nil, err
	}
	s := &evalSetup{samples: samples}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if s.model, err = openModelOn(c, c.String("model")); err != nil {
		return nil, err
	}
	parallel := max(1, c.Int("parallel"))
	maxNew := c.Int("max-new-tokens")
	gen := &llamagen.Generator{
		Model:               s.model,
		Template:            c.String("template"),
		Parallel:            parallel,
		DefaultMaxNewTokens: maxNew,
	}
	// Every prompt must leave room for an answer within the model's context: checked for the whole
	// selection before the KV cache is sized (a huge question used to allocate gigabytes first).
	limit := s.model.Info().ContextLength
	longest := 0
	var tooLong []string
	for _, smp := range samples {
		p, err := prompter.Prompt(smp)
		if err != nil {
			return nil, err
		}
		toks, err := gen.RenderPrompt(p)
		if err != nil {
			return nil, err
		}
		if limit > 0 && len(toks) >= limit {
			tooLong = append(tooLong, fmt.Sprintf("%s (%d tokens)", smp.ID, len(toks)))
			continue
		}
		longest = max(longest, len(toks))
	}
	if len(tooLong) > 0 {
		return nil, fmt.Errorf(
			"--data %s: %d question(s) do not fit the model's %d-token context: %s",
			c.String("data"),
			len(tooLong),
			limit,
			strings.Join(tooLong[:min(len(tooLong), 10)], ", "),
		)
	}
	nctx := c.Int("ctx")
	if nctx <= 0 {
		perSeq := longest + maxNew
		if limit > 0 {
			perSeq = min(perSeq, limit)
		}
		nctx = parallel * perSeq
	}
	if s.ctx, err = llama.NewContext(s.model, llama.ContextOptions{NCtx: nctx, NSeq: parallel, Threads: threadsOf(c), KVF16: true}); err != nil {
		return nil, err
	}
	gen.Ctx = s.ctx
	names := c.StringSlice("adapter")
	scales, err := loadAdapters(s.model, names)
	if err != nil {
		return nil, err
	}
	var adapterIDs []string
	for i, a := range scales {
		s.adapters = append(s.adapters, a.Adapter)
		path, _, _ := parseAdapterSpec(names[i]) // loadAdapters accepted it
		fp, err := eval.FileFingerprint(path)
		if err != nil {
			return nil, err
		}
		adapterIDs = append(adapterIDs, fmt.Sprintf("scale %g, file %s", a.Scale, fp))
	}
	modelID, err := eval.FileFingerprint(c.String("model"))
	if err != nil {
		return nil, err
	}
	promptID, err := promptFingerprint(c)
	if err != nil {
		return nil, err
	}
	if err := s.ctx.SetAdapters(scales...); err != nil {
		return nil, err
	}
	s.gen = gen
	s.opts = eval.Options{Prompter: prompter, PromptName: c.String("prompt"), Method: grader.Method(c.String("method")),
		Gen:   genParams,
		Model: c.String("model"), Adapters: names, BatchSize: 4 * parallel * max(1, worldOf(c).Size()),
		ModelID: modelID, AdapterIDs: adapterIDs, PromptID: promptID, ChatTemplate: c.String("template")}
	ok = true
	return s, nil
}

func runEval(c *cli.Context) error {
	s, err := setupEval(c, false)
	if err != nil {
		return err
	}
	defer s.Close()
	return shardedGeneration(c, s.gen, func(gen eval.Generator) error {
		bar := newProgress(len(s.samples), "eval "+c.String("benchmark"))
		last := 0
		s.opts.OnProgress = func(done, total int) { bar.Add(done - last); last = done }
		sum, err := eval.Run(c.Context, gen, c.String("benchmark"), s.samples, s.opts, c.String("out"))
		bar.Finish()
		if err != nil {
			if sum != nil {
				fmt.Fprintf(os.Stderr, "eval: stopped after %d questions; run the same command to resume\n", sum.N)
			}
			return err
		}
		if err := sum.WriteMarkdown(os.Stdout); err != nil {
			return err
		}
		fmt.Printf("accuracy: %.4f (%d/%d)\n", sum.Accuracy, sum.Correct, sum.N)
		return nil
	})
}

// promptFingerprint identifies the files the prompts are made from (a --prompt-template file, the
// --shots examples), "" when there are none.
func promptFingerprint(c *cli.Context) (string, error) {
	var parts []string
	if p := c.String("prompt-template"); p != "" {
		fp, err := eval.FileFingerprint(p)
		if err != nil {
			return "", fmt.Errorf("--prompt-template: %w", err)
		}
		parts = append(parts, "template "+fp)
	}
	if k := c.Int("shots"); k > 0 && c.String("shots-data") != "" {
		fp, err := eval.FileFingerprint(c.String("shots-data"))
		if err != nil {
			return "", fmt.Errorf("--shots-data: %w", err)
		}
		parts = append(parts, fmt.Sprintf("%d shots from %s", k, fp))
	}
	return strings.Join(parts, ", "), nil
}

// checkGenFlags checks the generation settings of eval and pairs before any work starts.
func checkGenFlags(g eval.GenParams, parallel int) error {
	switch {
	case g.N < 1:
		return fmt.Errorf("--n %d: want at least 1 sample per question", g.N)
	case g.MaxNewTokens < 1:
		return fmt.Errorf("--max-new-tokens %d: want at least 1 (0 would generate nothing)", g.MaxNewTokens)
	case parallel < 1:
		return fmt.Errorf("--parallel %d: want at least 1", parallel)
	}
	s := llama.Sampling{Temperature: g.Temperature, TopK: g.TopK, TopP: g.TopP, MinP: g.MinP}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("sampling flags (--temperature, --top-p, --top-k): %w", err)
	}
	return nil
}
