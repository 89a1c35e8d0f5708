package ipnn

import (
	"fmt"
	"math/rand/v2"
)

// Kind names the output layer of a model.
type Kind string

const (
	// KindIPNN is the IPNN split output layer with observation-based inference.
	KindIPNN Kind = "ipnn"
	// KindSoftmax is the plain softmax baseline on the same backbone.
	KindSoftmax Kind = "softmax"
)

// ModelConfig describes a model: backbone widths, output layer and tiling.
type ModelConfig struct {
	Kind Kind `json:"kind"`
	// Hidden are the hidden layer widths of the MLP backbone (ReLU after each).
	Hidden []int    `json:"hidden"`
	Init   InitKind `json:"init"`
	// Tiles > 1 applies the same backbone to Tiles equal slices of each input and
	// concatenates the outputs (e.g. ten digit images -> ten split groups).
	Tiles int `json:"tiles"`
	// TieTiles (with Tiles > 1) gives all tiles one shared IPNN head: Head describes the
	// split of ONE tile, every tile's outputs are observed together, the label of tile j is
	// decimal digit j (most significant first) of the class, and the predicted class is
	// composed from the tiles' predicted digits.
	TieTiles bool `json:"tie_tiles,omitempty"`
	// SignedInputs records that the model was trained on -1/+1 coded bits (toy task with
	// --signed-bits), so that evaluation rebuilds the same inputs.
	SignedInputs bool `json:"signed_inputs,omitempty"`
	// Classes is the softmax baseline's class count.
	Classes int `json:"classes,omitempty"`
	// Head configures the IPNN output (Kind ipnn).
	Head HeadConfig `json:"head"`
}

// Model is a backbone with an IPNN or softmax output.
type Model struct {
	Cfg  ModelConfig
	Net  *MLP
	Head *Head
	in   int
}

// NewModel builds a freshly initialised model for inputs of width in.
func NewModel(cfg ModelConfig, in int, rng *rand.Rand) (*Model, error) {
	if cfg.Tiles < 1 {
		cfg.Tiles = 1
	}
	if in%cfg.Tiles != 0 {
		return nil, fmt.Errorf("input width %d is not divisible into %d tiles", in, cfg.Tiles)
	}
	if cfg.Init == "" {
		cfg.Init = InitTorch
	}
	m := &Model{Cfg: cfg, in: in}
	var out int
	switch cfg.Kind {
	case KindIPNN:
		h, err := NewHead(cfg.Head)
		if err != nil {
			return nil, fmt.Errorf("ipnn head: %w", err)
		}
		m.Head = h
		switch {
		case cfg.TieTiles:
			out = h.Split().Nodes()
		case h.Split().Nodes()%cfg.Tiles != 0:
			return nil, fmt.Errorf("split has %d nodes, not divisible into %d tiles", h.Split().Nodes(), cfg.Tiles)
		default:
			out = h.Split().Nodes() / cfg.Tiles
		}
	case KindSoftmax:
		if cfg.Classes < 2 {
			return nil, fmt.Errorf("softmax model needs >= 2 classes, got %d", cfg.Classes)
		}
		if cfg.Tiles != 1 {
			return nil, fmt.Errorf("softmax model does not support tiles")
		}
		out = cfg.Classes
	default:
		return nil, fmt.Errorf("unknown model kind %q (want ipnn or softmax)", cfg.Kind)
	}
	widths := append([]int{in / cfg.Tiles}, cfg.Hidden...)
	widths = append(widths, out)
	net, err := NewMLP(widths, cfg.Init, rng)
	if err != nil {
		return nil, err
	}
	m.Net = net
	return m, nil
}

// InputDim is the expected input width.
func (m *Model) InputDim() int { return m.in }

// logits runs the backbone on x (batch×InputDim) and returns batch×outputs logits
// ((batch·tiles)×tile outputs with tied tiles).
func (m *Model) logits(x Mat) Mat {
	t := m.Cfg.Tiles
	out := m.Net.Forward(x.reshape(x.Rows*t, x.Cols/t))
	if m.Cfg.TieTiles {
		return out
	}
	return out.reshape(x.Rows, out.Cols*t)
}

// tileLabels expands classes into per-tile digit labels (tied tiles).
func (m *Model) tileLabels(y []int64) []int64 {
	t := m.Cfg.Tiles
	out := make([]int64, len(y)*t)
	for b, v := range y {
		for j := t - 1; j >= 0; j-- {
			out[b*t+j] = v % 10
			v /= 10
		}
	}
	return out
}

// step computes loss and gradients for a labelled batch and updates the observation.
func (m *Model) step(x Mat, y []int64, dl *Mat) (float64, []float64) {
	lg := m.logits(x)
	*dl = ensure(*dl, lg.Rows, lg.Cols)
	var loss float64
	var parts []float64
	switch {
	case m.Cfg.TieTiles:
		// the head's loss is a mean over tiles; the number's loss is the sum over digits.
		loss, parts = m.Head.Step(lg, m.tileLabels(y), *dl)
		t := float64(m.Cfg.Tiles)
		loss *= t
		for i := range dl.Data {
			dl.Data[i] *= float32(t)
		}
		m.Net.Backward(*dl)
		return loss, parts
	case m.Head != nil:
		loss, parts = m.Head.Step(lg, y, *dl)
	default:
		loss = softmaxLoss(lg, y, *dl)
	}
	t := m.Cfg.Tiles
	m.Net.Backward(dl.reshape(lg.Rows*t, lg.Cols/t))
	return loss, parts
}

// Predict returns the predicted class of each row of x.
func (m *Model) Predict(x Mat) []int64 {
	lg := m.logits(x)
	switch {
	case m.Cfg.TieTiles:
		digits := m.Head.Predict(lg)
		t := m.Cfg.Tiles
		pred := make([]int64, x.Rows)
		for b := range pred {
			for j := 0; j < t; j++ {
				pred[b] = pred[b]*10 + digits[b*t+j]
			}
		}
		return pred
	case m.Head != nil:
		return m.Head.Predict(lg)
	}
	return softmaxPredict(lg)
}

// Logits returns a copy of the output logits for x.
func (m *Model) Logits(x Mat) Mat {
	lg := m.logits(x)
	return Mat{Rows: lg.Rows, Cols: lg.Cols, Data: append([]float32(nil), lg.Data...)}
}
