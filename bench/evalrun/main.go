// Command evalrun measures `bpo eval` throughput (generated tokens/s through eval.Run and the llama.cpp
// generator) with 1 and with 8 sequences decoded in parallel, on the benchmark model of bench/bridge.
// It writes bench/results/eval.json.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/bpo-dev/bpo/bench"
	"github.com/bpo-dev/bpo/bench/benchmodel"
	"github.com/bpo-dev/bpo/eval"
	evbench "github.com/bpo-dev/bpo/eval/bench"
	"github.com/bpo-dev/bpo/eval/llamagen"
	"github.com/bpo-dev/bpo/llama"
)

func main() {
	model := flag.String(
		"model",
		"",
		"GGUF model (default: the benchmarks' shared Qwen2.5-0.5B-shaped model, generated into -cache)",
	)
	cache := flag.String("cache", "bench/.cache", "directory of the generated benchmark model")
	vocab := flag.String(
		"vocab",
		"",
		"tokenizer of the generated benchmark model (default: the repository's testdata/"+benchmodel.DefaultVocab+")",
	)
	data := flag.String("data", "", "MATH-500 JSONL (default: the set embedded in the binary)")
	questions := flag.Int("questions", 8, "questions per run")
	maxNew := flag.Int("max-new-tokens", 48, "tokens generated per answer")
	threads := flag.Int("threads", 1, "CPU threads")
	reps := flag.Int("reps", 2, "runs per setting")
	out := flag.String("out", "bench/results", "result directory")
	command := flag.String("command", "make bench", "command recorded in the result")
	flag.Parse()
	path, err := benchmodel.Default(*model, *cache, *vocab)
	if err != nil {
		fmt.Fprintln(os.Stderr, "evalrun:", err)
		os.Exit(1)
	}
	*model = path
	if err := run(*model, *data, *questions, *maxNew, *threads, *reps, *out, *command); err != nil {
		fmt.Fprintln(os.Stderr, "evalrun:", err)
		os.Exit(1)
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func run(modelPath, data string, questions, maxNew, threads, reps int, outDir, command string) error {
	var samples []evbench.Sample
	var err error
	if data == "" {
		samples, err = evbench.LoadEmbedded(evbench.MATH500, "test")
	} else {
		samples, err = evbench.Load(evbench.MATH500, data)
	}
	if err != nil {
		return err
	}
	samples = samples[:min(questions, len(samples))]
	m, err := llama.LoadModel(modelPath, llama.ModelOptions{})
	if err != nil {
		return err
	}
	defer m.Close()
	res := bench.Start("eval", "bpo eval throughput: generated tokens/s with 1 and 8 parallel sequences", command)
	res.Config["model"] = filepath.Base(modelPath)
	res.Config["work"] = fmt.Sprintf(
		"%d MATH-500 questions, boxed chat prompt, greedy, %d new tokens each (eval.Run + llamagen.Generator)",
		len(samples),
		maxNew,
	)
	res.Config["threads"] = fmt.Sprint(threads)
	for _, parallel := range []int{1, 8} {
		var wall, cpu, loads []float64
		for r := 0; r < reps; r++ {
			ctx, err := llama.NewContext(
				m,
				llama.ContextOptions{NCtx: 8 * (256 + maxNew), NSeq: 8, Threads: threads, KVF16: true},
			)
			if err != nil {
				return err
			}
			gen := &llamagen.Generator{Model: m, Ctx: ctx, Parallel: parallel, DefaultMaxNewTokens: maxNew}
			dir, err := os.MkdirTemp("", "bpo-bench-eval-")
			if err != nil {
				return err
			}
			load := bench.LoadAvg()[0]
			t0, c0 := time.Now(), cpuSeconds()
			sum, err := eval.Run(
				context.Background(),
				gen,
				"math500",
				samples,
				eval.Options{Gen: eval.GenParams{MaxNewTokens: maxNew}},
				dir,
			)
			secs, csecs := time.Since(t0).Seconds(), cpuSeconds()-c0
			ctx.Close()
			os.RemoveAll(dir)
			if err != nil {
				return err
			}
			tok := float64(sum.GeneratedTokens)
			wall, cpu, loads = append(wall, tok/secs), append(cpu, tok/csecs), append(loads, load)
			fmt.Fprintf(
				os.Stderr,
				"eval: parallel %d: %.0f tokens in %.1f s (%.2f tok/s, %.2f tok/cpu-s, load %.1f)\n",
				parallel,
				tok,
				secs,
				tok/secs,
				tok/csecs,
				load,
			)
		}
		res.Metrics = append(res.Metrics,
			bench.NewMetric(fmt.Sprintf("eval/parallel-%d", parallel), "tokens/s", true, wall, loads),
			bench.NewMetric(fmt.Sprintf("eval/parallel-%d (cpu time)", parallel), "tokens/cpu-s", true, cpu, loads))
	}
	for _, suffix := range []string{"", " (cpu time)"} {
		q, err := res.NewRatio("eval parallel 8 / 1"+suffix, "eval/parallel-8"+suffix, "eval/parallel-1"+suffix, 0)
		if err != nil {
			return err
		}
		res.Ratios = append(res.Ratios, q)
	}
	path, err := res.Finish(outDir)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "eval: wrote", path)
	return nil
}
