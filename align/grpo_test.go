package align

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func near(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func TestGroupAdvantages(t *testing.T) {
	s := math.Sqrt(1.0 / 3) // sample std of {1,0,0,1}
	for _, tc := range []struct {
		name    string
		rewards []float64
		size    int
		scale   bool
		want    []float64
		wantErr string
	}{
		{"scaled", []float64{1, 0, 0, 1}, 4, true, []float64{0.5 / (s + 1e-4), -0.5 / (s + 1e-4), -0.5 / (s + 1e-4), 0.5 / (s + 1e-4)}, ""},
		{"unscaled (Dr. GRPO)", []float64{1, 0, 0, 1}, 4, false, []float64{0.5, -0.5, -0.5, 0.5}, ""},
		{"two groups, one all correct", []float64{1, 1, 0, 1}, 2, true, []float64{0, 0, -0.5 / (math.Sqrt(0.5) + 1e-4), 0.5 / (math.Sqrt(0.5) + 1e-4)}, ""},
		{"group of one", []float64{1}, 1, true, nil, "group size must be >= 2"},
		{"ragged", []float64{1, 0, 1}, 2, true, nil, "do not split"},
		{"nan reward", []float64{1, math.NaN()}, 2, true, nil, "not finite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := GroupAdvantages(tc.rewards, tc.size, tc.scale)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if !near(got[i], tc.want[i], 1e-12) {
					t.Errorf("advantage %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestGRPOConfigValidate(t *testing.T) {
	ok := GRPOConfig{LossType: GRPOLossGRPO, EpsilonLow: 0.2, EpsilonHigh: 0.28, Beta: 0.04}
	for _, tc := range []struct {
		name    string
		edit    func(*GRPOConfig)
		wantErr string
	}{
		{"ok", func(*GRPOConfig) {}, ""},
		{"unknown type", func(c *GRPOConfig) { c.LossType = "ppo" }, "unknown loss type"},
		{"dr_grpo without length", func(c *GRPOConfig) { c.LossType = GRPOLossDrGRPO }, "max completion length"},
		{"epsilon 0", func(c *GRPOConfig) { c.EpsilonLow = 0 }, "epsilon"},
		{"epsilon 1", func(c *GRPOConfig) { c.EpsilonLow = 1 }, "epsilon"},
		{"epsilon-high nan", func(c *GRPOConfig) { c.EpsilonHigh = math.NaN() }, "epsilon-high"},
		{"beta inf", func(c *GRPOConfig) { c.Beta = math.Inf(1) }, "beta"},
		{"beta negative", func(c *GRPOConfig) { c.Beta = -1 }, "beta"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate() = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestTokenWeights(t *testing.T) {
	lengths := []int{2, 4}
	for _, tc := range []struct {
		typ  string
		want []float64
	}{
		{GRPOLossGRPO, []float64{1.0 / 4, 1.0 / 8}}, // mean over each completion's tokens, then over 2 completions
		{GRPOLossDAPO, []float64{1.0 / 6, 1.0 / 6}}, // all 6 tokens of the step
		{GRPOLossDrGRPO, []float64{1.0 / 20, 1.0 / 20}},
	} {
		w, err := GRPOConfig{LossType: tc.typ, MaxCompletionLength: 10}.TokenWeights(lengths)
		if err != nil {
			t.Fatal(err)
		}
		for i := range w {
			if !near(w[i], tc.want[i], 1e-15) {
				t.Errorf("%s: weight %d = %v, want %v", tc.typ, i, w[i], tc.want[i])
			}
		}
	}
	if _, err := (GRPOConfig{LossType: GRPOLossGRPO}).TokenWeights([]int{3, 0}); err == nil {
		t.Error("an empty completion was accepted")
	}
}

// TestGRPOObjectiveHandComputed checks the per-token loss, coefficients and clip counts on cases
// worked out by hand (epsilon 0.2 / 0.28, weights 1).
func TestGRPOObjectiveHandComputed(t *testing.T) {
	c := GRPOConfig{LossType: GRPOLossGRPO, EpsilonLow: 0.2, EpsilonHigh: 0.28}
	ln := math.Log
	for _, tc := range []struct {
		name       string
		adv, rho   float64
		loss, coef float64
		low, high  int
	}{
		{"on-policy, positive advantage", 2, 1, -2, -2, 0, 0},
		{"on-policy, negative advantage", -1, 1, 1, 1, 0, 0},
		{"ratio above range, A > 0: clipped", 1, 1.5, -1.28, 0, 0, 1},
		{"ratio above range, A < 0: not clipped", -1, 1.5, 1.5, 1.5, 0, 0},
		{"ratio below range, A < 0: clipped", -1, 0.5, 0.8, 0, 1, 0},
		{"ratio below range, A > 0: not clipped", 1, 0.5, -0.5, -0.5, 0, 0},
		{"inside the range", 1, 1.1, -1.1, -1.1, 0, 0},
		{"zero advantage", 0, 1.7, 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := []GRPOSample{{Advantage: tc.adv, OldLogps: []float64{-1}}}
			loss, coef, st, err := c.Objective(s, []float64{1}, [][]float64{{-1 + ln(tc.rho)}})
			if err != nil {
				t.Fatal(err)
			}
			if !near(loss, tc.loss, 1e-12) || !near(coef[0][0], tc.coef, 1e-12) {
				t.Errorf("loss %v coef %v, want %v %v", loss, coef[0][0], tc.loss, tc.coef)
			}
			if st.LowClip != tc.low || st.HighClip != tc.high || st.Tokens != 1 {
				t.Errorf("stats %+v, want low %d high %d", st, tc.low, tc.high)
			}
		})
	}
	// KL: ref - logp = d gives k3 = e^d - d - 1 and dk3/dlogp = 1 - e^d.
	ck := c
	ck.Beta = 0.5
	d := 0.3
	s := []GRPOSample{{Advantage: 0, OldLogps: []float64{-2}, RefLogps: []float64{-2 + d}}}
	loss, coef, st, err := ck.Objective(s, []float64{0.25}, [][]float64{{-2}})
	if err != nil {
		t.Fatal(err)
	}
	k3 := math.Exp(d) - d - 1
	if !near(loss, 0.25*0.5*k3, 1e-12) || !near(coef[0][0], 0.25*0.5*(1-math.Exp(d)), 1e-12) || !near(st.KLSum, k3, 1e-12) {
		t.Errorf("KL: loss %v coef %v kl %v, want %v %v %v", loss, coef[0][0], st.KLSum, 0.125*k3, 0.125*(1-math.Exp(d)), k3)
	}
	if _, _, _, err := ck.Objective([]GRPOSample{{OldLogps: []float64{-1}}}, []float64{1}, [][]float64{{-1}}); err == nil || !strings.Contains(err.Error(), "reference") {
		t.Errorf("beta > 0 without reference log-probs: %v", err)
	}
}

// TestGRPOObjectiveFiniteDifferences checks the coefficients against central differences of the
// loss, for every loss type, away from the clipping boundaries.
func TestGRPOObjectiveFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var samples []GRPOSample
	var logps [][]float64
	var lengths []int
	for i := range 6 {
		n := 1 + rng.IntN(5)
		s := GRPOSample{Advantage: rng.NormFloat64()}
		var lp []float64
		for range n {
			old := -3 * rng.Float64()
			s.OldLogps = append(s.OldLogps, old)
			s.RefLogps = append(s.RefLogps, old+0.5*rng.NormFloat64())
			lp = append(lp, old+0.4*rng.NormFloat64()) // some ratios outside [0.8, 1.28]
		}
		if i == 0 {
			s.Advantage = 0
		}
		samples, logps, lengths = append(samples, s), append(logps, lp), append(lengths, n)
	}
	for _, typ := range GRPOLossTypes() {
		c := GRPOConfig{LossType: typ, EpsilonLow: 0.2, EpsilonHigh: 0.28, Beta: 0.1, MaxCompletionLength: 8}
		w, err := c.TokenWeights(lengths)
		if err != nil {
			t.Fatal(err)
		}
		_, coef, st, err := c.Objective(samples, w, logps)
		if err != nil {
			t.Fatal(err)
		}
		if st.LowClip+st.HighClip == 0 {
			t.Fatalf("%s: no token clipped: the case does not test clipping", typ)
		}
		for i := range logps {
			for k := range logps[i] {
				orig := logps[i][k]
				const h = 1e-6
				logps[i][k] = orig + h
				up, _, _, _ := c.Objective(samples, w, logps)
				logps[i][k] = orig - h
				down, _, _, _ := c.Objective(samples, w, logps)
				logps[i][k] = orig
				if fd := (up - down) / (2 * h); math.Abs(fd-coef[i][k]) > 1e-7 {
					t.Errorf("%s: token %d/%d: coefficient %v, finite difference %v", typ, i, k, coef[i][k], fd)
				}
			}
		}
	}
}
