package align

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// pairP4 has a = -2, b = 0 (and policy log-ratio -6 against the reference's -4): with P1, P2 and
// TIE it makes AOT's sorted pairing differ from the batch order.
var pairP4 = PairLogps{PolicyChosen: -16, RefChosen: -14, PolicyRejected: -10, RefRejected: -10, ChosenTokens: 3, RejectedTokens: 3}

// TestTRLLossValues checks the losses added for TRL parity, the f-divergence variants and WPO
// weighting against align/testdata/trl_losses_ref.py: an independent mpmath implementation of the
// formulas in LOSSES.md whose gradients are numerical derivatives (40 digits).
func TestTRLLossValues(t *testing.T) {
	tests := []struct {
		spec   string
		params [][2]string
		wpo    bool
		batch  []PairLogps
		loss   float64
		grads  []PairGrad
	}{
		{"robust", [][2]string{{"beta", "0.1"}, {"label_smoothing", "0.1"}}, false, []PairLogps{pairP1, pairP2}, 0.36363151653278227, []PairGrad{{Chosen: -0.025127033439907273, Rejected: 0.025127033439907273}, {Chosen: -0.022840611391591696, Rejected: 0.022840611391591696}}},
		{"exo_pair", [][2]string{{"beta", "0.1"}, {"label_smoothing", "0.001"}}, false, []PairLogps{pairP1, pairP2}, 1.8015127911337745, []PairGrad{{Chosen: -0.075280557807385747, Rejected: 0.075280557807385747}, {Chosen: -0.068805871789995295, Rejected: 0.068805871789995295}}},
		{"nca_pair", [][2]string{{"beta", "0.1"}}, false, []PairLogps{pairP1, pairP2}, 1.2632656246954483, []PairGrad{{Chosen: -0.0087624502015641571, Rejected: 0.010638937079708526}, {Chosen: -0.0143734390609205, Rejected: 0.0077506379718096891}}},
		{"bco_pair", [][2]string{{"beta", "0.1"}}, false, []PairLogps{pairP1, pairP2}, 1.1339957199357338, []PairGrad{{Chosen: -0.022508300134376106, Rejected: 0.021277874159417052}, {Chosen: -0.026248959373947001, Rejected: 0.015501275943619378}}},
		{"sppo_hard", [][2]string{{"beta", "0.1"}}, false, []PairLogps{pairP1, pairP2}, 28.999999999999998, []PairGrad{{Chosen: -2.9999999999999997, Rejected: 1.9999999999999997}, {Chosen: -5.9999999999999997, Rejected: -3.0000000000000003}}},
		{"apo_zero", [][2]string{{"beta", "0.1"}}, false, []PairLogps{pairP1, pairP2}, 0.85536409611359532, []PairGrad{{Chosen: -0.012375828635592998, Rejected: 0.012222915584537294}, {Chosen: -0.012468802009644599, Rejected: 0.010695484826014722}}},
		{"apo_down", [][2]string{{"beta", "0.1"}}, false, []PairLogps{pairP1, pairP2}, 0.86710385323175862, []PairGrad{{Chosen: 0.00062564302551327288, Rejected: 0.011750185610079725}, {Chosen: 0.0013831583449891461, Rejected: 0.011085643664655453}}},
		{"discopop", [][2]string{{"beta", "0.1"}, {"tau", "0.05"}}, false, []PairLogps{pairP1, pairP2}, 0.55155493636268685, []PairGrad{{Chosen: -0.030320000361166192, Rejected: 0.030320000361166192}, {Chosen: -0.024829180674865296, Rejected: 0.024829180674865296}}},
		{"discopop", [][2]string{{"beta", "0.02"}, {"tau", "0.05"}}, false, []PairLogps{pairP1, pairP2}, 0.86458841897032101, []PairGrad{{Chosen: -0.0030670984345139523, Rejected: 0.0030670984345139523}, {Chosen: -0.0058273208671418936, Rejected: 0.0058273208671418936}}},
		{"sigmoid_norm", [][2]string{{"beta", "0.5"}}, false, []PairLogps{pairP1, pairP2}, 0.48930787280158884, []PairGrad{{Chosen: -0.022866525561824957, Rejected: 0.018293220449459966}, {Chosen: -0.02545833750287064, Rejected: 0.01272916875143532}}},
		{"aot", [][2]string{{"beta", "0.1"}}, false, []PairLogps{pairP1, pairP2, pairTIE, pairP4}, 0.53736972165681577, []PairGrad{{Chosen: -0.0094385167199536362, Rejected: 0.0094385167199536362}, {Chosen: -0.0082953056957958476, Rejected: 0.0082953056957958476}, {Chosen: -0.0094385167199536362, Rejected: 0.0094385167199536362}, {Chosen: -0.013745849932811949, Rejected: 0.013745849932811949}}},
		{"aot", [][2]string{{"beta", "0.1"}, {"label_smoothing", "0.1"}}, false, []PairLogps{pairP1, pairP2, pairTIE, pairP4}, 0.57486972165681577, []PairGrad{{Chosen: -0.006938516719953636, Rejected: 0.006938516719953636}, {Chosen: -0.0057953056957958473, Rejected: 0.0057953056957958473}, {Chosen: -0.006938516719953636, Rejected: 0.006938516719953636}, {Chosen: -0.011245849932811948, Rejected: 0.011245849932811948}}},
		{"aot_unpaired", [][2]string{{"beta", "0.1"}}, false, []PairLogps{pairP1, pairP2, pairTIE, pairP4}, 0.52574932918398929, []PairGrad{{Chosen: -0.011254150067188053, Rejected: 0.0100328084971887}, {Chosen: -0.010638937079708526, Rejected: 0.008858592344355114}, {Chosen: -0.0100328084971887, Rejected: 0.010638937079708526}, {Chosen: -0.008858592344355114, Rejected: 0.011254150067188053}}},
		{"sft", nil, false, []PairLogps{pairP1, pairP2}, 2.875, []PairGrad{{Chosen: -0.125, Rejected: 0.0}, {Chosen: -0.125, Rejected: 0.0}}},
		{"dpo", [][2]string{{"beta", "0.1"}, {"divergence", "forward_kl"}}, false, []PairLogps{pairP1, pairP2}, 0.063761462774232629, []PairGrad{{Chosen: -0.00081016278358708982, Rejected: 0.1202388180994971}, {Chosen: 0.0, Rejected: 0.0}}},
		{"dpo", [][2]string{{"beta", "0.1"}, {"divergence", "js_divergence"}}, false, []PairLogps{pairP1, pairP2}, 0.48568742576244026, []PairGrad{{Chosen: -0.0025478056672412442, Rejected: 0.020360019013084773}, {Chosen: -0.012383633091374651, Rejected: 0.01693363651049798}}},
		{"dpo", [][2]string{{"beta", "0.1"}, {"divergence", "alpha_divergence"}, {"divergence_alpha", "0.5"}}, false, []PairLogps{pairP1, pairP2}, 0.18206215525561064, []PairGrad{{Chosen: -0.0056134299840668997, Rejected: 0.0683855768797268}, {Chosen: -2.074805393341588e-6, Rejected: 6.8708118326839067e-5}}},
		{"hinge", [][2]string{{"beta", "0.1"}, {"divergence", "js"}}, false, []PairLogps{pairP1, pairP2}, 0.51956334703072785, []PairGrad{{Chosen: -0.0059601461011058781, Rejected: 0.047628706341121664}, {Chosen: -0.036552928931500246, Rejected: 0.049983232493476679}}},
		{"apo_zero", [][2]string{{"beta", "0.1"}, {"divergence", "forward-kl"}}, false, []PairLogps{pairP1, pairP2}, 0.59461637842759203, []PairGrad{{Chosen: -0.0016916135818166562, Rejected: 0.1047571564709195}, {Chosen: -0.033358499535844973, Rejected: 0.0}}},
		{"dpo", [][2]string{{"beta", "0.1"}}, true, []PairLogps{pairP1, pairP2}, 0.0016103485461968422, []PairGrad{{Chosen: -7.7146121105144139e-5, Rejected: 7.7146121105144139e-5}, {Chosen: -5.2804279339512572e-5, Rejected: 5.2804279339512572e-5}}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%v/wpo=%v", tc.spec, tc.params, tc.wpo), func(t *testing.T) {
			l, err := NewLossFromSpec(tc.spec, tc.params, tc.wpo)
			if err != nil {
				t.Fatal(err)
			}
			got, grads, err := l.Compute(tc.batch)
			if err != nil {
				t.Fatal(err)
			}
			if !closeTo(got, tc.loss, 1e-12) {
				t.Errorf("loss = %.17g, want %.17g", got, tc.loss)
			}
			for i, g := range grads {
				if !closeTo(g.Chosen, tc.grads[i].Chosen, 1e-10) || !closeTo(g.Rejected, tc.grads[i].Rejected, 1e-10) {
					t.Errorf("pair %d grad = %+v, want %+v", i, g, tc.grads[i])
				}
			}
		})
	}
}

