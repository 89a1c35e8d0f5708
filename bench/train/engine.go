package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/align/llamaalign"
	"github.com/bpo-dev/bpo/bench"
	"github.com/bpo-dev/bpo/bench/benchmodel"
	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/nn"
)

// engineConfig is the single-sequence work of the engine and llama.cpp jobs.
type engineConfig struct {
	model            string
	weights          ggml.GGMLType
	threads          int
	prompt, complete int
	reps             int
	seed             uint64
}

// series collects one metric's samples with the load average at each.
type series struct {
	samples, loads []float64
}

func (s *series) add(v, load float64) {
	s.samples = append(s.samples, v)
	s.loads = append(s.loads, load)
}

// newLoRAPolicy loads the model with rank-16 LoRA (alpha 16) on all seven projections, A seeded
// random and B zero, as a preference run starts.
func newLoRAPolicy(model string, threads int, seed uint64) (*llamaalign.LlamaPolicy, *align.LoRA, error) {
	base, err := llamaalign.BaseTensors(model)
	if err != nil {
		return nil, nil, err
	}
	cfg := align.DefaultLoRAConfig()
	cfg.Seed = seed
	lora, err := align.NewLoRA(cfg, base)
	if err != nil {
		return nil, nil, err
	}
	p, err := llamaalign.NewLlamaLoRAPolicy(model, lora, threads)
	if err != nil {
		return nil, nil, err
	}
	return p, lora, nil
}

// timedGradient runs LogProbsAndGradient of the sum of all completion log-probs and returns marks
// at its start, when the coefficients were asked for (the graph's forward part done) and at its end
// (backward part done, gradients copied).
func timedGradient(tm *nn.TrainModel, seqs []nn.TrainSeq) (start, coef, end mark, sums []float64, err error) {
	tm.ZeroGrads()
	start = now()
	sums, err = tm.LogProbsAndGradient(seqs, func(s []float64) ([]float64, error) {
		coef = now()
		c := make([]float64, len(s))
		for i := range c {
			c[i] = 1
		}
		return c, nil
	})
	return start, coef, now(), sums, err
}

