// Command bridge benchmarks the Go bridge to llama.cpp (package llama) against a C program that calls
// llama.cpp directly (bench/cbaseline), doing the same work with the same settings in the same run:
//
//   - score: per-token log-probs of preference pairs (a shared prompt and two completions), batched;
//   - gen1, gen8: greedy generation of 1 and 8 sequences decoded in parallel;
//   - march-*: smaller score and gen1 work run by this binary and by a second build of it made with
//     Go's default cgo flags (-O2 -g) instead of -O3 -march=native;
//   - repack-score: small score work by the C baseline with plain weights (as the bridge loads them)
//     and with llama.cpp's default weight repacking for its CPU GEMM kernels.
//
// The model is a Qwen2.5-0.5B-shaped random Q8_0 model with the real qwen2 tokenizer, generated once
// into -cache. Runs of the two implementations alternate (Go, C, Go, C, ...) so that changes of the
// machine's load hit both alike; each run is a fresh process that loads the model, warms up, and times
// only the work. Results go to -out/bridge.json (see package bench).
//
//	bridge -cbaseline bin/bench-cbaseline [-default-build bin/bench-bridge-default] [-threads 1] [-reps 3]
//	bridge -run WORKFILE     (runner mode: do one work file with the Go bridge, print one JSON line)
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bpo-dev/bpo/bench"
	"github.com/bpo-dev/bpo/bench/benchmodel"
	"github.com/bpo-dev/bpo/llama"
)

// job is one kind of work measured by several implementations.
type job struct {
	name  string
	work  *work
	impls []string // "go", "c", "go-default"
}

func main() {
	run := flag.String(
		"run",
		"",
		"runner mode: do the work of this work file with the Go bridge and print one JSON line",
	)
	cbase := flag.String("cbaseline", "bin/bench-cbaseline", "C baseline binary (go build ./bench/cbaseline)")
	defBuild := flag.String(
		"default-build",
		"",
		"this benchmark built with default cgo flags, for the march comparison (empty: skip)",
	)
	vocab := flag.String(
		"vocab",
		"",
		"vocabulary-only GGUF with the qwen2 tokenizer (default: the repository's testdata/"+benchmodel.DefaultVocab+")",
	)
	cache := flag.String("cache", "bench/.cache", "directory for the generated model and work files")
	out := flag.String("out", "bench/results", "directory for bridge.json")
	threads := flag.Int(
		"threads",
		1,
		"CPU threads of every run (keep at most the number of idle cores: ggml threads spin-wait)",
	)
	reps := flag.Int("reps", 3, "runs per implementation and job")
	marchReps := flag.Int("march-reps", 2, "runs per build for the march comparison")
	only := flag.String(
		"only",
		"",
		"comma-separated job names to run (default all: score,gen1,gen8,march-score,march-gen1,repack-score)",
	)
	pairs := flag.Int("score-pairs", 8, "preference pairs (prompt 64 + 2 x 64 tokens each) of the score job")
	command := flag.String("command", "make bench", "command recorded in the result")
	flag.Parse()
	if *run != "" {
		if err := runGo(*run); err != nil {
			fmt.Fprintln(os.Stderr, "bridge:", err)
			os.Exit(1)
		}
		return
	}
	var err error
	if *vocab, err = benchmodel.VocabPath(*vocab); err != nil {
		fmt.Fprintln(os.Stderr, "bridge:", err)
		os.Exit(1)
	}
	if err := orchestrate(*cbase, *defBuild, *vocab, *cache, *out, *threads, *reps, *marchReps, *pairs, *only, *command); err != nil {
		fmt.Fprintln(os.Stderr, "bridge:", err)
		os.Exit(1)
	}
}

func scoreWork(model string, threads, pairs, prompt, comp int, seed uint64) *work {
	rng := rand.New(rand.NewPCG(seed, 1))
	w := &work{Model: model, Mode: "score", Threads: threads, NBatch: 512}
	for i := 0; i < pairs; i++ {
		w.Requests = append(
			w.Requests,
			workRequest{
				Prompt:      benchmodel.RandomTokens(rng, prompt),
				Completions: [][]llama.Token{benchmodel.RandomTokens(rng, comp), benchmodel.RandomTokens(rng, comp)},
			},
		)
	}
	w.NSeq = 3 * pairs
	w.NCtx = roundUp(pairs*(prompt+2*comp), 256)
	return w
}

func genWork(model string, threads, seqs, prompt, maxTokens int, seed uint64) *work {
	rng := rand.New(rand.NewPCG(seed, 2))
	w := &work{Model: model, Mode: "gen", Threads: threads, NBatch: 512, NSeq: seqs, MaxTokens: maxTokens}
	for i := 0; i < seqs; i++ {
		w.Requests = append(w.Requests, workRequest{Prompt: benchmodel.RandomTokens(rng, prompt)})
	}
	w.NCtx = roundUp(seqs*(prompt+maxTokens), 256)
	return w
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }

// runImpl runs one implementation on a work file in a fresh process and returns its measurement.
func runImpl(impl, self, cbase, defBuild, workPath string) (measurement, error) {
	var cmd *exec.Cmd
	switch impl {
	case "go":
		cmd = exec.Command(self, "-run", workPath)
	case "go-default":
		cmd = exec.Command(defBuild, "-run", workPath)
	case "c":
		cmd = exec.Command(cbase, workPath)
	case "c-repack":
		cmd = exec.Command(cbase, workPath+".repack")
	default:
		return measurement{}, fmt.Errorf("unknown implementation %q", impl)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return measurement{}, fmt.Errorf("%s on %s: %w: %s", impl, workPath, err, strings.TrimSpace(stderr.String()))
	}
	var m measurement
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &m); err != nil {
		return measurement{}, fmt.Errorf("%s on %s: output %q: %w", impl, workPath, stdout.String(), err)
	}
	if m.Seconds <= 0 {
		return measurement{}, fmt.Errorf("%s on %s: non-positive time %v", impl, workPath, m.Seconds)
	}
	return m, nil
}

func orchestrate(
	cbase, defBuild, vocab, cache, outDir string,
	threads, reps, marchReps, pairs int,
	only, command string,
) error {
	if threads < 1 || reps < 1 || marchReps < 1 || pairs < 1 {
		return errors.New("-threads, -reps, -march-reps and -score-pairs must be >= 1")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if _, err := os.Stat(cbase); err != nil {
		return fmt.Errorf("C baseline: %w (build it with go build -o %s ./bench/cbaseline)", err, cbase)
	}
	res := bench.Start("bridge", "Go bridge vs C calling llama.cpp directly (Qwen2.5-0.5B-shaped random Q8_0)", command)
	model, err := benchmodel.Ensure(cache, vocab, benchmodel.Spec.Type)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	jobs := []job{
		{"score", scoreWork(model, threads, pairs, 64, 64, 1), []string{"go", "c"}},
		{"gen1", genWork(model, threads, 1, 32, 64, 2), []string{"go", "c"}},
		{"gen8", genWork(model, threads, 8, 32, 64, 3), []string{"go", "c"}},
		// What the bridge's plain CPU buffers cost: llama.cpp's default repacks Q8_0 weights for its GEMM kernels.
		{"repack-score", scoreWork(model, threads, 2, 32, 32, 6), []string{"c", "c-repack"}},
	}
	if defBuild != "" {
		jobs = append(jobs,
			job{"march-score", scoreWork(model, threads, 2, 32, 32, 4), []string{"go", "go-default"}},
			job{"march-gen1", genWork(model, threads, 1, 16, 16, 5), []string{"go", "go-default"}})
	}
	if only != "" {
		keep := map[string]bool{}
		for _, n := range strings.Split(only, ",") {
			keep[strings.TrimSpace(n)] = true
		}
		var sel []job
		for _, j := range jobs {
			if keep[j.name] {
				sel = append(sel, j)
			}
		}
		jobs = sel
	}
	res.Config["model"] = benchmodel.Describe(vocab, benchmodel.Spec.Type)
	res.Config["threads"] = strconv.Itoa(threads)
	res.Config["runs"] = fmt.Sprintf(
		"%d per implementation (march-*, repack-*: %d), alternating, fresh process each",
		reps,
		marchReps,
	)
	res.Config["context"] = "F32 KV cache, no flash attention, unified KV, n_batch = n_ubatch = 512, no weight repacking"
	res.Config["default-flags build"] = "CGO_CFLAGS/CGO_CXXFLAGS unset (go's default -O2 -g)"
	for _, j := range jobs {
		path := filepath.Join(cache, "work-"+j.name+".txt")
		if err := writeWork(path, j.work); err != nil {
			return err
		}
		repacked := *j.work
		repacked.Repack = true
		if err := writeWork(path+".repack", &repacked); err != nil {
			return err
		}
		switch j.work.Mode {
		case "score":
			res.Config[j.name] = fmt.Sprintf(
				"%d pairs, prompt %d + 2 x %d tokens (%d tokens), n_ctx %d, n_seq %d; metric: decoded tokens/s",
				len(
					j.work.Requests,
				),
				len(j.work.Requests[0].Prompt),
				len(j.work.Requests[0].Completions[0]),
				j.work.tokens(),
				j.work.NCtx,
				j.work.NSeq,
			)
		default:
			res.Config[j.name] = fmt.Sprintf(
				"%d sequence(s) in parallel, prompt %d, greedy, %d new tokens each, n_ctx %d; metric: generated tokens/s (prompt time included)",
				len(j.work.Requests),
				len(j.work.Requests[0].Prompt),
				j.work.MaxTokens,
				j.work.NCtx,
			)
		}
		n := reps
		if strings.HasPrefix(j.name, "march-") || strings.HasPrefix(j.name, "repack-") {
			n = marchReps
		}
		samples := map[string][]float64{}
		cpuSamples := map[string][]float64{}
		loads := map[string][]float64{}
		got := map[string]measurement{}
		for r := 0; r < n; r++ {
			for _, impl := range j.impls {
				load := bench.LoadAvg()[0]
				m, err := runImpl(impl, self, cbase, defBuild, path)
				if err != nil {
					return err
				}
				fmt.Fprintf(
					os.Stderr,
					"bridge: %-12s %-10s run %d: %8.2f tokens/s (%.2f s), %8.2f tokens/cpu-s (%.2f cpu-s), load %.2f\n",
					j.name,
					impl,
					r+1,
					m.throughput(),
					m.Seconds,
					m.cpuThroughput(),
					m.CPUSeconds,
					load,
				)
				samples[impl] = append(samples[impl], m.throughput())
				cpuSamples[impl] = append(cpuSamples[impl], m.cpuThroughput())
				loads[impl] = append(loads[impl], load)
				if prev, ok := got[impl]; ok &&
					(prev.Hash != m.Hash || prev.GenTokens != m.GenTokens || prev.Check != m.Check) {
					res.Notes = append(
						res.Notes,
						fmt.Sprintf(
							"%s/%s: runs differ (check %v vs %v, hash %d vs %d)",
							j.name,
							impl,
							prev.Check,
							m.Check,
							prev.Hash,
							m.Hash,
						),
					)
				}
				got[impl] = m
			}
		}
		for _, impl := range j.impls {
			res.Metrics = append(
				res.Metrics,
				bench.NewMetric(j.name+"/"+impl, "tokens/s", true, samples[impl], loads[impl]),
			)
		}
		for _, impl := range j.impls {
			res.Metrics = append(
				res.Metrics,
				bench.NewMetric(j.name+"/"+impl+" cpu", "tokens/cpu-s", true, cpuSamples[impl], loads[impl]),
			)
		}
		a, b := got[j.impls[0]], got[j.impls[1]]
		res.Notes = append(res.Notes, sameWorkNote(j.name, j.impls[0], j.impls[1], a, b))
		name, goal := j.name+" Go/C", 0.95
		switch j.impls[1] {
		case "go-default":
			name, goal = j.name+" -march=native / default flags", 0
		case "c-repack":
			name, goal = j.name+" plain / repacked weights", 0
		}
		q, err := res.NewRatio(name, j.name+"/"+j.impls[0], j.name+"/"+j.impls[1], goal)
		if err != nil {
			return err
		}
		res.Ratios = append(res.Ratios, q)
		// The same ratio per CPU-second: robust to other load when every run uses one thread.
		qc, err := res.NewRatio(name+" (cpu time)", j.name+"/"+j.impls[0]+" cpu", j.name+"/"+j.impls[1]+" cpu", 0)
		if err != nil {
			return err
		}
		res.Ratios = append(res.Ratios, qc)
	}
	path, err := res.Finish(outDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bridge: wrote %s\n", path)
	for _, q := range res.Ratios {
		fmt.Fprintf(os.Stderr, "bridge: %-36s %.3f (best vs best %.3f)\n", q.Name, q.Value, q.Best)
	}
	return nil
}

// sameWorkNote says whether two implementations computed the same thing.
func sameWorkNote(job, implA, implB string, a, b measurement) string {
	if a.Mode == "gen" {
		if a.Hash == b.Hash && a.GenTokens == b.GenTokens {
			return fmt.Sprintf(
				"%s: %s and %s generated the same %d tokens (hash %d).",
				job,
				implA,
				implB,
				a.GenTokens,
				a.Hash,
			)
		}
		return fmt.Sprintf(
			"%s: %s and %s generated DIFFERENT tokens (%d vs %d tokens, hash %d vs %d).",
			job,
			implA,
			implB,
			a.GenTokens,
			b.GenTokens,
			a.Hash,
			b.Hash,
		)
	}
	diff := math.Abs(a.Check - b.Check)
	return fmt.Sprintf(
		"%s: sum of all completion log-probs %s %.6f, %s %.6f (difference %.2g).",
		job,
		implA,
		a.Check,
		implB,
		b.Check,
		diff,
	)
}
