package align

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// Fixed pairs for hand-computed values.
var (
	// a = -10 - (-12) = 2, b = -15 - (-12) = -3, h = 5
	pairP1 = PairLogps{PolicyChosen: -10, RefChosen: -12, PolicyRejected: -15, RefRejected: -12, ChosenTokens: 4, RejectedTokens: 5}
	// a = -1, b = -8, h = 7: a degraded chosen response (chosen reward < 0)
	pairP2 = PairLogps{PolicyChosen: -13, RefChosen: -12, PolicyRejected: -20, RefRejected: -12, ChosenTokens: 4, RejectedTokens: 8}
	// a = 1, b = -4: with alpha 0.25, -alpha·b = 1 = a, a BPO tie
	pairTIE = PairLogps{PolicyChosen: -11, RefChosen: -12, PolicyRejected: -16, RefRejected: -12, ChosenTokens: 2, RejectedTokens: 4}
)

func closeTo(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*(1+math.Abs(want))
}

// TestLossHandValues checks every loss against values computed by hand from the formulas in
// LOSSES.md (see the comments for the simple ones). The BPO rows cover each f, alpha != 1 and a tie.
func TestLossHandValues(t *testing.T) {
	tests := []struct {
		name   string
		params LossParams
		batch  []PairLogps
		loss   float64
		grads  []PairGrad
	}{
		// DPO beta 0.1: P1 z=0.5: log(1+e^-0.5)=0.474077, grad -0.1·σ(-0.5)/2 = -0.018877;
		// P2 z=0.7: log(1+e^-0.7)=0.403186; mean 0.438632.
		{"dpo", LossParams{Beta: 0.1}, []PairLogps{pairP1, pairP2}, 0.43863151653278226, []PairGrad{{Chosen: -0.01887703343990727, Rejected: 0.01887703343990727}, {Chosen: -0.016590611391591695, Rejected: 0.016590611391591695}}},
		{"dpo", LossParams{Beta: 0.5, LabelSmoothing: 0.1}, []PairLogps{pairP1, pairP2}, 0.3543200762825851, []PairGrad{{Chosen: 0.006035454994689115, Rejected: -0.006035454994689115}, {Chosen: 0.01767194231216092, Rejected: -0.01767194231216092}}},
		// IPO beta 0.1, 1/(2 beta) = 5: P1 (5-5)^2 = 0, P2 (7-5)^2 = 4; mean 2; P2 grad 2·2/2 = 2.
		{"ipo", LossParams{Beta: 0.1}, []PairLogps{pairP1, pairP2}, 2.0, []PairGrad{{Chosen: 0.0, Rejected: 0.0}, {Chosen: 2.0, Rejected: -2.0}}},
		// hinge beta 0.1: 1-0.5 = 0.5, 1-0.7 = 0.3; mean 0.4; grads -0.1/2.
		{"hinge", LossParams{Beta: 0.1}, []PairLogps{pairP1, pairP2}, 0.39999999999999997, []PairGrad{{Chosen: -0.05, Rejected: 0.05}, {Chosen: -0.05, Rejected: 0.05}}},
		// hinge beta 0.5: both margins beyond 1, loss and gradient 0.
		{"slic", LossParams{Beta: 0.5}, []PairLogps{pairP1, pairP2}, 0.0, []PairGrad{{Chosen: 0.0, Rejected: 0.0}, {Chosen: 0.0, Rejected: 0.0}}},
		// Cal-DPO beta 0.1: P1 -log σ(5) + 0.5(2-5)^2 + 0.5(-3+5)^2 = 0.006715 + 4.5 + 2.
		{"cal-dpo", LossParams{Beta: 0.1}, []PairLogps{pairP1, pairP2}, 14.503813407471448, []PairGrad{{Chosen: -1.5033464254621425, Rejected: 1.0033464254621425}, {Chosen: -3.0004555255972005, Rejected: -1.4995444744027997}}},
		// DPOP lambda 50: P1 has a > 0 (no penalty, as DPO); P2 a = -1: z = 0.1·(7 - 50) = -4.3.
		{"dpop", LossParams{Beta: 0.1, Lambda: 50}, []PairLogps{pairP1, pairP2}, 2.393777157298066, []PairGrad{{Chosen: -0.01887703343990727, Rejected: 0.01887703343990727}, {Chosen: -2.5158633595394546, Rejected: 0.049330654108616756}}},
		// SimPO beta 2 gamma 1: P1 z = 2(-2.5) - 2(-3) - 1 = 0: log 2, grads ∓σ(0)·2/4/2, 2/5/2.
		{"simpo", LossParams{Beta: 2, Gamma: 1}, []PairLogps{pairP1, pairP2}, 1.6360184574262475, []PairGrad{{Chosen: -0.125, Rejected: 0.1}, {Chosen: -0.23103545499468914, Rejected: 0.11551772749734457}}},
		{"orpo", LossParams{Beta: 0.1}, []PairLogps{pairP1, pairP2}, 2.956478788647641, []PairGrad{{Chosen: -0.1300310895708065, Rejected: 0.0038880654527635706}, {Chosen: -0.13396174179824621, Rejected: 0.00469229577156526}}},
		// RPO = DPO + 1·mean NLL of chosen: + (10/4 + 13/4)/2 = 2.875; chosen grads -1/4/2 extra.
		{"rpo", LossParams{Beta: 0.1, Alpha: 1}, []PairLogps{pairP1, pairP2}, 3.313631516532782, []PairGrad{{Chosen: -0.14387703343990726, Rejected: 0.01887703343990727}, {Chosen: -0.14159061139159168, Rejected: 0.016590611391591695}}},
		// BPO alpha 0.3: P1 m = min(2, 0.9) = 0.9 (rejected branch), P2 m = min(-1, 2.4) = -1 (chosen).
		{"bpo", LossParams{Beta: 0.1, Alpha: 0.3, F: "logistic"}, []PairLogps{pairP1, pairP2}, 0.6967779995495904, []PairGrad{{Chosen: 0.0, Rejected: 0.007162727628122999}, {Chosen: -0.026248959373947, Rejected: 0.0}}},
		// BPO tie: z = 0.1: f'(z)·beta split half to chosen, half·(-alpha) to rejected.
		{"bpo", LossParams{Beta: 0.1, Alpha: 0.25, F: "logistic"}, []PairLogps{pairTIE}, 0.6443966600735709, []PairGrad{{Chosen: -0.023751040626053002, Rejected: 0.0059377601565132505}}},
		// hinge: P1 1-0.09 = 0.91, P2 1+0.1 = 1.1: mean 1.005; grads -0.1/2 on the active branch (·-0.3).
		{"bpo", LossParams{Beta: 0.1, Alpha: 0.3, F: "hinge"}, []PairLogps{pairP1, pairP2}, 1.0050000000000001, []PairGrad{{Chosen: 0.0, Rejected: 0.015}, {Chosen: -0.05, Rejected: 0.0}}},
		{"bpo", LossParams{Beta: 0.1, Alpha: 0.25, F: "hinge"}, []PairLogps{pairTIE}, 0.9, []PairGrad{{Chosen: -0.05, Rejected: 0.0125}}},
		// square: P1 (0.09-1)^2 = 0.8281, P2 (-0.1-1)^2 = 1.21; mean 1.01905.
		{"bpo", LossParams{Beta: 0.1, Alpha: 0.3, F: "square"}, []PairLogps{pairP1, pairP2}, 1.01905, []PairGrad{{Chosen: 0.0, Rejected: 0.0273}, {Chosen: -0.11000000000000001, Rejected: 0.0}}},
		{"bpo", LossParams{Beta: 0.1, Alpha: 0.25, F: "square"}, []PairLogps{pairTIE}, 0.81, []PairGrad{{Chosen: -0.09000000000000001, Rejected: 0.022500000000000003}}},
		// exponential: (e^-0.09 + e^0.1)/2.
		{"bpo", LossParams{Beta: 0.1, Alpha: 0.3, F: "exponential"}, []PairLogps{pairP1, pairP2}, 1.009551051673438, []PairGrad{{Chosen: 0.0, Rejected: 0.013708967779068423}, {Chosen: -0.05525854590378239, Rejected: 0.0}}},
		{"bpo", LossParams{Beta: 0.1, Alpha: 0.25, F: "exponential"}, []PairLogps{pairTIE}, 0.9048374180359595, []PairGrad{{Chosen: -0.04524187090179798, Rejected: 0.011310467725449495}}},
		{"bpo", LossParams{Beta: 0.1, Alpha: 0.3, F: "truncated-quadratic"}, []PairLogps{pairP1, pairP2}, 1.01905, []PairGrad{{Chosen: 0.0, Rejected: 0.0273}, {Chosen: -0.11000000000000001, Rejected: 0.0}}},
		{"bpo", LossParams{Beta: 0.1, Alpha: 0.25, F: "truncated-quadratic"}, []PairLogps{pairTIE}, 0.81, []PairGrad{{Chosen: -0.09000000000000001, Rejected: 0.022500000000000003}}},
		{"bpo", LossParams{Beta: 0.1, Alpha: 0.3, F: "savage"}, []PairLogps{pairP1, pairP2}, 0.2518119449200829, []PairGrad{{Chosen: 0.0, Rejected: 0.0035741213316685333}, {Chosen: -0.013091723095717992, Rejected: 0.0}}},
		{"bpo", LossParams{Beta: 0.1, Alpha: 0.25, F: "savage"}, []PairLogps{pairTIE}, 0.22564477232816804, []PairGrad{{Chosen: -0.011845880923571205, Rejected: 0.0029614702308928013}}},
		// alpha 1: m = min(a, -b) is a for all three pairs.
		{"bpo", LossParams{Beta: 1, Alpha: 1, F: "logistic"}, []PairLogps{pairP1, pairP2, pairTIE}, 0.584483795359806, []PairGrad{{Chosen: -0.03973430734070585, Rejected: 0.0}, {Chosen: -0.2436861928766683, Rejected: 0.0}, {Chosen: -0.08964714045666504, Rejected: 0.0}}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%+v", tc.name, tc.params), func(t *testing.T) {
			l, err := NewLoss(tc.name, tc.params)
			if err != nil {
				t.Fatalf("NewLoss: %v", err)
			}
			got, grads, err := l.Compute(tc.batch)
			if err != nil {
				t.Fatalf("Compute: %v", err)
			}
			if !closeTo(got, tc.loss, 1e-12) {
				t.Errorf("loss = %.17g, want %.17g", got, tc.loss)
			}
			for i, g := range grads {
				if !closeTo(g.Chosen, tc.grads[i].Chosen, 1e-12) || !closeTo(g.Rejected, tc.grads[i].Rejected, 1e-12) {
					t.Errorf("pair %d grad = %+v, want %+v", i, g, tc.grads[i])
				}
			}
		})
	}
}

