package ipnn

import "math"

// Adam is the Adam optimiser (Kingma & Ba) with PyTorch's defaults. WeightDecay is
// torch.optim.Adam's weight_decay: an L2 term WeightDecay*p added to every gradient before
// the moment estimates (coupled, not AdamW's decoupled decay).
type Adam struct {
	LR, Beta1, Beta2, Eps float64
	WeightDecay           float64
	step                  int
	m, v                  [][]float32
}

// NewAdam returns Adam with learning rate lr and betas 0.9/0.999, eps 1e-8.
func NewAdam(lr float64) *Adam {
	return &Adam{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// Step applies one update to params using grads (same shapes, same order every call).
func (a *Adam) Step(params, grads [][]float32) {
	if a.m == nil {
		a.m = make([][]float32, len(params))
		a.v = make([][]float32, len(params))
		for i, p := range params {
			a.m[i] = make([]float32, len(p))
			a.v[i] = make([]float32, len(p))
		}
	}
	a.step++
	b1, b2 := float32(a.Beta1), float32(a.Beta2)
	c1 := 1 - math.Pow(a.Beta1, float64(a.step))
	c2 := 1 - math.Pow(a.Beta2, float64(a.step))
	stepSize := float32(a.LR / c1)
	sc2 := float32(1 / math.Sqrt(c2))
	eps := float32(a.Eps)
	wd := float32(a.WeightDecay)
	for i, p := range params {
		g, m, v := grads[i], a.m[i], a.v[i]
		for j := range p {
			gj := g[j] + wd*p[j]
			m[j] = b1*m[j] + (1-b1)*gj
			v[j] = b2*v[j] + (1-b2)*gj*gj
			p[j] -= stepSize * m[j] / (float32(math.Sqrt(float64(v[j])))*sc2 + eps)
		}
	}
}
