package align

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/bpo-dev/bpo/lora"
)

// BaseTensor describes a frozen 2-D weight of the base model: its GGUF name and its shape, with
// y = W x mapping NIn inputs to NOut outputs (GGUF ne = [NIn, NOut]).
type BaseTensor struct {
	Name      string
	NIn, NOut int
}

// LoRAConfig chooses the adapter: rank r, alpha (scale alpha/r), target modules and init seed.
type LoRAConfig struct {
	Rank    int
	Alpha   float64
	Targets []string // subset of lora.Targets()
	Seed    uint64
}

// DefaultLoRAConfig returns the paper's recipe: r 16, alpha 16, all seven projections.
func DefaultLoRAConfig() LoRAConfig {
	return LoRAConfig{Rank: 16, Alpha: 16, Targets: lora.Targets()}
}

// LoRA is the set of trainable adapter tensors of a model.
type LoRA struct {
	Rank    int
	Alpha   float64
	Targets []string
	Tensors []*lora.Tensor // ordered by layer, then by lora.Targets order; each of rank Rank
}

func validateLoRAHyper(rank int, alpha float64, targets []string) error {
	if rank <= 0 {
		return fmt.Errorf("lora: rank must be > 0, got %d", rank)
	}
	if !isFinite(alpha) || alpha <= 0 {
		return fmt.Errorf("lora: alpha must be a finite number > 0, got %v", alpha)
	}
	if len(targets) == 0 {
		return errors.New("lora: no target modules")
	}
	for _, t := range targets {
		if lora.TargetIndex(t) < 0 {
			return fmt.Errorf("lora: unknown target %q: expected some of %s", t, strings.Join(lora.Targets(), ", "))
		}
	}
	return nil
}

// NewLoRA creates adapter tensors for every base tensor "blk.N.<target>.weight" whose module is
// among cfg.Targets. A is drawn from U(-1/√NIn, 1/√NIn) (PEFT's Kaiming-uniform with a = √5) from
// a PCG seeded by cfg.Seed and the tensor name; B is zero, so the adapted model equals the base.
func NewLoRA(cfg LoRAConfig, base []BaseTensor) (*LoRA, error) {
	if err := validateLoRAHyper(cfg.Rank, cfg.Alpha, cfg.Targets); err != nil {
		return nil, err
	}
	want := make(map[string]bool)
	for _, t := range cfg.Targets {
		want[t] = true
	}
	l := &LoRA{Rank: cfg.Rank, Alpha: cfg.Alpha}
	for _, t := range lora.Targets() {
		if want[t] {
			l.Targets = append(l.Targets, t)
		}
	}
	seen := make(map[string]bool)
	for _, bt := range base {
		_, module, ok := lora.ParseBase(bt.Name)
		if !ok || !want[module] {
			continue
		}
		if seen[bt.Name] {
			return nil, fmt.Errorf("lora: base tensor %q listed twice", bt.Name)
		}
		seen[bt.Name] = true
		if bt.NIn <= 0 || bt.NOut <= 0 {
			return nil, fmt.Errorf(
				"lora: base tensor %q has shape %dx%d, want positive sizes",
				bt.Name,
				bt.NIn,
				bt.NOut,
			)
		}
		t := &lora.Tensor{
			Base: bt.Name, Rank: cfg.Rank, NIn: bt.NIn, NOut: bt.NOut,
			A: make([]float32, cfg.Rank*bt.NIn),
			B: make([]float32, bt.NOut*cfg.Rank),
		}
		h := fnv.New64a()
		h.Write([]byte(bt.Name))
		rng := rand.New(rand.NewPCG(cfg.Seed, h.Sum64()))
		bound := 1 / math.Sqrt(float64(bt.NIn))
		for i := range t.A {
			t.A[i] = float32((2*rng.Float64() - 1) * bound)
		}
		l.Tensors = append(l.Tensors, t)
	}
	if len(l.Tensors) == 0 {
		return nil, fmt.Errorf(
			"lora: no base tensor matches targets %s (expected names like blk.0.attn_q.weight)",
			strings.Join(cfg.Targets, ", "),
		)
	}
	sortLoRATensors(l.Tensors)
	return l, nil
}

func sortLoRATensors(ts []*lora.Tensor) {
	sort.SliceStable(ts, func(i, j int) bool {
		li, mi, _ := lora.ParseBase(ts[i].Base)
		lj, mj, _ := lora.ParseBase(ts[j].Base)
		if li != lj {
			return li < lj
		}
		if ti, tj := lora.TargetIndex(mi), lora.TargetIndex(mj); ti != tj {
			return ti < tj
		}
		return ts[i].Base < ts[j].Base
	})
}