// lossConfigs lists every loss and every BPO family with non-default parameters for the gradient check.
func lossConfigs() []struct {
	name   string
	params LossParams
} {
	cfgs := []struct {
		name   string
		params LossParams
	}{
		{"dpo", LossParams{Beta: 0.1}},
		{"dpo", LossParams{Beta: 0.3, LabelSmoothing: 0.2}},
		{"ipo", LossParams{Beta: 0.1}},
		{"hinge", LossParams{Beta: 0.1}},
		{"cal-dpo", LossParams{Beta: 0.1}},
		{"dpop", LossParams{Beta: 0.1, Lambda: 50}},
		{"simpo", LossParams{Beta: 2, Gamma: 1}},
		{"orpo", LossParams{Beta: 0.1}},
		{"rpo", LossParams{Beta: 0.1, Alpha: 1, LabelSmoothing: 0.1}},
	}
	for _, f := range BPOFamilies() {
		for _, alpha := range []float64{0.3, 1} {
			cfgs = append(cfgs, struct {
				name   string
				params LossParams
			}{"bpo", LossParams{Beta: 0.1, Alpha: alpha, F: f}})
		}
	}
	return cfgs
}

// randomBatch draws pairs with log-probs in realistic ranges; policy and reference differ by a few
// nats so that every branch (both BPO branches, DPOP's penalty, hinge's kink) is visited.
func randomBatch(rng *rand.Rand, n int) []PairLogps {
	batch := make([]PairLogps, n)
	for i := range batch {
		rc := -5 - 60*rng.Float64()
		rr := -5 - 60*rng.Float64()
		batch[i] = PairLogps{
			RefChosen: rc, RefRejected: rr,
			PolicyChosen: rc + 20*(rng.Float64()-0.5), PolicyRejected: rr + 20*(rng.Float64()-0.5),
			ChosenTokens: 1 + rng.IntN(40), RejectedTokens: 1 + rng.IntN(40),
		}
		batch[i].PolicyChosen = math.Min(batch[i].PolicyChosen, -0.5)
		batch[i].PolicyRejected = math.Min(batch[i].PolicyRejected, -0.5)
	}
	return batch
}