// trlLossConfigs lists the new losses and divergence variants for the finite-difference check.
func trlLossConfigs() []struct {
	spec string
	wpo  bool
} {
	var out []struct {
		spec string
		wpo  bool
	}
	for _, s := range []string{
		"robust", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "apo_zero", "apo_down", "discopop",
		"discopop(tau=1)", "sigmoid_norm", "aot", "aot(label_smoothing=0.2)", "aot_unpaired", "sft",
		"dpo(divergence=forward_kl)", "dpo(divergence=js_divergence)", "dpo(divergence=alpha_divergence,divergence_alpha=0.5)",
		"dpo(divergence=alpha_divergence,divergence_alpha=1.5)", "robust(divergence=js)", "nca_pair(divergence=forward_kl)",
		"bpo:1,sft:0.2", "dpo:0.5,simpo:0.5,sft:1", "aot:1,orpo:0.3",
	} {
		out = append(out, struct {
			spec string
			wpo  bool
		}{s, false})
	}
	for _, s := range []string{"dpo", "bpo:1,sft:0.2", "apo_zero"} {
		out = append(out, struct {
			spec string
			wpo  bool
		}{s, true})
	}
	return out
}

// TestTRLLossFiniteDifference checks every new loss's analytic gradient against central finite
// differences of the batch loss (WPO's weight is held fixed, as it carries no gradient).
func TestTRLLossFiniteDifference(t *testing.T) {
	const h = 1e-6
	for _, cfg := range trlLossConfigs() {
		t.Run(fmt.Sprintf("%s/wpo=%v", cfg.spec, cfg.wpo), func(t *testing.T) {
			l, err := NewLossFromSpec(cfg.spec, nil, cfg.wpo)
			if err != nil {
				t.Fatal(err)
			}
			rng := newTestRand()
			for trial := 0; trial < 20; trial++ {
				batch := randomBatch(rng, 5)
				_, grads, err := l.Compute(batch)
				if err != nil {
					t.Fatal(err)
				}
				var weights []float64
				if cfg.wpo {
					for _, p := range batch {
						w, _ := WPOWeight(p)
						weights = append(weights, w)
					}
				}
				eval := func(i, side int, d float64) float64 {
					b := append([]PairLogps(nil), batch...)
					if side == 0 {
						b[i].PolicyChosen += d
					} else {
						b[i].PolicyRejected += d
					}
					if cfg.wpo {
						return fixedWeightLoss(t, l.(*ComposedLoss), b, weights)
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

// fixedWeightLoss evaluates a WPO-weighted composed loss with given pair weights.
func fixedWeightLoss(t *testing.T, c *ComposedLoss, batch []PairLogps, weights []float64) float64 {
	t.Helper()
	var total float64
	for _, term := range c.Components() {
		vals, _, err := term.Loss.(perPairLoss).perPair(batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			total += term.Weight * weights[i] * v / float64(len(batch))
		}
	}
	return total
}

// TestComposedLossIsWeightedSum: a composed loss's value and gradient equal the weighted sum of its
// components' own Compute results, and the metrics log each component.
func TestComposedLossIsWeightedSum(t *testing.T) {
	rng := newTestRand()
	for _, spec := range []string{"bpo:1,sft:0.2", "dpo(beta=0.2):0.5,ipo:0.25,sft:2", "aot:1,cal-dpo:0.1", "bpo:0,dpo:1"} {
		l, err := NewLossFromSpec(spec, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		c := l.(*ComposedLoss)
		batch := randomBatch(rng, 6)
		got, grads, err := c.Compute(batch)
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		wantG := make([]PairGrad, len(batch))
		parts := map[string]float64{}
		for _, term := range c.Components() {
			v, g, err := term.Loss.Compute(batch)
			if err != nil {
				t.Fatal(err)
			}
			parts[term.Loss.Name()] = v
			want += term.Weight * v
			for i := range g {
				wantG[i].Chosen += term.Weight * g[i].Chosen
				wantG[i].Rejected += term.Weight * g[i].Rejected
			}
		}
		if !closeTo(got, want, 1e-13) {
			t.Errorf("%s: loss %v, weighted sum of parts %v", spec, got, want)
		}
		for i := range grads {
			if !closeTo(grads[i].Chosen, wantG[i].Chosen, 1e-13) || !closeTo(grads[i].Rejected, wantG[i].Rejected, 1e-13) {
				t.Errorf("%s: pair %d grad %+v, weighted sum %+v", spec, i, grads[i], wantG[i])
			}
		}
		ma := NewMetricsAccumulator(c)
		ma.Add(batch[:3], mustLoss(t, c, batch[:3]))
		ma.Add(batch[3:], mustLoss(t, c, batch[3:]))
		sm, err := ma.Finish(1, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		for _, term := range c.Components() {
			sum += term.Weight * sm.Components[term.Loss.Name()]
		}
		if len(sm.Components) != len(c.Components()) || !closeTo(sum, sm.Loss, 1e-12) {
			t.Errorf("%s: metrics components %v do not add up to loss %v", spec, sm.Components, sm.Loss)
		}
	}
}

func mustLoss(t *testing.T, l Loss, batch []PairLogps) float64 {
	t.Helper()
	v, _, err := l.Compute(batch)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestLossSpecErrors: bad specs are refused before any work, naming the offending part.
func TestLossSpecErrors(t *testing.T) {
	tests := []struct {
		spec    string
		global  [][2]string
		wantErr string
	}{
		{"bpo:1,foo:0.2", nil, `term 2 "foo:0.2": unknown loss "foo"`},
		{"bpo:1,sft:-0.2", nil, `term 2 "sft:-0.2": weight must be a finite number >= 0, got -0.2`},
		{"bpo:NaN", nil, `term 1 "bpo:NaN": weight must be a finite number >= 0, got NaN`},
		{"bpo:+Inf,sft", nil, `weight must be a finite number >= 0, got +Inf`},
		{"bpo:x", nil, `term 1 "bpo:x": weight "x" is not a number`},
		{"bpo,,sft", nil, "term 2 is empty"},
		{"bpo:1,bpo:2", nil, "bpo is listed twice"},
		{"bpo:0,sft:0", nil, "the weights sum to 0"},
		{"dpo(gamma=1):1", nil, `term 1 "dpo(gamma=1):1": parameter gamma does not apply to loss dpo`},
		{"sft(beta=0.1)", nil, "parameter beta does not apply to loss sft"},
		{"dpo(beta=)", nil, "expected PARAM=VALUE"},
		{"dpo(beta=0.1", nil, "unbalanced '('"},
		{"dpo(temperature=1)", nil, `unknown loss parameter "temperature"`},
		{"dpo(beta=-1):1,sft:0.1", nil, `term 1 "dpo(beta=-1):1": loss dpo: beta must be a finite number > 0`},
		{"bpo:1,sft:0.2", [][2]string{{"gamma", "1"}}, `parameter gamma: no loss in "bpo:1,sft:0.2" uses it`},
		{"sft", [][2]string{{"beta", "0.1"}}, "parameter beta: no loss"},
		{"dpo(divergence=cubic)", nil, `unknown divergence "cubic"`},
		{"dpo(divergence_alpha=0.5)", nil, "divergence_alpha applies only with divergence=alpha_divergence"},
		{"dpo(divergence=alpha)", nil, "divergence_alpha must be a finite number > 0"},
		{"bpo(divergence=js)", nil, "parameter divergence does not apply to loss bpo"},
		{"exo_pair(label_smoothing=0)", nil, "label_smoothing (EXO's epsilon) must be in (0, 0.5)"},
		{"discopop(tau=0)", nil, "tau must be a finite number > 0"},
		{"robust(label_smoothing=0.5)", nil, "label_smoothing must be in [0, 0.5)"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			_, err := NewLossFromSpec(tc.spec, tc.global, false)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestLossSpecBuilds: globals reach only the losses that use them, term parameters override them,
// and a single plain term is the plain loss.
func TestLossSpecBuilds(t *testing.T) {
	l, err := NewLossFromSpec("BPO", [][2]string{{"alpha", "0.5"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.(*pairLoss); !ok || LossSpec(l) != "bpo(beta=0.1 alpha=0.5 f=logistic)" {
		t.Errorf("single term: %T %s", l, LossSpec(l))
	}
	l, err = NewLossFromSpec("bpo:1,sft:0.2,dpo(beta=0.3):0.5", [][2]string{{"beta", "0.05"}, {"alpha", "0.4"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := "wpo:bpo(beta=0.05 alpha=0.4 f=logistic):1,sft:0.2,dpo(beta=0.3):0.5"
	if got := LossSpec(l); got != want {
		t.Errorf("spec %s, want %s", got, want)
	}
	if l.Name() != "wpo:bpo:1,sft:0.2,dpo:0.5" || !l.NeedsReference() {
		t.Errorf("name %s needs ref %v", l.Name(), l.NeedsReference())
	}
	if g := l.(interface{ GapAdaptor() float64 }).GapAdaptor(); g != 0.4 {
		t.Errorf("gap adaptor %v, want BPO's 0.4", g)
	}
	s, err := NewLossFromSpec("sft:1,simpo:0.5", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if s.NeedsReference() {
		t.Error("sft + simpo should not need the reference")
	}
	if c, r := s.Rewards(pairP1); c != 2*-10.0/4 || r != 2*-15.0/5 {
		t.Errorf("rewards %v %v, want SimPO's", c, r)
	}
}

func newTestRand() *rand.Rand { return rand.New(rand.NewPCG(7, 11)) }

// TestTRLLossTraining trains the toy model briefly with each new loss (and composed and weighted
// variants) and checks that the reward margin grows; sft, which ignores the rejected side, must
// raise the chosen log-probs instead.
func TestTRLLossTraining(t *testing.T) {
	for _, cfg := range trlLossConfigs() {
		t.Run(fmt.Sprintf("%s/wpo=%v", cfg.spec, cfg.wpo), func(t *testing.T) {
			l, err := NewLossFromSpec(cfg.spec, nil, cfg.wpo)
			if err != nil {
				t.Fatal(err)
			}
			ms := trainToyLoss(t, l, t.TempDir(), 40)
			first := ms[0]
			if cfg.spec == "sft" {
				if last := meanLast(ms, 5, func(s StepMetrics) float64 { return s.LogpsChosen }); last <= first.LogpsChosen {
					t.Errorf("logps/chosen did not rise: first %v, last-5 mean %v", first.LogpsChosen, last)
				}
				return
			}
			last := meanLast(ms, 5, func(s StepMetrics) float64 { return s.RewardsMargins })
			if cfg.spec == "discopop" {
				// With tau 0.05 DiscoPOP is not monotone near 0: its loss in z = beta·h has a local
				// maximum at z = 0.072 and a local minimum at z = -0.12 (LOSSES.md), so training
				// from the reference (z = 0) settles at a slightly negative margin.
				if last > -0.05 || last < -0.2 {
					t.Errorf("DiscoPOP margin %v, want it near the local minimum -0.12", last)
				}
				return
			}
			if last <= first.RewardsMargins+0.05 {
				t.Errorf("margin did not grow: first %v, last-5 mean %v", first.RewardsMargins, last)
			}
		})
	}
}
