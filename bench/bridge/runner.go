package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/bpo-dev/bpo/llama"
)

// measurement is what a runner (the Go bridge or the C baseline) prints as one JSON line.
type measurement struct {
	Impl    string  `json:"impl"`
	Mode    string  `json:"mode"`
	Seconds float64 `json:"seconds"`
	// CPUSeconds is the process's user+system CPU time during the work: with one thread it is nearly
	// immune to other load on the machine, unlike Seconds.
	CPUSeconds float64 `json:"cpu_seconds"`
	// Tokens is the number of prompt and completion tokens decoded (score) or fed as prompts (gen).
	Tokens int `json:"tokens"`
	// GenTokens is the number of generated tokens (gen).
	GenTokens int `json:"gen_tokens"`
	// Check is the sum of all completion log-probs (score) so that Go and C can be compared.
	Check float64 `json:"check"`
	// Hash is a hash of all generated token ids in request order (gen).
	Hash uint64 `json:"hash"`
}

// throughput is tokens per second: decoded tokens for score, generated tokens for gen.
func (m measurement) throughput() float64 {
	if m.Mode == "gen" {
		return float64(m.GenTokens) / m.Seconds
	}
	return float64(m.Tokens) / m.Seconds
}

// cpuThroughput is throughput per CPU-second.
func (m measurement) cpuThroughput() float64 {
	return m.throughput() * m.Seconds / m.CPUSeconds
}

// cpuTime is this process's user+system CPU time in seconds.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + 1e-6*float64(ru.Utime.Usec+ru.Stime.Usec)
}

// tokenHash folds token ids into a hash (h = h*31 + id), the same in the C baseline.
func tokenHash(h uint64, toks []llama.Token) uint64 {
	for _, t := range toks {
		h = h*31 + uint64(uint32(t))
	}
	return h
}

// runGo does the work of a work file with the Go bridge and prints one measurement line.
func runGo(path string) error {
	w, err := readWork(path)
	if err != nil {
		return err
	}
	m, err := llama.LoadModel(w.Model, llama.ModelOptions{})
	if err != nil {
		return err
	}
	defer m.Close()
	if w.Repack {
		return fmt.Errorf("%s: repack 1: the Go bridge does not repack weights", path)
	}
	ctx, err := llama.NewContext(
		m,
		llama.ContextOptions{NCtx: w.NCtx, NBatch: w.NBatch, NSeq: w.NSeq, Threads: w.Threads},
	)
	if err != nil {
		return err
	}
	defer ctx.Close()
	bg := context.Background()
	// Warm-up, as in the C baseline: greedy generation of 1 token after the first 8 of the first prompt.
	if _, err := ctx.Generate(bg, []llama.GenRequest{{Prompt: w.Requests[0].Prompt[:8], MaxTokens: 1}}, llama.GenerateOptions{}); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	out := measurement{Impl: "go", Mode: w.Mode, Tokens: w.tokens()}
	switch w.Mode {
	case "score":
		reqs := make([]llama.ScoreRequest, len(w.Requests))
		for i, r := range w.Requests {
			reqs[i] = llama.ScoreRequest{Prompt: r.Prompt, Completions: r.Completions}
		}
		start, cpu := time.Now(), cpuTime()
		res, err := ctx.Score(bg, reqs)
		out.Seconds, out.CPUSeconds = time.Since(start).Seconds(), cpuTime()-cpu
		if err != nil {
			return err
		}
		for _, r := range res {
			for _, c := range r {
				out.Check += c.Sum
			}
		}
	case "gen":
		reqs := make([]llama.GenRequest, len(w.Requests))
		for i, r := range w.Requests {
			reqs[i] = llama.GenRequest{Prompt: r.Prompt, MaxTokens: w.MaxTokens}
		}
		start, cpu := time.Now(), cpuTime()
		res, err := ctx.Generate(bg, reqs, llama.GenerateOptions{Parallel: w.NSeq})
		out.Seconds, out.CPUSeconds = time.Since(start).Seconds(), cpuTime()-cpu
		if err != nil {
			return err
		}
		for _, r := range res {
			out.GenTokens += len(r.Tokens)
			out.Hash = tokenHash(out.Hash, r.Tokens)
		}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