// TestLossFiniteDifference checks every analytic gradient against central finite differences of
// the batch loss.
func TestLossFiniteDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	const h = 1e-6
	for _, cfg := range lossConfigs() {
		t.Run(fmt.Sprintf("%s/%+v", cfg.name, cfg.params), func(t *testing.T) {
			l, err := NewLoss(cfg.name, cfg.params)
			if err != nil {
				t.Fatal(err)
			}
			for trial := 0; trial < 20; trial++ {
				batch := randomBatch(rng, 5)
				_, grads, err := l.Compute(batch)
				if err != nil {
					t.Fatal(err)
				}
				eval := func(i int, side int, d float64) float64 {
					b := append([]PairLogps(nil), batch...)
					if side == 0 {
						b[i].PolicyChosen += d
					} else {
						b[i].PolicyRejected += d
					}
					v, _, err := l.Compute(b)
					if err != nil {
						t.Fatal(err)
					}
					return v
				}
				for i := range batch {
					for side, an := range []float64{grads[i].Chosen, grads[i].Rejected} {
						fd := (eval(i, side, h) - eval(i, side, -h)) / (2 * h)
						if math.Abs(fd-an) > 1e-6*(1+math.Abs(an)) {
							t.Errorf("trial %d pair %d side %d: analytic %.10g, finite difference %.10g", trial, i, side, an, fd)
						}
					}
				}
			}
		})
	}
}

