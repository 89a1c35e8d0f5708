package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/bpo-dev/bpo/bench"
	"github.com/bpo-dev/bpo/bench/benchmodel"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/nn"
)

// The memory job measures the peak resident memory (VmHWM) of one preference step: a fresh process
// (this program with -probe) loads the model with LoRA r16 on all projections and runs one
// LogProbsAndGradient over a pair, chosen and rejected of the same length (prompt 64). Each length
// runs with checkpointing on and off; off is skipped (with the reason) when its estimated activation
// memory would not leave room on the machine.

// ordinaryTokens bounds the probe's token ids: below it every id is an ordinary token of both the
// qwen2 (151,643) and the llama-bpe (128,000) vocabularies.
const ordinaryTokens = 128000

// probeResult is what a -probe process prints.
type probeResult struct {
	Skipped       string  `json:"skipped,omitempty"`
	Tokens        int     `json:"tokens"`
	Checkpointing string  `json:"checkpointing"`
	PeakRSS       int64   `json:"peak_rss"`
	ComputeBytes  int64   `json:"compute_bytes"`
	WeightBytes   int64   `json:"weight_bytes"`
	LoadCPU       float64 `json:"load_cpu_s"`
	StepCPU       float64 `json:"step_cpu_s"`
	StepWall      float64 `json:"step_wall_s"`
	LoadWall      float64 `json:"load_wall_s"`
}

// runProbe is the -probe process: spec "TOKENS,CHECKPOINTING" on model.
func runProbe(model, spec string, threads int, seed uint64) error {
	n, ck, ok := strings.Cut(spec, ",")
	tokens, err := strconv.Atoi(n)
	if !ok || err != nil || tokens < 65 {
		return fmt.Errorf("-probe %q: want TOKENS,auto|on|off with TOKENS > 64", spec)
	}
	ckpt, err := nn.ParseCheckpointing(ck)
	if err != nil {
		return err
	}
	m0 := now()
	policy, _, err := newLoRAPolicy(model, threads, seed)
	if err != nil {
		return err
	}
	defer policy.Close()
	tm := policy.Model()
	tm.SetCheckpointing(ckpt)
	lw, lc := m0.since()
	rng := rand.New(rand.NewPCG(seed, 5))
	prompt := benchmodel.RandomTokensBelow(rng, 64, ordinaryTokens)
	var seqs []nn.TrainSeq
	for range 2 {
		toks := append(
			append([]llama.Token(nil), prompt...),
			benchmodel.RandomTokensBelow(rng, tokens-64, ordinaryTokens)...)
		seqs = append(seqs, nn.TrainSeq{Tokens: toks, PromptLen: 64})
	}
	if ckpt == nn.CheckpointOff {
		kept, err := tm.KeptActivationBytes(seqs)
		if err != nil {
			return err
		}
		total, err := statusKB("/proc/meminfo", "MemTotal")
		if err != nil {
			return err
		}
		if kept > total/2 {
			return json.NewEncoder(os.Stdout).Encode(probeResult{Tokens: tokens, Checkpointing: ckpt.String(),
				Skipped: fmt.Sprintf(
					"would keep about %.1f GiB of activations; the machine has %.1f GiB",
					float64(kept)/(1<<30),
					float64(total)/(1<<30),
				)})
		}
	}
	m1 := now()
	if _, err := tm.LogProbsAndGradient(seqs, func(s []float64) ([]float64, error) { return []float64{1, -1}, nil }); err != nil {
		return err
	}
	sw, sc := m1.since()
	hwm, err := peakRSS()
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(probeResult{Tokens: tokens, Checkpointing: ckpt.String(), PeakRSS: hwm,
		ComputeBytes: tm.PeakComputeBytes(), WeightBytes: tm.WeightBytes(), LoadCPU: lc, LoadWall: lw, StepCPU: sc, StepWall: sw})
}

// probe runs one -probe process of this program.
func probe(model string, tokens int, ckpt string, threads int, seed uint64) (probeResult, error) {
	self, err := os.Executable()
	if err != nil {
		return probeResult{}, err
	}
	cmd := exec.Command(self, "-probe", fmt.Sprintf("%d,%s", tokens, ckpt), "-probe-model", model,
		"-threads", strconv.Itoa(threads), "-seed", strconv.FormatUint(seed, 10))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return probeResult{}, fmt.Errorf("probe %d tokens, checkpointing %s: %w", tokens, ckpt, err)
	}
	var r probeResult
	if err := json.Unmarshal(out, &r); err != nil {
		return probeResult{}, fmt.Errorf("probe output %q: %w", out, err)
	}
	return r, nil
}

// memoryConfig is the memory job's work.
type memoryConfig struct {
	model, name string
	lengths     []int
	ckpts       []string
	threads     int
	seed        uint64
}

// runMemory runs the probes of mc and records peak RSS, compute buffer and step time per setting.
func runMemory(res *bench.Result, mc memoryConfig) error {
	for _, n := range mc.lengths {
		for _, ck := range mc.ckpts {
			load := bench.LoadAvg()[0]
			r, err := probe(mc.model, n, ck, mc.threads, mc.seed)
			if err != nil {
				return err
			}
			if r.Skipped != "" {
				fmt.Fprintf(
					os.Stderr,
					"train: %s %d tokens, checkpointing %s: skipped: %s\n",
					mc.name,
					n,
					ck,
					r.Skipped,
				)
				res.Notes = append(
					res.Notes,
					fmt.Sprintf("%s: %d tokens x 2, checkpointing %s: skipped, it %s.", mc.name, n, ck, r.Skipped),
				)
				continue
			}
			fmt.Fprintf(
				os.Stderr,
				"train: %s %d tokens, checkpointing %s: peak RSS %.0f MiB, compute %.0f MiB, step %.1f CPU s (%.1f s wall), load %.2f\n",
				mc.name,
				n,
				ck,
				mib(r.PeakRSS),
				mib(r.ComputeBytes),
				r.StepCPU,
				r.StepWall,
				load,
			)
			key := fmt.Sprintf("%s/%d tokens x 2, checkpointing %s", mc.name, n, ck)
			res.Metrics = append(res.Metrics,
				bench.NewMetric(key+"/peak RSS", "MiB", false, []float64{mib(r.PeakRSS)}, []float64{load}),
				bench.NewMetric(key+"/step CPU time", "CPU s", false, []float64{r.StepCPU}, []float64{load}))
			res.Notes = append(
				res.Notes,
				fmt.Sprintf(
					"%s (%d threads): %d tokens x 2, checkpointing %s: peak RSS %.0f MiB (compute buffer %.0f MiB, weights incl. transposes %.0f MiB); load %.1f CPU s; one step %.1f CPU s, %.1f s wall.",
					mc.name,
					mc.threads,
					n,
					ck,
					mib(r.PeakRSS),
					mib(r.ComputeBytes),
					mib(r.WeightBytes),
					r.LoadCPU,
					r.StepCPU,
					r.StepWall,
				),
			)
		}
	}
	return nil
}
