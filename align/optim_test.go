package align

import (
	"math"
	"strings"
	"testing"
)

// TestAdamWHandSteps follows one scalar through three AdamW updates computed by hand
// (lr 0.1, betas 0.9/0.999, eps 1e-8, weight decay 0.01):
//
//	t=1 g=0.5:  p = 1·0.999 = 0.999; m̂ = 0.5, v̂ = 0.25 → step 0.1·0.5/0.5 = 0.1 → 0.899
//	t=2 g=-1:   p = 0.899·0.999 = 0.898101; m = -0.055, m̂ = -0.055/0.19 = -0.289474;
//	            v = 0.00124975, v̂ = 0.00124975/0.001999 = 0.625188, √ = 0.790688 → p = 0.934711
//	t=3 g=0.25: p = 0.947446
func TestAdamWHandSteps(t *testing.T) {
	cfg := AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
	tests := []struct {
		grad, wantP, wantM, wantV float64
	}{
		{0.5, 0.899000002, 0.05, 0.00025},
		{-1, 0.9347113542385653, -0.055, 0.00124975},
		{0.25, 0.9474457089827375, -0.0245, 0.00131100025},
	}
	o, err := NewAdamW(cfg, []ParamShape{{"w", 1}})
	if err != nil {
		t.Fatal(err)
	}
	params := [][]float32{{1}}
	for i, tc := range tests {
		if err := o.Step(params, [][]float32{{float32(tc.grad)}}, 0.1); err != nil {
			t.Fatal(err)
		}
		m, v := o.Moments(0)
		if !closeTo(float64(params[0][0]), tc.wantP, 1e-6) || !closeTo(float64(m[0]), tc.wantM, 1e-6) || !closeTo(float64(v[0]), tc.wantV, 1e-6) {
			t.Errorf("step %d: p %v m %v v %v, want %v %v %v", i+1, params[0][0], m[0], v[0], tc.wantP, tc.wantM, tc.wantV)
		}
		if o.Steps() != int64(i+1) {
			t.Errorf("Steps() = %d, want %d", o.Steps(), i+1)
		}
	}
}

// TestAdamWMinimizesQuadratic runs AdamW on f(p) = Σ (p_i - c_i)^2 and expects convergence.
func TestAdamWMinimizesQuadratic(t *testing.T) {
	target := []float32{3, -2, 0.5, 7}
	o, err := NewAdamW(DefaultAdamWConfig(), []ParamShape{{"p", len(target)}})
	if err != nil {
		t.Fatal(err)
	}
	p := [][]float32{make([]float32, len(target))}
	g := [][]float32{make([]float32, len(target))}
	for step := 0; step < 3000; step++ {
		for i := range target {
			g[0][i] = 2 * (p[0][i] - target[i])
		}
		if err := o.Step(p, g, 0.05); err != nil {
			t.Fatal(err)
		}
	}
	for i := range target {
		if math.Abs(float64(p[0][i]-target[i])) > 1e-2 {
			t.Errorf("p[%d] = %v, want %v", i, p[0][i], target[i])
		}
	}
}