func sum(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

// maxAbsDiff is the largest |a-b| over two equally shaped log-prob lists (Inf when shapes differ).
func maxAbsDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// gradNorm is the global L2 norm of every parameter's gradient.
func gradNorm(tm *nn.TrainModel) float64 {
	s := 0.0
	for _, p := range tm.Params() {
		for _, g := range p.Grad {
			s += float64(g) * float64(g)
		}
	}
	return math.Sqrt(s)
}

// runEngine measures the training graph on one sequence: forward only (LogProbs) against forward +
// backward (LogProbsAndGradient), memory, and, when withLlama is set, the training graph's forward
// against llama.cpp's forward of the same tokens.
func runEngine(res *bench.Result, ec engineConfig, withEngine, withLlama bool) error {
	rng := rand.New(rand.NewPCG(ec.seed, 3))
	toks := benchmodel.RandomTokens(rng, ec.prompt+ec.complete)
	seqs := []nn.TrainSeq{{Tokens: toks, PromptLen: ec.prompt}}
	T := float64(len(toks))
	job := fmt.Sprintf("seq%d", len(toks))
	res.Config[job] = fmt.Sprintf(
		"1 sequence, prompt %d + completion %d tokens (%d tokens, %d scored rows); tokens/s counts all %d tokens",
		ec.prompt,
		ec.complete,
		len(toks),
		ec.complete,
		len(toks),
	)

	loadStart := time.Now()
	policy, lora, err := newLoRAPolicy(ec.model, ec.threads, ec.seed)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	defer policy.Close()
	tm := policy.Model()
	res.Config["lora"] = fmt.Sprintf(
		"rank %d, alpha %g, %s on all %d layers (%d tensors, %d trainable values); A random, B zero",
		lora.Rank,
		lora.Alpha,
		"attn_q/k/v/output + ffn_gate/up/down",
		benchmodel.Spec.Layers,
		len(lora.Tensors),
		lora.NumParams(),
	)
	fmt.Fprintf(os.Stderr, "train: training graph loaded in %.1f s\n", time.Since(loadStart).Seconds())

	// Warm-up: the first compute allocates the scheduler's buffers. LogProbsAndGradient is not warmed
	// up (it takes many times longer); its first run also grows the compute buffer.
	ref, err := tm.LogProbs(seqs)
	if err != nil {
		return fmt.Errorf("engine warm-up: %w", err)
	}
	if withEngine {
		// The first LogProbsAndGradient allocates its larger graph's buffers: reported apart.
		wu, _, wuEnd, _, err := timedGradient(tm, seqs)
		if err != nil {
			return fmt.Errorf("engine warm-up: %w", err)
		}
		wuWall, wuCPU := wu.to(wuEnd)
		res.Notes = append(
			res.Notes,
			fmt.Sprintf(
				"%s warm-up: the first LogProbsAndGradient took %.2f s (%.2f CPU s); it is not among the samples.",
				job,
				wuWall,
				wuCPU,
			),
		)
		why := ensureTorch()
		if why != "" {
			fmt.Fprintln(os.Stderr, "train: PyTorch peer skipped:", why)
			res.Notes = append(res.Notes, "PyTorch peer skipped: "+why)
		}
		var tFwd, tStep, tWFwd, tWStep series
		// Wall-clock speeds (tokens/s) and CPU seconds of this process (robust to other load at 1 thread).
		var fwd, step, fwdPart, grad, cFwd, cStep, cGrad series
		sumDiff := 0.0
		for r := 0; r < ec.reps; r++ {
			load := bench.LoadAvg()[0]
			m0 := now()
			lp, err := tm.LogProbs(seqs)
			tf, cf := m0.since()
			if err != nil {
				return fmt.Errorf("engine forward: %w", err)
			}
			fwd.add(T/tf, load)
			cFwd.add(cf, load)
			load = bench.LoadAvg()[0]
			a, b, c, sums, err := timedGradient(tm, seqs)
			if err != nil {
				return fmt.Errorf("engine forward+backward: %w", err)
			}
			ts, cs := a.to(c)
			tfp, _ := a.to(b)
			tg, cg := b.to(c)
			step.add(T/ts, load)
			cStep.add(cs, load)
			fwdPart.add(tfp, load)
			grad.add(T/tg, load)
			cGrad.add(cg, load)
			if d := maxAbsDiff(lp[0], ref[0]); d != 0 {
				res.Notes = append(
					res.Notes,
					fmt.Sprintf("%s rep %d: LogProbs differs between calls by %.3g", job, r+1, d),
				)
			}
			sumDiff = max(sumDiff, math.Abs(sums[0]-sum(ref[0])))
			fmt.Fprintf(
				os.Stderr,
				"train: %s rep %d: forward %.2f s (CPU %.2f), forward+backward %.2f s (CPU %.2f; forward part %.2f s, backward part %.2f s, CPU %.2f), load %.2f\n",
				job,
				r+1,
				tf,
				cf,
				ts,
				cs,
				tfp,
				tg,
				cg,
				load,
			)
			if why == "" {
				load = bench.LoadAvg()[0]
				tr, err := runTorch(peerScript(), ec, "f32")
				if err != nil {
					return err
				}
				tFwd.add(tr.Forward[0][0], load)
				tStep.add(tr.Step[0][0], load)
				tWFwd.add(tr.WarmupForward[0], load)
				tWStep.add(tr.WarmupStep[0], load)
				fmt.Fprintf(
					os.Stderr,
					"train: %s rep %d: PyTorch %s F32 forward %.2f CPU s, forward+backward %.2f CPU s (warm-up %.2f / %.2f)\n",
					job,
					r+1,
					tr.Torch,
					tr.Forward[0][0],
					tr.Step[0][0],
					tr.WarmupForward[0],
					tr.WarmupStep[0],
				)
			}
		}
		hwm, err := peakRSS()
		if err != nil {
			return err
		}
		nFwd, nStep, nGrad := job+"/forward (LogProbs)", job+"/forward+backward (LogProbsAndGradient)", job+"/backward part of LogProbsAndGradient (after the coefficients are set)"
		res.Metrics = append(
			res.Metrics,
			bench.NewMetric(nFwd, "tokens/s", true, fwd.samples, fwd.loads),
			bench.NewMetric(nStep, "tokens/s", true, step.samples, step.loads),
			bench.NewMetric(nGrad, "tokens/s", true, grad.samples, grad.loads),
			bench.NewMetric(
				job+"/forward part of LogProbsAndGradient (until the coefficients are asked for)",
				"s",
				false,
				fwdPart.samples,
				fwdPart.loads,
			),
			bench.NewMetric(nFwd+" CPU time", "CPU s", false, cFwd.samples, cFwd.loads),
			bench.NewMetric(nStep+" CPU time", "CPU s", false, cStep.samples, cStep.loads),
			bench.NewMetric(nGrad+" CPU time", "CPU s", false, cGrad.samples, cGrad.loads),
			bench.NewMetric(
				job+"/peak RSS (VmHWM, training graph only)",
				"MiB",
				false,
				[]float64{mib(hwm)},
				[]float64{bench.LoadAvg()[0]},
			),
			bench.NewMetric(
				job+"/PeakComputeBytes",
				"MiB",
				false,
				[]float64{mib(tm.PeakComputeBytes())},
				[]float64{bench.LoadAvg()[0]},
			),
			bench.NewMetric(
				job+"/WeightBytes",
				"MiB",
				false,
				[]float64{mib(tm.WeightBytes())},
				[]float64{bench.LoadAvg()[0]},
			),
		)
		for _, q := range []struct {
			name, num, den string
			goal           float64
		}{
			{job + " forward+backward speed / forward speed (= forward time / LogProbsAndGradient time; goal: <= 3.5 x, i.e. >= 0.286)", nStep, nFwd, 1 / 3.5},
			{job + " backward-part speed / forward speed (= forward time / backward-part time)", nGrad, nFwd, 0},
			{job + " forward CPU / forward+backward CPU (goal >= 0.4545, i.e. (fwd+bwd)/fwd <= 2.2)", nFwd + " CPU time", nStep + " CPU time", 1 / 2.2},
			{job + " forward CPU / backward-part CPU", nFwd + " CPU time", nGrad + " CPU time", 0},
		} {
			ratio, err := res.NewRatio(q.name, q.num, q.den, q.goal)
			if err != nil {
				return err
			}
			res.Ratios = append(res.Ratios, ratio)
		}
		if why == "" {
			nT, nTS := job+"/PyTorch F32 forward CPU time", job+"/PyTorch F32 forward+backward CPU time"
			res.Metrics = append(
				res.Metrics,
				bench.NewMetric(nT, "CPU s", false, tFwd.samples, tFwd.loads),
				bench.NewMetric(nTS, "CPU s", false, tStep.samples, tStep.loads),
				bench.NewMetric(
					job+"/PyTorch F32 warm-up forward CPU time",
					"CPU s",
					false,
					tWFwd.samples,
					tWFwd.loads,
				),
				bench.NewMetric(
					job+"/PyTorch F32 warm-up forward+backward CPU time",
					"CPU s",
					false,
					tWStep.samples,
					tWStep.loads,
				),
			)
			for _, q := range [][2]string{
				{job + " PyTorch F32 forward+backward CPU / ours (goal >= 1.2)", nTS},
				{job + " PyTorch F32 forward CPU / ours", nT},
			} {
				ours := job + "/forward+backward (LogProbsAndGradient) CPU time"
				goal := 1.2
				if q[1] == nT {
					ours, goal = job+"/forward (LogProbs) CPU time", 0
				}
				ratio, err := res.NewRatio(q[0], q[1], ours, goal)
				if err != nil {
					return err
				}
				res.Ratios = append(res.Ratios, ratio)
			}
			load := bench.LoadAvg()[0]
			bf, err := runTorch(peerScript(), ec, "bf16")
			if err != nil {
				return err
			}
			nB := job + "/PyTorch bf16 autocast forward+backward CPU time"
			res.Metrics = append(
				res.Metrics,
				bench.NewMetric(
					job+"/PyTorch bf16 autocast forward CPU time",
					"CPU s",
					false,
					[]float64{bf.Forward[0][0]},
					[]float64{load},
				),
				bench.NewMetric(nB, "CPU s", false, []float64{bf.Step[0][0]}, []float64{load}),
			)
			goal := 0.0
			if ec.weights == ggml.TypeBF16 {
				goal = 1 // bf16 weights against bf16 autocast: the goal
			}
			ratio, err := res.NewRatio(
				job+" PyTorch bf16 autocast forward+backward CPU / ours",
				nB,
				job+"/forward+backward (LogProbsAndGradient) CPU time",
				goal,
			)
			if err != nil {
				return err
			}
			res.Ratios = append(res.Ratios, ratio)
			res.Config["pytorch peer"] = fmt.Sprintf(
				"bench/train/torchpeer.py: PyTorch %s (Debian python3-torch, OpenBLAS from %s), %d thread(s), the same shapes with random F32 weights, LoRA r16 alpha 16 on the 7 projections, the same token counts, log-softmax over the full vocabulary of the scored rows; one process per rep after ours, each with its own warm-up",
				bf.Torch,
				openblasOpenMP,
				bf.Threads,
			)
		}
		tF, tS, tG := T/bench.Median(fwd.samples), T/bench.Median(step.samples), T/bench.Median(grad.samples)
		tFP := bench.Median(fwdPart.samples)
		cF, cS, cG := bench.Median(cFwd.samples), bench.Median(cStep.samples), bench.Median(cGrad.samples)
		res.Notes = append(
			res.Notes,
			fmt.Sprintf(
				"%s wall: median forward (LogProbs) %.2f s; LogProbsAndGradient %.2f s = %.2f x forward (goal <= 3.5): its forward part %.2f s (%.2f x) + backward part %.2f s (%.2f x forward).",
				job,
				tF,
				tS,
				tS/tF,
				tFP,
				tFP/tF,
				tG,
				tG/tF,
			),
			fmt.Sprintf(
				"%s CPU: forward %.2f CPU s; LogProbsAndGradient %.2f CPU s = %.2f x forward, of which the backward part %.2f CPU s = %.2f x forward (%.0f%% of the step).",
				job,
				cF,
				cS,
				cS/cF,
				cG,
				cG/cF,
				100*cG/cS,
			),
			fmt.Sprintf(
				"%s: LogProbsAndGradient's log-prob sum differs from LogProbs' by at most %.3g (of %.1f).",
				job,
				sumDiff,
				sum(ref[0]),
			),
			fmt.Sprintf(
				"%s: peak RSS %.0f MiB (VmHWM after the engine runs, before llama.cpp is loaded), PeakComputeBytes %.0f MiB, WeightBytes %.0f MiB; |grad| %.4g after the last step (sum of completion log-probs).",
				job,
				mib(hwm),
				mib(tm.PeakComputeBytes()),
				mib(tm.WeightBytes()),
				gradNorm(tm),
			),
		)
	}
	if withEngine {
		if err := contention(res, tm, seqs, ec.reps, job); err != nil {
			return err
		}
		tm.SetThreads(ec.threads)
	}
	if !withLlama {
		return nil
	}
	return runLlamaCompare(res, ec, tm, seqs, ref[0], job)
}

// runLlamaCompare alternates the training graph's forward with llama.cpp's (Context.Score: prompt
// decoded, then the completion, logits of the same scored rows) on the same tokens and threads.
func runLlamaCompare(
	res *bench.Result,
	ec engineConfig,
	tm *nn.TrainModel,
	seqs []nn.TrainSeq,
	ref []float64,
	job string,
) error {
	m, err := llama.LoadModel(ec.model, llama.ModelOptions{})
	if err != nil {
		return fmt.Errorf("llama.cpp: %w", err)
	}
	defer m.Close()
	n := len(seqs[0].Tokens)
	lc, err := llama.NewContext(
		m,
		llama.ContextOptions{NCtx: (n + 255) / 256 * 256, NBatch: 512, NSeq: 2, Threads: ec.threads},
	)
	if err != nil {
		return fmt.Errorf("llama.cpp: %w", err)
	}
	defer lc.Close()
	req := []llama.ScoreRequest{
		{Prompt: seqs[0].Tokens[:seqs[0].PromptLen], Completions: [][]llama.Token{seqs[0].Tokens[seqs[0].PromptLen:]}},
	}
	bg := context.Background()
	if _, err := lc.Score(bg, req); err != nil { // warm-up
		return fmt.Errorf("llama.cpp warm-up: %w", err)
	}
	T := float64(n)
	var ours, theirs, cOurs, cTheirs series
	var diff, rel float64
	for r := 0; r < ec.reps; r++ {
		load := bench.LoadAvg()[0]
		m0 := now()
		if _, err := tm.LogProbs(seqs); err != nil {
			return fmt.Errorf("training-graph forward: %w", err)
		}
		tOurs, c := m0.since()
		ours.add(T/tOurs, load)
		cOurs.add(c, load)
		load2 := bench.LoadAvg()[0]
		m0 = now()
		out, err := lc.Score(bg, req)
		tTheirs, c := m0.since()
		if err != nil {
			return fmt.Errorf("llama.cpp forward: %w", err)
		}
		theirs.add(T/tTheirs, load2)
		cTheirs.add(c, load2)
		diff = max(diff, maxAbsDiff(out[0][0].LogProbs, ref))
		for i, v := range out[0][0].LogProbs {
			if i < len(ref) && ref[i] != 0 {
				rel = max(rel, math.Abs(v-ref[i])/math.Abs(ref[i]))
			}
		}
		fmt.Fprintf(
			os.Stderr,
			"train: %s rep %d: training-graph forward %.2f s, llama.cpp forward %.2f s, load %.2f\n",
			job,
			r+1,
			tOurs,
			tTheirs,
			load,
		)
	}
	res.Metrics = append(
		res.Metrics,
		bench.NewMetric(job+"-vs-llama.cpp/training graph forward", "tokens/s", true, ours.samples, ours.loads),
		bench.NewMetric(job+"-vs-llama.cpp/llama.cpp forward", "tokens/s", true, theirs.samples, theirs.loads),
		bench.NewMetric(
			job+"-vs-llama.cpp/training graph forward CPU time",
			"CPU s",
			false,
			cOurs.samples,
			cOurs.loads,
		),
		bench.NewMetric(job+"-vs-llama.cpp/llama.cpp forward CPU time", "CPU s", false, cTheirs.samples, cTheirs.loads),
	)
	for _, q := range [][3]string{
		{job + " training-graph forward speed / llama.cpp forward speed", job + "-vs-llama.cpp/training graph forward", job + "-vs-llama.cpp/llama.cpp forward"},
		{job + " llama.cpp CPU / training-graph CPU (speed ratio by CPU time)", job + "-vs-llama.cpp/llama.cpp forward CPU time", job + "-vs-llama.cpp/training graph forward CPU time"},
	} {
		ratio, err := res.NewRatio(q[0], q[1], q[2], 0.8)
		if err != nil {
			return err
		}
		res.Ratios = append(res.Ratios, ratio)
	}
	res.Config["llama.cpp forward"] = fmt.Sprintf(
		"llama.Context.Score (prompt %d decoded, then the %d completion tokens; logits of the same %d rows), n_ctx %d, n_batch 512, F32 KV cache, same threads; runs alternate with the training graph's",
		seqs[0].PromptLen,
		n-seqs[0].PromptLen,
		n-seqs[0].PromptLen,
		(n+255)/256*256,
	)
	lo, hi := 0.0, math.Inf(-1)
	for _, v := range ref {
		lo, hi = min(lo, v), max(hi, v)
	}
	res.Notes = append(
		res.Notes,
		fmt.Sprintf(
			"%s: largest |training-graph log-prob - llama.cpp log-prob| over the %d scored tokens: %.3g (relative %.2g; LoRA B = 0). The random model's token log-probs lie in [%.0f, %.1f]: its logits are huge, so float summation-order differences grow through the layers.",
			job,
			len(ref),
			diff,
			rel,
			lo,
			hi,
		),
	)
	return nil
}
