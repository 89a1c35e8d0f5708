package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/align/llamaalign"
	"github.com/bpo-dev/bpo/bench"
	"github.com/bpo-dev/bpo/bench/benchmodel"
	"github.com/bpo-dev/bpo/llama"
)

// trainerConfig is the preference-training work: steps of batch pairs of prompt + 2 completions.
type trainerConfig struct {
	model, cache     string
	threads          int
	batch, steps     int
	prompt, complete int
	loss             string
	seed             uint64
}

// timedLoss records when the trainer's loss is computed: the policy graph's forward part has finished
// then, and its backward part starts when Compute returns.
type timedLoss struct {
	align.Loss
	calls, rets []mark
}

func (l *timedLoss) Compute(batch []align.PairLogps) (float64, []align.PairGrad, error) {
	l.calls = append(l.calls, now())
	v, g, err := l.Loss.Compute(batch)
	l.rets = append(l.rets, now())
	return v, g, err
}

// GapAdaptor forwards BPO's alpha to the metrics (1 for the other losses, as the trainer assumes).
func (l *timedLoss) GapAdaptor() float64 {
	if g, ok := l.Loss.(interface{ GapAdaptor() float64 }); ok {
		return g.GapAdaptor()
	}
	return 1
}

// timedPolicy records when each ForwardBackward starts and ends.
type timedPolicy struct {
	*llamaalign.LlamaPolicy
	starts, ends []mark
}

func (p *timedPolicy) ForwardBackward(
	ctx context.Context,
	batch []align.TokenizedPair,
	loss align.LossFunc,
	grads [][]float32,
) error {
	p.starts = append(p.starts, now())
	err := p.LlamaPolicy.ForwardBackward(ctx, batch, loss, grads)
	p.ends = append(p.ends, now())
	return err
}

// randomPairs makes n pairs of random ordinary tokens.
func randomPairs(n, prompt, complete int, seed uint64) []align.TokenizedPair {
	rng := rand.New(rand.NewPCG(seed, 4))
	out := make([]align.TokenizedPair, n)
	for i := range out {
		out[i] = align.TokenizedPair{
			Line:     i + 1,
			Prompt:   benchmodel.RandomTokens(rng, prompt),
			Chosen:   benchmodel.RandomTokens(rng, complete),
			Rejected: benchmodel.RandomTokens(rng, complete),
		}
	}
	return out
}