func TestAdamWErrors(t *testing.T) {
	o, err := NewAdamW(DefaultAdamWConfig(), []ParamShape{{"a", 2}, {"b", 1}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		params  [][]float32
		grads   [][]float32
		lr      float64
		wantErr string
	}{
		{"count", [][]float32{{1, 2}}, [][]float32{{1, 2}}, 0.1, "got 1 parameter and 1 gradient tensors, want 2"},
		{"size", [][]float32{{1, 2}, {1, 2}}, [][]float32{{1, 2}, {1}}, 0.1, `tensor "b": got 2 values and 1 gradients`},
		{"nan", [][]float32{{1, 2}, {3}}, [][]float32{{1, float32(math.NaN())}, {1}}, 0.1, `tensor "a": gradient 1 is NaN`},
		{"lr", [][]float32{{1, 2}, {3}}, [][]float32{{1, 2}, {1}}, -1, "learning rate must be a finite number >= 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]float32(nil), tc.params[0]...)
			err := o.Step(tc.params, tc.grads, tc.lr)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			}
			if o.Steps() != 0 || tc.params[0][0] != before[0] {
				t.Fatalf("failed step changed state")
			}
		})
	}
	cfgErrs := []struct {
		cfg     AdamWConfig
		shapes  []ParamShape
		wantErr string
	}{
		{AdamWConfig{Beta1: 1, Beta2: 0.999, Eps: 1e-8}, []ParamShape{{"a", 1}}, "beta1 must be in [0, 1)"},
		{AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 0}, []ParamShape{{"a", 1}}, "eps must be > 0"},
		{AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: -1}, []ParamShape{{"a", 1}}, "weight_decay must be >= 0"},
		{DefaultAdamWConfig(), []ParamShape{{"a", 1}, {"a", 2}}, `tensor "a" listed twice`},
		{DefaultAdamWConfig(), []ParamShape{{"a", 0}}, "size must be > 0"},
		{DefaultAdamWConfig(), nil, "no parameter tensors"},
	}
	for _, tc := range cfgErrs {
		if _, err := NewAdamW(tc.cfg, tc.shapes); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("NewAdamW(%+v, %v) error = %v, want %q", tc.cfg, tc.shapes, err, tc.wantErr)
		}
	}
}

func TestScheduleValues(t *testing.T) {
	const base = 5e-6
	tests := []struct {
		kind          string
		warmup, total int
		step          int
		want          float64
	}{
		{"constant", 10, 0, 0, 0}, // transformers' first warmup step has rate 0
		{"constant", 10, 0, 5, base * 0.5},
		{"constant", 10, 0, 10, base},
		{"constant", 0, 0, 0, base},
		{"constant", 10, 0, 100000, base},
		{"linear", 10, 110, 3, base * 0.3},
		{"linear", 10, 110, 10, base},
		{"linear", 10, 110, 60, base * 0.5}, // (110-60)/(110-10)
		{"linear", 10, 110, 109, base * 0.01},
		{"linear", 10, 110, 110, 0},
		{"linear", 10, 110, 200, 0},
		{"cosine", 10, 110, 10, base},
		{"cosine", 10, 110, 35, base * 0.8535533905932737}, // 0.5(1+cos(π/4))
		{"cosine", 10, 110, 60, base * 0.5},
		{"cosine", 10, 110, 110, 0},
		{"cosine", 0, 4, 2, base * 0.5},
	}
	for _, tc := range tests {
		s, err := NewSchedule(tc.kind, base, tc.warmup, tc.total)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if got := s.LR(tc.step); math.Abs(got-tc.want) > 1e-18 {
			t.Errorf("%s warmup %d total %d: LR(%d) = %g, want %g", tc.kind, tc.warmup, tc.total, tc.step, got, tc.want)
		}
	}
}

func TestScheduleErrors(t *testing.T) {
	tests := []struct {
		kind          string
		lr            float64
		warmup, total int
		wantErr       string
	}{
		{"step", 1e-5, 0, 10, `unknown lr schedule "step"`},
		{"cosine", 0, 0, 10, "learning rate must be a finite number > 0"},
		{"cosine", 1e-5, -1, 10, "warmup steps must be >= 0"},
		{"linear", 1e-5, 0, 0, "linear schedule needs total steps > 0"},
		{"cosine", 1e-5, 20, 10, "warmup steps (20) exceed total steps (10)"},
	}
	for _, tc := range tests {
		if _, err := NewSchedule(tc.kind, tc.lr, tc.warmup, tc.total); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("NewSchedule(%+v) error = %v, want %q", tc, err, tc.wantErr)
		}
	}
}

func TestWarmupStepsFromRatio(t *testing.T) {
	tests := []struct {
		ratio float64
		total int
		want  int
	}{
		{0.03, 1000, 30}, {0.03, 100, 3}, {0.03, 10, 1}, {0, 10, 0}, {0.1, 1, 1},
	}
	for _, tc := range tests {
		got, err := WarmupStepsFromRatio(tc.ratio, tc.total)
		if err != nil || got != tc.want {
			t.Errorf("WarmupStepsFromRatio(%v, %d) = %d, %v; want %d", tc.ratio, tc.total, got, err, tc.want)
		}
	}
	if _, err := WarmupStepsFromRatio(1.5, 10); err == nil {
		t.Error("ratio 1.5 accepted")
	}
}

