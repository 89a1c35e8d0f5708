package ipnn

import (
	"math"
	"testing"
)

// TestAdamStep checks two Adam steps against values computed by hand from PyTorch's
// update rule, with and without L2 weight decay (torch.optim.Adam's weight_decay).
func TestAdamStep(t *testing.T) {
	// reference: plain float64 implementation of torch.optim.Adam (amsgrad off).
	ref := func(p0 float64, grads []float64, lr, wd float64) float64 {
		p, m, v := p0, 0.0, 0.0
		for i, g := range grads {
			g += wd * p
			m = 0.9*m + 0.1*g
			v = 0.999*v + 0.001*g*g
			mh := m / (1 - math.Pow(0.9, float64(i+1)))
			vh := v / (1 - math.Pow(0.999, float64(i+1)))
			p -= lr * mh / (math.Sqrt(vh) + 1e-8)
		}
		return p
	}
	cases := []struct {
		name   string
		p0, wd float64
		grads  []float64
	}{
		{"no decay", 0.5, 0, []float64{0.2, -0.1}},
		{"decay, zero gradient", 0.3, 1e-2, []float64{0, 0}},
		{"decay against gradient", -1.5, 1e-1, []float64{0.05, 0.3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAdam(1e-2)
			a.WeightDecay = tc.wd
			p := []float32{float32(tc.p0)}
			for _, g := range tc.grads {
				a.Step([][]float32{p}, [][]float32{{float32(g)}})
			}
			want := ref(tc.p0, tc.grads, 1e-2, tc.wd)
			if math.Abs(float64(p[0])-want) > 1e-6 {
				t.Fatalf("p = %.8f, want %.8f", p[0], want)
			}
			if tc.wd > 0 && tc.grads[0] == 0 && math.Abs(float64(p[0])) >= math.Abs(tc.p0) {
				t.Fatalf("weight decay did not shrink %v: %v", tc.p0, p[0])
			}
		})
	}
}