// TestLossBranchCoverage makes sure the random batches of the gradient check visit both BPO branches.
func TestLossBranchCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	var chosen, rejected int
	for trial := 0; trial < 20; trial++ {
		for _, p := range randomBatch(rng, 5) {
			a, b := logRatios(p)
			if _, s := balancedMargin(a, b, 0.3); s == 1 {
				chosen++
			} else {
				rejected++
			}
		}
	}
	if chosen < 10 || rejected < 10 {
		t.Fatalf("branches visited: chosen %d rejected %d, want both >= 10", chosen, rejected)
	}
}

func TestNewLossValidation(t *testing.T) {
	tests := []struct {
		name    string
		params  LossParams
		wantErr string
	}{
		{"nope", LossParams{Beta: 0.1}, `unknown loss "nope"`},
		{"dpo", LossParams{Beta: 0}, "beta must be a finite number > 0"},
		{"dpo", LossParams{Beta: -1}, "beta must be a finite number > 0"},
		{"dpo", LossParams{Beta: math.NaN()}, "beta must be a finite number > 0"},
		{"dpo", LossParams{Beta: 0.1, LabelSmoothing: 0.5}, "label_smoothing must be in [0, 0.5)"},
		{"dpo", LossParams{Beta: 0.1, Alpha: 0.3}, "parameter alpha does not apply to loss dpo"},
		{"ipo", LossParams{Beta: 0.1, Gamma: 1}, "parameter gamma does not apply to loss ipo"},
		{"bpo", LossParams{Beta: 0.1, Alpha: 0, F: "hinge"}, "alpha (gap adaptor) must be in (0, 1]"},
		{"bpo", LossParams{Beta: 0.1, Alpha: 1.5, F: "hinge"}, "alpha (gap adaptor) must be in (0, 1]"},
		{"bpo", LossParams{Beta: 0.1, Alpha: 0.3, F: "cubic"}, `unknown f "cubic"`},
		{"bpo", LossParams{Beta: 0.1, Alpha: 0.3, F: "hinge", Lambda: 2}, "parameter lambda does not apply"},
		{"rpo", LossParams{Beta: 0.1, Alpha: -1}, "alpha (NLL weight) must be a finite number >= 0"},
		{"dpop", LossParams{Beta: 0.1, Lambda: -3}, "lambda must be a finite number >= 0"},
		{"simpo", LossParams{Beta: 2, Gamma: math.Inf(1)}, "gamma must be finite"},
		{"BPO", LossParams{Beta: 0.1, Alpha: 0.3, F: "Savage"}, ""},
		{"sigmoid", LossParams{Beta: 0.1}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/"+tc.wantErr, func(t *testing.T) {
			_, err := NewLoss(tc.name, tc.params)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestDefaultLossParamsAreValid(t *testing.T) {
	for _, name := range LossNames() {
		p, err := DefaultLossParams(name)
		if err != nil {
			t.Fatal(err)
		}
		l, err := NewLoss(name, p)
		if err != nil {
			t.Fatalf("%s defaults %+v rejected: %v", name, p, err)
		}
		if _, _, err := l.Compute([]PairLogps{pairP1, pairP2}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func TestLossComputeInputErrors(t *testing.T) {
	bad := pairP1
	bad.RefChosen = math.Inf(-1)
	noTokens := pairP1
	noTokens.ChosenTokens = 0
	zero := pairP1
	zero.PolicyChosen = 0
	tests := []struct {
		loss    string
		batch   []PairLogps
		wantErr string
	}{
		{"dpo", nil, "dpo: empty batch"},
		{"dpo", []PairLogps{pairP1, bad}, "dpo: pair 1: reference chosen logp is not finite"},
		{"simpo", []PairLogps{bad}, ""}, // reference-free: reference values are not read
		{"simpo", []PairLogps{noTokens}, "chosen token count must be > 0"},
		{"rpo", []PairLogps{noTokens}, "chosen token count must be > 0"},
		{"orpo", []PairLogps{zero}, "ORPO needs mean token log-probs < 0"},
	}
	for _, tc := range tests {
		t.Run(tc.loss+"/"+tc.wantErr, func(t *testing.T) {
			p, _ := DefaultLossParams(tc.loss)
			l, err := NewLoss(tc.loss, p)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = l.Compute(tc.batch)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}
