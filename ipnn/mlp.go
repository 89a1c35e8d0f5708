package ipnn

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Dense is a fully connected layer y = x·W + b with W stored In×Out row-major.
type Dense struct {
	In, Out int
	W, B    []float32
}

// MLP is a stack of Dense layers with ReLU between them and a linear last layer.
type MLP struct {
	Layers []Dense

	// forward caches (activations per layer input), reused between steps.
	acts []Mat
	// gradient buffers, same shapes as the parameters.
	gW, gB [][]float32
	dbuf   [2]Mat
}

// InitKind selects the weight initialisation.
type InitKind string

const (
	// InitTorch is PyTorch's nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)) for weights and biases.
	InitTorch InitKind = "torch"
	// InitUniform03 is U(-0.3, 0.3), used by the IPNN authors for the binary toy task.
	InitUniform03 InitKind = "uniform0.3"
)

// NewMLP builds an MLP with the given layer widths (input first, output last).
func NewMLP(widths []int, init InitKind, rng *rand.Rand) (*MLP, error) {
	if len(widths) < 2 {
		return nil, fmt.Errorf("mlp needs at least input and output widths, got %v", widths)
	}
	m := &MLP{}
	for i := 0; i+1 < len(widths); i++ {
		in, out := widths[i], widths[i+1]
		if in <= 0 || out <= 0 {
			return nil, fmt.Errorf("mlp layer %d: widths must be positive, got %d->%d", i, in, out)
		}
		d := Dense{In: in, Out: out, W: make([]float32, in*out), B: make([]float32, out)}
		bound := 1 / math.Sqrt(float64(in))
		if init == InitUniform03 {
			bound = 0.3
		}
		for j := range d.W {
			d.W[j] = float32((rng.Float64()*2 - 1) * bound)
		}
		for j := range d.B {
			d.B[j] = float32((rng.Float64()*2 - 1) * bound)
		}
		m.Layers = append(m.Layers, d)
	}
	return m, nil
}

// Widths returns the layer widths, input first.
func (m *MLP) Widths() []int {
	w := []int{m.Layers[0].In}
	for _, l := range m.Layers {
		w = append(w, l.Out)
	}
	return w
}

// Params returns the parameter slices in a fixed order (W0, B0, W1, B1, ...).
func (m *MLP) Params() [][]float32 {
	var p [][]float32
	for i := range m.Layers {
		p = append(p, m.Layers[i].W, m.Layers[i].B)
	}
	return p
}

// Grads returns the gradient slices matching Params, valid after Backward.
func (m *MLP) Grads() [][]float32 {
	m.allocGrads()
	var g [][]float32
	for i := range m.Layers {
		g = append(g, m.gW[i], m.gB[i])
	}
	return g
}

func (m *MLP) allocGrads() {
	if len(m.gW) == len(m.Layers) {
		return
	}
	m.gW = make([][]float32, len(m.Layers))
	m.gB = make([][]float32, len(m.Layers))
	for i, l := range m.Layers {
		m.gW[i] = make([]float32, len(l.W))
		m.gB[i] = make([]float32, len(l.B))
	}
}

// Forward computes the output logits for x (batch×In). The returned matrix is owned by
// the MLP and valid until the next Forward call. Activations are cached for Backward.
func (m *MLP) Forward(x Mat) Mat {
	if len(m.acts) != len(m.Layers)+1 {
		m.acts = make([]Mat, len(m.Layers)+1)
	}
	m.acts[0] = x
	for i, l := range m.Layers {
		out := ensure(m.acts[i+1], x.Rows, l.Out)
		for r := 0; r < out.Rows; r++ {
			copy(out.Row(r), l.B)
		}
		gemm(false, false, 1, m.acts[i], Mat{Rows: l.In, Cols: l.Out, Data: l.W}, 1, out)
		if i+1 < len(m.Layers) {
			for j, v := range out.Data {
				if v < 0 {
					out.Data[j] = 0
				}
			}
		}
		m.acts[i+1] = out
	}
	return m.acts[len(m.Layers)]
}

// Backward takes dL/dlogits for the last Forward and fills the parameter gradients
// (overwriting them). The input gradient is not computed.
func (m *MLP) Backward(dout Mat) {
	m.allocGrads()
	d := dout
	for i := len(m.Layers) - 1; i >= 0; i-- {
		l := m.Layers[i]
		gW := Mat{Rows: l.In, Cols: l.Out, Data: m.gW[i]}
		gemm(true, false, 1, m.acts[i], d, 0, gW)
		gb := m.gB[i]
		clear(gb)
		for r := 0; r < d.Rows; r++ {
			for j, v := range d.Row(r) {
				gb[j] += v
			}
		}
		if i == 0 {
			break
		}
		buf := ensure(m.dbuf[i%2], d.Rows, l.In)
		m.dbuf[i%2] = buf
		gemm(false, true, 1, d, Mat{Rows: l.In, Cols: l.Out, Data: l.W}, 0, buf)
		// ReLU derivative: the cached activation is the ReLU output of layer i-1.
		a := m.acts[i]
		for j, v := range a.Data {
			if v <= 0 {
				buf.Data[j] = 0
			}
		}
		d = buf
	}
}
