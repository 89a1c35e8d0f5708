package align

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// withShared sets a pair's shared-prefix log-probs.
func withShared(p PairLogps, pc, pr, rc, rr float64) PairLogps {
	p.PolicyChosenShared, p.PolicyRejectedShared, p.RefChosenShared, p.RefRejectedShared = pc, pr, rc, rr
	return p
}

// TestLDAlphaValues: LD-DPO with alpha 0.5 on P1 (chosen 4 tokens, rejected 5: the rejected has one
// token beyond the shared 4). Shared sums: policy chosen = full (-10), policy rejected -13 of -15,
// reference chosen -12, rejected -11 of -12. Transformed: policy rejected -13 + 0.5·(-2) = -14,
// reference rejected -11 + 0.5·(-1) = -11.5, so a = 2, b = -2.5, h = 4.5 and the DPO loss at beta 0.1
// is log(1 + e^-0.45). Gradients: alpha·g on the full sums, (1-alpha)·g on the shared ones.
func TestLDAlphaValues(t *testing.T) {
	l, err := NewLossFromSpecWith("dpo", nil, LossOptions{LDAlpha: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	p := withShared(pairP1, -10, -13, -12, -11)
	got, g, err := l.Compute([]PairLogps{p})
	if err != nil {
		t.Fatal(err)
	}
	want := math.Log1p(math.Exp(-0.45))
	if !closeTo(got, want, 1e-14) {
		t.Errorf("loss %v, want %v", got, want)
	}
	dz := -0.1 * sigmoid(-0.45) // dL/d(policy chosen) of plain DPO at h = 4.5
	wantG := PairGrad{Chosen: 0.5 * dz, Rejected: -0.5 * dz, ChosenShared: 0.5 * dz, RejectedShared: -0.5 * dz}
	if !closeTo(g[0].Chosen, wantG.Chosen, 1e-14) || !closeTo(g[0].Rejected, wantG.Rejected, 1e-14) ||
		!closeTo(g[0].ChosenShared, wantG.ChosenShared, 1e-14) || !closeTo(g[0].RejectedShared, wantG.RejectedShared, 1e-14) {
		t.Errorf("grad %+v, want %+v", g[0], wantG)
	}
	if c, r := l.Rewards(p); !closeTo(c, 0.2, 1e-14) || !closeTo(r, -0.25, 1e-14) {
		t.Errorf("rewards %v %v, want the transformed 0.2 and -0.25", c, r)
	}
	for _, tc := range []struct {
		alpha   float64
		wantErr string
	}{{1, "ld_alpha must be in (0, 1)"}, {-0.5, "ld_alpha must be in (0, 1)"}, {math.NaN(), "ld_alpha must be in (0, 1)"}} {
		if _, err := NewLossFromSpecWith("dpo", nil, LossOptions{LDAlpha: tc.alpha}); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("alpha %v: %v", tc.alpha, err)
		}
	}
}

// TestLDAlphaFiniteDifference checks the gradients with respect to the full and the shared sums.
func TestLDAlphaFiniteDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, spec := range []string{"dpo", "bpo:1,sft:0.2", "simpo", "aot"} {
		t.Run(spec, func(t *testing.T) {
			l, err := NewLossFromSpecWith(spec, nil, LossOptions{LDAlpha: 0.3, WPO: spec == "dpo"})
			if err != nil {
				t.Fatal(err)
			}
			batch := randomBatch(rng, 5)
			for i := range batch {
				f := 0.3 + 0.6*rng.Float64()
				batch[i] = withShared(batch[i], batch[i].PolicyChosen*f, batch[i].PolicyRejected*f, batch[i].RefChosen*f, batch[i].RefRejected*f)
			}
			_, grads, err := l.Compute(batch)
			if err != nil {
				t.Fatal(err)
			}
			var weights []float64
			for _, p := range batch {
				w, _ := WPOWeight(p)
				weights = append(weights, w)
			}
			const h = 1e-6
			for i := range batch {
				for side := 0; side < 4; side++ {
					eval := func(d float64) float64 {
						b := append([]PairLogps(nil), batch...)
						switch side {
						case 0:
							b[i].PolicyChosen += d
						case 1:
							b[i].PolicyRejected += d
						case 2:
							b[i].PolicyChosenShared += d
						default:
							b[i].PolicyRejectedShared += d
						}
						if spec != "dpo" {
							return mustLoss(t, l, b)
						}
						c := l.(*ComposedLoss) // WPO's weight is held fixed
						pb, err := c.prepare(b)
						if err != nil {
							t.Fatal(err)
						}
						return fixedWeightLoss(t, c, pb, weights)
					}
					fd := (eval(h) - eval(-h)) / (2 * h)
					an := []float64{grads[i].Chosen, grads[i].Rejected, grads[i].ChosenShared, grads[i].RejectedShared}[side]
					if math.Abs(fd-an) > 1e-6*(1+math.Abs(an)) {
						t.Errorf("pair %d side %d: analytic %.10g, finite difference %.10g", i, side, an, fd)
					}
				}
			}
		})
	}
}

