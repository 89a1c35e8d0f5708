package align

import (
	"errors"
	"fmt"
	"math"
)

// ParamShape names one trainable tensor and its number of elements. Optimizer state is tied to
// the names and sizes so that a checkpoint cannot be applied to different tensors.
type ParamShape struct {
	Name string
	Size int
}

// AdamWConfig holds AdamW's hyper-parameters (the learning rate comes from a Schedule per step).
type AdamWConfig struct {
	Beta1       float64 // first-moment decay, in [0, 1)
	Beta2       float64 // second-moment decay, in [0, 1)
	Eps         float64 // denominator epsilon, > 0
	WeightDecay float64 // decoupled weight decay, >= 0 (applied as p -= lr·wd·p)
}

// DefaultAdamWConfig returns PyTorch's/TRL's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
func DefaultAdamWConfig() AdamWConfig {
	return AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0}
}

// Validate reports the first out-of-range hyper-parameter.
func (c AdamWConfig) Validate() error {
	switch {
	case !isFinite(c.Beta1) || c.Beta1 < 0 || c.Beta1 >= 1:
		return fmt.Errorf("adamw: beta1 must be in [0, 1), got %v", c.Beta1)
	case !isFinite(c.Beta2) || c.Beta2 < 0 || c.Beta2 >= 1:
		return fmt.Errorf("adamw: beta2 must be in [0, 1), got %v", c.Beta2)
	case !isFinite(c.Eps) || c.Eps <= 0:
		return fmt.Errorf("adamw: eps must be > 0, got %v", c.Eps)
	case !isFinite(c.WeightDecay) || c.WeightDecay < 0:
		return fmt.Errorf("adamw: weight_decay must be >= 0, got %v", c.WeightDecay)
	}
	return nil
}

// AdamW is the AdamW optimizer (Loshchilov & Hutter; PyTorch's torch.optim.AdamW update) over a
// fixed list of float32 tensors. Moments are float32; the update is computed in float64.
type AdamW struct {
	cfg    AdamWConfig
	shapes []ParamShape
	m, v   [][]float32
	t      int64
}

// NewAdamW returns an optimizer with zero moments for the given tensors.
func NewAdamW(cfg AdamWConfig, shapes []ParamShape) (*AdamW, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkShapes(shapes); err != nil {
		return nil, fmt.Errorf("adamw: %w", err)
	}
	o := &AdamW{cfg: cfg, shapes: append([]ParamShape(nil), shapes...)}
	o.m = make([][]float32, len(shapes))
	o.v = make([][]float32, len(shapes))
	for i, s := range shapes {
		o.m[i] = make([]float32, s.Size)
		o.v[i] = make([]float32, s.Size)
	}
	return o, nil
}

func checkShapes(shapes []ParamShape) error {
	if len(shapes) == 0 {
		return errors.New("no parameter tensors")
	}
	seen := make(map[string]bool, len(shapes))
	for i, s := range shapes {
		if s.Name == "" {
			return fmt.Errorf("tensor %d has no name", i)
		}
		if seen[s.Name] {
			return fmt.Errorf("tensor %q listed twice", s.Name)
		}
		seen[s.Name] = true
		if s.Size <= 0 {
			return fmt.Errorf("tensor %q: size must be > 0, got %d", s.Name, s.Size)
		}
	}
	return nil
}

// Config returns the hyper-parameters.
func (o *AdamW) Config() AdamWConfig { return o.cfg }

// Steps returns the number of updates taken (the t of the bias corrections).
func (o *AdamW) Steps() int64 { return o.t }

// Shapes returns the tensors the optimizer was made for.
func (o *AdamW) Shapes() []ParamShape { return append([]ParamShape(nil), o.shapes...) }

// Moments returns the first and second moments of tensor i (shared, not copied).
func (o *AdamW) Moments(i int) (m, v []float32) { return o.m[i], o.v[i] }

// CheckShapes reports whether the optimizer state belongs to exactly these tensors.
func (o *AdamW) CheckShapes(want []ParamShape) error {
	if len(want) != len(o.shapes) {
		return fmt.Errorf("optimizer state has %d tensors, the model has %d", len(o.shapes), len(want))
	}
	for i, s := range want {
		if o.shapes[i] != s {
			return fmt.Errorf("optimizer tensor %d is %q (%d values), the model's is %q (%d values)",
				i, o.shapes[i].Name, o.shapes[i].Size, s.Name, s.Size)
		}
	}
	return nil
}

// checkTensors verifies that params/grads match the shapes and that the gradients are finite.
func (o *AdamW) checkTensors(params, grads [][]float32) error {
	if len(params) != len(o.shapes) || len(grads) != len(o.shapes) {
		return fmt.Errorf(
			"adamw: got %d parameter and %d gradient tensors, want %d",
			len(params),
			len(grads),
			len(o.shapes),
		)
	}
	for i, s := range o.shapes {
		if len(params[i]) != s.Size || len(grads[i]) != s.Size {
			return fmt.Errorf(
				"adamw: tensor %q: got %d values and %d gradients, want %d",
				s.Name,
				len(params[i]),
				len(grads[i]),
				s.Size,
			)
		}
		for j, g := range grads[i] {
			if !isFinite(float64(g)) {
				return fmt.Errorf("adamw: tensor %q: gradient %d is %v", s.Name, j, g)
			}
		}
	}
	return nil
}

// Step applies one AdamW update with learning rate lr:
//
//	p ← p − lr·wd·p;  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
//	p ← p − lr · (m/(1−β1^t)) / (√(v/(1−β2^t)) + eps)
//
// Nothing is changed when an error is returned (wrong shapes, non-finite gradient or lr).
func (o *AdamW) Step(params, grads [][]float32, lr float64) error {
	if !isFinite(lr) || lr < 0 {
		return fmt.Errorf("adamw: learning rate must be a finite number >= 0, got %v", lr)
	}
	if err := o.checkTensors(params, grads); err != nil {
		return err
	}
	o.t++
	b1, b2 := o.cfg.Beta1, o.cfg.Beta2
	bc1 := 1 - math.Pow(b1, float64(o.t))
	bc2 := 1 - math.Pow(b2, float64(o.t))
	decay := 1 - lr*o.cfg.WeightDecay
	stepSize := lr / bc1
	sqrtBC2 := math.Sqrt(bc2)
	for i := range params {
		p := params[i]
		g, m, v := grads[i][:len(p)], o.m[i][:len(p)], o.v[i][:len(p)] // bounds-check hints
		for j := range p {
			gj := float64(g[j])
			mj := b1*float64(m[j]) + (1-b1)*gj
			vj := b2*float64(v[j]) + (1-b2)*gj*gj
			m[j], v[j] = float32(mj), float32(vj)
			pj := float64(p[j]) * decay
			p[j] = float32(pj - stepSize*mj/(math.Sqrt(vj)/sqrtBC2+o.cfg.Eps))
		}
	}
	return nil
}