func TestClipGradNorm(t *testing.T) {
	tests := []struct {
		name     string
		grads    [][]float32
		maxNorm  float64
		wantNorm float64
		want     [][]float32
	}{
		{"clipped", [][]float32{{3}, {0, 4}}, 1, 5, [][]float32{{0.6}, {0, 0.8}}},
		{"below max", [][]float32{{3}, {0, 4}}, 10, 5, [][]float32{{3}, {0, 4}}},
		{"measure only", [][]float32{{3}, {0, 4}}, 0, 5, [][]float32{{3}, {0, 4}}},
		{"zero", [][]float32{{0, 0}}, 1, 0, [][]float32{{0, 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			norm, err := ClipGradNorm(tc.grads, nil, tc.maxNorm)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(norm-tc.wantNorm) > 1e-9 {
				t.Errorf("norm = %v, want %v", norm, tc.wantNorm)
			}
			for i := range tc.want {
				for j := range tc.want[i] {
					if math.Abs(float64(tc.grads[i][j]-tc.want[i][j])) > 1e-6 {
						t.Errorf("grad[%d][%d] = %v, want %v", i, j, tc.grads[i][j], tc.want[i][j])
					}
				}
			}
		})
	}
	g := [][]float32{{1}, {2, float32(math.Inf(1))}}
	if _, err := ClipGradNorm(g, []string{"x.lora_a", "x.lora_b"}, 1); err == nil || !strings.Contains(err.Error(), `tensor "x.lora_b", element 1, is +Inf`) {
		t.Fatalf("error = %v", err)
	}
	if g[0][0] != 1 {
		t.Fatal("gradients changed despite the error")
	}
}

// TestGradAccumulatorMatchesFullBatch accumulates DPO gradients of two micro-batches (2 and 6
// pairs, treating the pairs' policy log-probs as parameters) and compares with the full batch.
func TestGradAccumulatorMatchesFullBatch(t *testing.T) {
	loss, err := NewLoss("dpo", LossParams{Beta: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	batch := []PairLogps{pairP1, pairP2, pairTIE, pairP2, pairP1, pairTIE, pairP1, pairP2}
	batch[3].PolicyChosen, batch[5].PolicyRejected = -30, -2
	shapes := []ParamShape{{"chosen", len(batch)}, {"rejected", len(batch)}}
	toTensors := func(offset int, grads []PairGrad) [][]float32 {
		t := [][]float32{make([]float32, len(batch)), make([]float32, len(batch))}
		for i, g := range grads {
			t[0][offset+i], t[1][offset+i] = float32(g.Chosen), float32(g.Rejected)
		}
		return t
	}
	acc, err := NewGradAccumulator(shapes)
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range [][2]int{{0, 2}, {2, 8}} {
		_, g, err := loss.Compute(batch[mb[0]:mb[1]])
		if err != nil {
			t.Fatal(err)
		}
		if err := acc.Add(toTensors(mb[0], g), mb[1]-mb[0]); err != nil {
			t.Fatal(err)
		}
	}
	got, err := acc.Average(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, full, err := loss.Compute(batch)
	if err != nil {
		t.Fatal(err)
	}
	want := toTensors(0, full)
	for i := range want {
		for j := range want[i] {
			if math.Abs(float64(got[i][j]-want[i][j])) > 1e-8 {
				t.Errorf("tensor %d[%d] = %v, want %v", i, j, got[i][j], want[i][j])
			}
		}
	}
	if acc.Pairs() != 8 || acc.MicroBatches() != 2 {
		t.Errorf("pairs %d micro %d", acc.Pairs(), acc.MicroBatches())
	}
	acc.Reset()
	if _, err := acc.Average(nil); err == nil {
		t.Error("Average after Reset succeeded")
	}
	if err := acc.Add([][]float32{{1}}, 1); err == nil {
		t.Error("wrong tensor count accepted")
	}
}
