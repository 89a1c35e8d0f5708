// Command sampling measures generation with sampling (temperature 1, top-p 0.95) against greedy
// decoding on the benchmark model of bench/bridge (qwen2 vocabulary, 151,936 tokens): the sampler's
// cost is the difference, and the goal is sampled throughput >= 90% of greedy (sampling overhead
// <= 10% of decode time). It writes bench/results/sampling.json.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/bpo-dev/bpo/bench"
	"github.com/bpo-dev/bpo/bench/benchmodel"
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
		"tokenizer of the generated benchmark model (default: the repository's qwen2 tokenizer fixture)",
	)
	newTokens := flag.Int("new-tokens", 48, "tokens generated per run")
	threads := flag.Int("threads", 1, "CPU threads")
	reps := flag.Int("reps", 3, "runs per setting (alternating greedy and sampled)")
	out := flag.String("out", "bench/results", "result directory")
	command := flag.String("command", "make bench", "command recorded in the result")
	flag.Parse()
	path, err := benchmodel.Default(*model, *cache, *vocab)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sampling:", err)
		os.Exit(1)
	}
	*model = path
	if err := run(*model, *newTokens, *threads, *reps, *out, *command); err != nil {
		fmt.Fprintln(os.Stderr, "sampling:", err)
		os.Exit(1)
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func run(modelPath string, newTokens, threads, reps int, outDir, command string) error {
	m, err := llama.LoadModel(modelPath, llama.ModelOptions{})
	if err != nil {
		return err
	}
	defer m.Close()
	ctx, err := llama.NewContext(m, llama.ContextOptions{NCtx: 256, NSeq: 1, Threads: threads})
	if err != nil {
		return err
	}
	defer ctx.Close()
	prompt := benchmodel.RandomTokens(rand.New(rand.NewPCG(7, 7)), 8)
	settings := []struct {
		name     string
		sampling llama.Sampling
	}{
		{"greedy", llama.Sampling{}},
		{"sampled", llama.Sampling{Temperature: 1, TopP: 0.95, Seed: 1}},
	}
	res := bench.Start(
		"sampling",
		"generation with sampling (temperature 1, top-p 0.95) vs greedy, qwen2 vocabulary",
		command,
	)
	res.Config["model"] = filepath.Base(modelPath)
	res.Config["vocabulary"] = fmt.Sprint(m.Info().VocabSize)
	res.Config["work"] = fmt.Sprintf(
		"1 sequence, prompt %d tokens, %d new tokens (no stop), runs alternate greedy and sampled",
		len(prompt),
		newTokens,
	)
	res.Config["threads"] = fmt.Sprint(threads)
	wall := map[string][]float64{}
	cpu := map[string][]float64{}
	loads := map[string][]float64{}
	for r := 0; r < reps; r++ {
		for _, s := range settings {
			load := bench.LoadAvg()[0]
			t0, c0 := time.Now(), cpuSeconds()
			gens, err := ctx.Generate(
				context.Background(),
				[]llama.GenRequest{{Prompt: prompt, MaxTokens: newTokens, Sampling: s.sampling}},
				llama.GenerateOptions{},
			)
			secs, csecs := time.Since(t0).Seconds(), cpuSeconds()-c0
			if err != nil {
				return err
			}
			tok := float64(len(gens[0].Tokens))
			wall[s.name] = append(wall[s.name], tok/secs)
			cpu[s.name] = append(cpu[s.name], tok/csecs)
			loads[s.name] = append(loads[s.name], load)
			fmt.Fprintf(
				os.Stderr,
				"sampling: %s: %.0f tokens in %.2f s (%.2f tok/s, %.2f tok/cpu-s, load %.1f)\n",
				s.name,
				tok,
				secs,
				tok/secs,
				tok/csecs,
				load,
			)
		}
	}
	for _, s := range settings {
		res.Metrics = append(res.Metrics,
			bench.NewMetric("gen/"+s.name, "tokens/s", true, wall[s.name], loads[s.name]),
			bench.NewMetric("gen/"+s.name+" (cpu time)", "tokens/cpu-s", true, cpu[s.name], loads[s.name]))
	}
	for _, suffix := range []string{"", " (cpu time)"} {
		q, err := res.NewRatio("sampled / greedy"+suffix, "gen/sampled"+suffix, "gen/greedy"+suffix, 0.9)
		if err != nil {
			return err
		}
		res.Ratios = append(res.Ratios, q)
	}
	res.Notes = append(
		res.Notes,
		"goal 0.9: sampling (bucketed top-p, no full sort of the 151,936 logits) costs at most ~10% of decode time",
	)
	path, err := res.Finish(outDir)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "sampling: wrote", path)
	return nil
}