// runTrainer measures reference scoring (llamaalign.ReferenceLogps through llama.cpp) and align.Trainer
// steps with the LoRA policy, splitting each step into the policy graph's forward part, the loss, its
// backward part and the optimizer. The first step (scheduler buffers allocated) is reported apart from the steady steps.
func runTrainer(res *bench.Result, tc trainerConfig) error {
	pairs := randomPairs(tc.batch*tc.steps, tc.prompt, tc.complete, tc.seed)
	res.Config["trainer"] = fmt.Sprintf(
		"align.Trainer, loss %s (default parameters), batch %d pairs (prompt %d + 2 x %d tokens = %d policy tokens per step, 2 sequences per pair), %d steps on %d distinct pairs, AdamW lr 1e-5 constant, clip 1.0, one checkpoint at the end; metrics per step from own timers around Policy.ForwardBackward and Loss.Compute",
		tc.loss,
		tc.batch,
		tc.prompt,
		tc.complete,
		tc.batch*2*(tc.prompt+tc.complete),
		tc.steps,
		len(pairs),
	)

	// Reference log-probs through llama.cpp, as bpo train computes them (once per dataset, then cached).
	m, err := llama.LoadModel(tc.model, llama.ModelOptions{})
	if err != nil {
		return fmt.Errorf("reference: %w", err)
	}
	load := bench.LoadAvg()[0]
	m0 := now()
	refs, err := llamaalign.ReferenceLogps(context.Background(), m, pairs, tc.threads, nil)
	refWall, refCPU := m0.since()
	m.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(
		os.Stderr,
		"train: reference log-probs of %d pairs in %.2f s (CPU %.2f s, load %.2f)\n",
		len(pairs),
		refWall,
		refCPU,
		load,
	)
	res.Metrics = append(
		res.Metrics,
		bench.NewMetric(
			"trainer/reference scoring (ReferenceLogps, llama.cpp)",
			"pairs/s",
			true,
			[]float64{float64(len(pairs)) / refWall},
			[]float64{load},
		),
		bench.NewMetric(
			"trainer/reference scoring CPU time per pair",
			"CPU s",
			false,
			[]float64{refCPU / float64(len(pairs))},
			[]float64{load},
		),
	)

	params, err := align.DefaultLossParams(tc.loss)
	if err != nil {
		return err
	}
	inner, err := align.NewLoss(tc.loss, params)
	if err != nil {
		return err
	}
	loss := &timedLoss{Loss: inner}
	lp, _, err := newLoRAPolicy(tc.model, tc.threads, tc.seed)
	if err != nil {
		return fmt.Errorf("trainer: %w", err)
	}
	defer lp.Close()
	policy := &timedPolicy{LlamaPolicy: lp}
	runDir, err := os.MkdirTemp(tc.cache, "train-run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(runDir)
	var stepEnds []mark
	var stepLoads []float64
	cfg := align.TrainConfig{
		RunDir: runDir, Loss: loss, Optimizer: align.DefaultAdamWConfig(), LR: 1e-5, Scheduler: "constant",
		MaxGradNorm: 1, BatchSize: tc.batch, MaxSteps: tc.steps, Epochs: 1, Seed: tc.seed,
		SaveAdapter: func(dir string) error { return lp.SaveAdapter(dir, nil) },
		LoadAdapter: lp.LoadAdapter,
		OnStep: func(s align.StepMetrics) {
			stepEnds = append(stepEnds, now())
			stepLoads = append(stepLoads, bench.LoadAvg()[0])
			w, c := policy.starts[len(policy.starts)-1].to(stepEnds[len(stepEnds)-1])
			fmt.Fprintf(
				os.Stderr,
				"train: step %d: %.2f s (CPU %.2f s), loss %.4f, load %.2f\n",
				s.Step,
				w,
				c,
				s.Loss,
				stepLoads[len(stepLoads)-1],
			)
		},
	}
	tr, err := align.NewTrainer(cfg, policy, pairs, refs, nil, nil)
	if err != nil {
		return err
	}
	runStart := now()
	out, err := tr.Run(context.Background())
	if err != nil {
		return fmt.Errorf("trainer: %w", err)
	}
	if len(stepEnds) != tc.steps || len(policy.starts) != tc.steps || len(loss.calls) != tc.steps {
		return fmt.Errorf(
			"trainer: %d steps logged, %d forward/backward calls, %d loss calls; want %d each",
			len(stepEnds),
			len(policy.starts),
			len(loss.calls),
			tc.steps,
		)
	}
	// Per step: wall seconds and CPU seconds of each phase.
	names := []string{
		"step",
		"step: policy forward part (until the loss)",
		"step: loss",
		"step: policy backward part (after the loss) + gradient copy",
		"step: optimizer (clip + AdamW) + metrics",
	}
	wall, cpu := make([]series, len(names)), make([]series, len(names))
	var pps series
	var first [5]float64
	for i := 0; i < tc.steps; i++ {
		begin := runStart
		if i > 0 {
			begin = stepEnds[i-1]
		}
		spans := [5][2]mark{
			{begin, stepEnds[i]},
			{policy.starts[i], loss.calls[i]},
			{loss.calls[i], loss.rets[i]},
			{loss.rets[i], policy.ends[i]},
			{policy.ends[i], stepEnds[i]},
		}
		if i == 0 && tc.steps > 1 {
			for j, sp := range spans {
				first[j], _ = sp[0].to(sp[1])
			}
			continue
		}
		for j, sp := range spans {
			w, c := sp[0].to(sp[1])
			wall[j].add(w, stepLoads[i])
			cpu[j].add(c, stepLoads[i])
		}
		w, _ := spans[0][0].to(spans[0][1])
		pps.add(float64(tc.batch)/w, stepLoads[i])
	}
	res.Metrics = append(
		res.Metrics,
		bench.NewMetric("trainer/throughput (steps after the first)", "pairs/s", true, pps.samples, pps.loads),
	)
	for j, n := range names {
		res.Metrics = append(res.Metrics, bench.NewMetric("trainer/"+n, "s", false, wall[j].samples, wall[j].loads))
	}
	for j, n := range names {
		res.Metrics = append(
			res.Metrics,
			bench.NewMetric("trainer/"+n+" CPU time", "CPU s", false, cpu[j].samples, cpu[j].loads),
		)
	}
	res.Metrics = append(
		res.Metrics,
		bench.NewMetric(
			"trainer/whole Run (TrainResult.PairsPerSecond: first step and checkpoint included)",
			"pairs/s",
			true,
			[]float64{out.PairsPerSecond()},
			[]float64{bench.LoadAvg()[0]},
		),
		bench.NewMetric(
			"trainer/PeakComputeBytes",
			"MiB",
			false,
			[]float64{mib(lp.Model().PeakComputeBytes())},
			[]float64{bench.LoadAvg()[0]},
		),
	)
	st, ct := bench.Median(wall[0].samples), bench.Median(cpu[0].samples)
	share := func(j int) string {
		w, c := bench.Median(wall[j].samples), bench.Median(cpu[j].samples)
		return fmt.Sprintf("%.2f s / %.2f CPU s (%.0f%% of CPU)", w, c, 100*c/ct)
	}
	refTime := time.Duration(refWall * float64(time.Second))
	refPerStep := float64(tc.batch) * refTime.Seconds() / float64(len(pairs))
	res.Notes = append(
		res.Notes,
		fmt.Sprintf(
			"trainer: median steady step %.2f s (%.2f CPU s) = %.3f pairs/s: policy forward part %s, loss %s, backward part %s, optimizer + metrics %s. First step %.2f s (forward part %.2f s, backward part %.2f s).",
			st,
			ct,
			float64(tc.batch)/st,
			share(1),
			share(2),
			share(3),
			share(4),
			first[0],
			first[1],
			first[3],
		),
		fmt.Sprintf(
			"trainer: reference scoring through llama.cpp took %.2f s (%.2f CPU s) for %d pairs: %.2f s per %d-pair batch, %.0f%% of a step's CPU if it were not cached.",
			refTime.Seconds(),
			refCPU,
			len(pairs),
			refPerStep,
			tc.batch,
			100*refCPU*float64(tc.batch)/float64(len(pairs))/ct,
		),
		fmt.Sprintf(
			"trainer: TrainResult over %d steps: Elapsed %.2f s, PolicyTime %.2f s, LossTime %.4f s, OptimTime %.3f s, SaveTime %.2f s, %.3f pairs/s.",
			out.Steps,
			out.Elapsed.Seconds(),
			out.PolicyTime.Seconds(),
			out.LossTime.Seconds(),
			out.OptimTime.Seconds(),
			out.SaveTime.Seconds(),
			out.PairsPerSecond(),
		),
	)
	return nil
}