// NewLoRAFromTensors wraps existing adapter tensors (e.g. an imported GGUF adapter) after checking
// their shapes against rank.
func NewLoRAFromTensors(rank int, alpha float64, tensors []*lora.Tensor) (*LoRA, error) {
	var targets []string
	for _, t := range tensors {
		if _, m, ok := lora.ParseBase(t.Base); ok && !slices.Contains(targets, m) {
			targets = append(targets, m)
		}
	}
	l := &LoRA{Rank: rank, Alpha: alpha, Targets: targets, Tensors: append([]*lora.Tensor(nil), tensors...)}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	sort.Slice(l.Targets, func(i, j int) bool { return lora.TargetIndex(l.Targets[i]) < lora.TargetIndex(l.Targets[j]) })
	sortLoRATensors(l.Tensors)
	return l, nil
}

// Validate checks hyper-parameters, names, shapes and that all values are finite.
func (l *LoRA) Validate() error {
	if err := validateLoRAHyper(l.Rank, l.Alpha, lora.Targets()); err != nil {
		return err
	}
	if len(l.Tensors) == 0 {
		return errors.New("lora: no tensors")
	}
	seen := make(map[string]bool)
	for _, t := range l.Tensors {
		_, m, ok := lora.ParseBase(t.Base)
		if !ok || lora.TargetIndex(m) < 0 {
			return fmt.Errorf("lora: tensor %q is not a blk.N.<target>.weight projection", t.Base)
		}
		if seen[t.Base] {
			return fmt.Errorf("lora: tensor %q listed twice", t.Base)
		}
		seen[t.Base] = true
		if t.NIn <= 0 || t.NOut <= 0 {
			return fmt.Errorf("lora: tensor %q has shape %dx%d", t.Base, t.NIn, t.NOut)
		}
		if t.Rank != l.Rank {
			return fmt.Errorf("lora: tensor %q has rank %d, the adapter %d", t.Base, t.Rank, l.Rank)
		}
		if len(t.A) != l.Rank*t.NIn {
			return fmt.Errorf("lora: %s.lora_a has %d values, want rank %d x n_in %d", t.Base, len(t.A), l.Rank, t.NIn)
		}
		if len(t.B) != t.NOut*l.Rank {
			return fmt.Errorf(
				"lora: %s.lora_b has %d values, want n_out %d x rank %d",
				t.Base,
				len(t.B),
				t.NOut,
				l.Rank,
			)
		}
		for _, v := range [][]float32{t.A, t.B} {
			for i, x := range v {
				if !isFinite(float64(x)) {
					return fmt.Errorf("lora: %s has a non-finite value at %d", t.Base, i)
				}
			}
		}
	}
	return validateLoRAHyper(l.Rank, l.Alpha, l.Targets)
}

// Scale returns alpha/r, the factor applied to B·A.
func (l *LoRA) Scale() float64 { return l.Alpha / float64(l.Rank) }

// Tensor returns the adapter of a base tensor, or nil.
func (l *LoRA) Tensor(name string) *lora.Tensor {
	for _, t := range l.Tensors {
		if t.Base == name {
			return t
		}
	}
	return nil
}

// ParamShapes lists the trainable tensors as "<name>.lora_a", "<name>.lora_b" pairs (the GGUF
// adapter tensor names), in the order of Params.
func (l *LoRA) ParamShapes() []ParamShape {
	s := make([]ParamShape, 0, 2*len(l.Tensors))
	for _, t := range l.Tensors {
		s = append(s, ParamShape{t.Base + lora.SuffixA, len(t.A)}, ParamShape{t.Base + lora.SuffixB, len(t.B)})
	}
	return s
}

// Params returns the A and B slices (shared, not copied) in ParamShapes order, for the optimizer.
func (l *LoRA) Params() [][]float32 {
	p := make([][]float32, 0, 2*len(l.Tensors))
	for _, t := range l.Tensors {
		p = append(p, t.A, t.B)
	}
	return p
}

// NewGrads returns zeroed gradient tensors in ParamShapes order.
func (l *LoRA) NewGrads() [][]float32 {
	g := make([][]float32, 0, 2*len(l.Tensors))
	for _, t := range l.Tensors {
		g = append(g, make([]float32, len(t.A)), make([]float32, len(t.B)))
	}
	return g
}

// NumParams returns the number of trainable values.
func (l *LoRA) NumParams() int {
	n := 0
	for _, t := range l.Tensors {
		n += len(t.A) + len(t.B)
	}
	return n
}