// toySharedRefs adds the reference's shared-prefix sums to toy data.
func toySharedRefs(m *toyModel, pairs []TokenizedPair, refs []RefLogps) {
	w0 := m.weights(true)
	for i, sp := range SharedPrefixPairs(pairs) {
		prompt := int(sp.Prompt[len(sp.Prompt)-1])
		refs[i].ChosenShared = m.seqLogp(w0, prompt, toInts(sp.Chosen), 0, nil)
		refs[i].RejectedShared = m.seqLogp(w0, prompt, toInts(sp.Rejected), 0, nil)
	}
}

// TestLDAlphaTrainer: the trainer scores the shared prefixes as auxiliary pairs, so that LD-DPO's
// first step has policy = reference (loss log 2); without refreshes the margin grows; and a run
// interrupted and resumed with reference refreshes (which recompute the shared sums) replays the
// uninterrupted one.
func TestLDAlphaTrainer(t *testing.T) {
	build := func(dir string, mutate func(*TrainConfig)) *Trainer {
		m := newToyModel(t, 12, 4, 1)
		train, refs := toyData(m, 30, 2)
		eval, evalRefs := toyData(m, 6, 3)
		toySharedRefs(m, train, refs)
		toySharedRefs(m, eval, evalRefs)
		loss, err := NewLossFromSpecWith("dpo", nil, LossOptions{LDAlpha: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		save, load := toyAdapterIO(m.lora)
		cfg := TrainConfig{RunDir: dir, Loss: loss, Optimizer: DefaultAdamWConfig(), LR: 0.03, Scheduler: "cosine", WarmupRatio: 0.1,
			MaxGradNorm: 1, BatchSize: 8, MicroBatch: 3, Epochs: 6, Seed: 11, SaveEvery: 5, EvalEvery: 10,
			SaveAdapter: save, LoadAdapter: load, RefRefresh: RefRefresh{Every: 6, Mix: 0.5}}
		if mutate != nil {
			mutate(&cfg)
		}
		tr, err := NewTrainer(cfg, &toyPolicy{m: m}, train, refs, eval, evalRefs)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	full := t.TempDir()
	if _, err := build(full, nil).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ms, err := ReadMetrics(full + "/" + MetricsFileName)
	if err != nil {
		t.Fatal(err)
	}
	if !closeTo(ms[0].Loss, math.Ln2, 1e-12) {
		t.Errorf("step 1 loss %v, want log 2 (policy = reference)", ms[0].Loss)
	}
	plain := t.TempDir()
	if _, err := build(plain, func(c *TrainConfig) { c.RefRefresh = RefRefresh{} }).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ms, err = ReadMetrics(plain + "/" + MetricsFileName); err != nil {
		t.Fatal(err)
	}
	var train []StepMetrics
	for _, m := range ms {
		if m.Split == "" {
			train = append(train, m)
		}
	}
	margin := meanLast(train, 5, func(s StepMetrics) float64 { return s.RewardsMargins })
	final := meanLast(train, 5, func(s StepMetrics) float64 { return s.Loss })
	t.Logf("LD-DPO alpha 0.5 on the toy: last-5 margin %.4f, loss %.4f", margin, final)
	if margin <= 0.02 || final >= math.Ln2-0.01 {
		t.Errorf("no learning: last-5 margin %v, loss %v", margin, final)
	}
	parted := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	tr := build(parted, func(c *TrainConfig) {
		c.OnStep = func(s StepMetrics) {
			if s.Step == 13 && s.Split == "" {
				cancel()
			}
		}
	})
	if _, err := tr.Run(ctx); err == nil {
		t.Fatal("not interrupted")
	}
	cancel()
	tr = build(parted, nil)
	if ok, err := tr.Resume(); !ok || err != nil {
		t.Fatalf("resume %v %v", ok, err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, b := readFile(t, full+"/"+MetricsFileName), readFile(t, parted+"/"+MetricsFileName)
	if a != b {
		t.Fatalf("resumed metrics differ:\n%s\n%s", a, b)
	}
	// Without the reference's shared sums the trainer refuses to start.
	m := newToyModel(t, 12, 4, 1)
	trainPairs, refs := toyData(m, 4, 2)
	loss, _ := NewLossFromSpecWith("dpo", nil, LossOptions{LDAlpha: 0.5})
	save, load := toyAdapterIO(m.lora)
	_, err = NewTrainer(TrainConfig{RunDir: t.TempDir(), Loss: loss, Optimizer: DefaultAdamWConfig(), LR: 0.01, Scheduler: "constant",
		BatchSize: 2, Epochs: 1, SaveAdapter: save, LoadAdapter: load}, &toyPolicy{m: m}, trainPairs, refs, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "needs the reference log-probs of the shared prefixes") {
		t.Errorf("missing shared refs: %v", err)
	}
}
