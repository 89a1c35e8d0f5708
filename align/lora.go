package align

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// LoRATargets returns the projection modules LoRA can be attached to, in canonical order.
func LoRATargets() []string {
	return []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}
}

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
	Targets []string // subset of LoRATargets()
	Seed    uint64
}

// DefaultLoRAConfig returns the paper's recipe: r 16, alpha 16, all seven projections.
func DefaultLoRAConfig() LoRAConfig {
	return LoRAConfig{Rank: 16, Alpha: 16, Targets: LoRATargets()}
}

// LoRATensor is the low-rank update of one base tensor: ΔW = (alpha/r)·B·A.
type LoRATensor struct {
	Name      string    // base tensor name, e.g. "blk.0.attn_q.weight"
	NIn, NOut int       // base shape
	A         []float32 // r x NIn, row-major (GGUF "<name>.lora_a", ne = [NIn, r])
	B         []float32 // NOut x r, row-major (GGUF "<name>.lora_b", ne = [r, NOut])
}

// LoRA is the set of trainable adapter tensors of a model.
type LoRA struct {
	Rank    int
	Alpha   float64
	Targets []string
	Tensors []*LoRATensor // ordered by layer, then by LoRATargets order
}

// parseTarget splits "blk.<layer>.<module>.weight" into layer and module.
func parseTarget(name string) (layer int, module string, ok bool) {
	rest, found := strings.CutPrefix(name, "blk.")
	if !found {
		return 0, "", false
	}
	rest, found = strings.CutSuffix(rest, ".weight")
	if !found {
		return 0, "", false
	}
	num, module, found := strings.Cut(rest, ".")
	if !found {
		return 0, "", false
	}
	layer, err := strconv.Atoi(num)
	if err != nil || layer < 0 {
		return 0, "", false
	}
	return layer, module, true
}

func targetIndex(module string) int {
	return slices.Index(LoRATargets(), module)
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
		if targetIndex(t) < 0 {
			return fmt.Errorf("lora: unknown target %q: expected some of %s", t, strings.Join(LoRATargets(), ", "))
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
	for _, t := range LoRATargets() {
		if want[t] {
			l.Targets = append(l.Targets, t)
		}
	}
	seen := make(map[string]bool)
	for _, bt := range base {
		_, module, ok := parseTarget(bt.Name)
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
		t := &LoRATensor{
			Name: bt.Name, NIn: bt.NIn, NOut: bt.NOut,
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

func sortLoRATensors(ts []*LoRATensor) {
	sort.SliceStable(ts, func(i, j int) bool {
		li, mi, _ := parseTarget(ts[i].Name)
		lj, mj, _ := parseTarget(ts[j].Name)
		if li != lj {
			return li < lj
		}
		if ti, tj := targetIndex(mi), targetIndex(mj); ti != tj {
			return ti < tj
		}
		return ts[i].Name < ts[j].Name
	})
}

// NewLoRAFromTensors wraps existing adapter tensors (e.g. an imported GGUF adapter) after checking
// their shapes against rank.
func NewLoRAFromTensors(rank int, alpha float64, tensors []*LoRATensor) (*LoRA, error) {
	var targets []string
	for _, t := range tensors {
		if _, m, ok := parseTarget(t.Name); ok && !slices.Contains(targets, m) {
			targets = append(targets, m)
		}
	}
	l := &LoRA{Rank: rank, Alpha: alpha, Targets: targets, Tensors: append([]*LoRATensor(nil), tensors...)}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	sort.Slice(l.Targets, func(i, j int) bool { return targetIndex(l.Targets[i]) < targetIndex(l.Targets[j]) })
	sortLoRATensors(l.Tensors)
	return l, nil
}

// Validate checks hyper-parameters, names, shapes and that all values are finite.
func (l *LoRA) Validate() error {
	if err := validateLoRAHyper(l.Rank, l.Alpha, LoRATargets()); err != nil {
		return err
	}
	if len(l.Tensors) == 0 {
		return errors.New("lora: no tensors")
	}
	seen := make(map[string]bool)
	for _, t := range l.Tensors {
		_, m, ok := parseTarget(t.Name)
		if !ok || targetIndex(m) < 0 {
			return fmt.Errorf("lora: tensor %q is not a blk.N.<target>.weight projection", t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("lora: tensor %q listed twice", t.Name)
		}
		seen[t.Name] = true
		if t.NIn <= 0 || t.NOut <= 0 {
			return fmt.Errorf("lora: tensor %q has shape %dx%d", t.Name, t.NIn, t.NOut)
		}
		if len(t.A) != l.Rank*t.NIn {
			return fmt.Errorf("lora: %s.lora_a has %d values, want rank %d x n_in %d", t.Name, len(t.A), l.Rank, t.NIn)
		}
		if len(t.B) != t.NOut*l.Rank {
			return fmt.Errorf(
				"lora: %s.lora_b has %d values, want n_out %d x rank %d",
				t.Name,
				len(t.B),
				t.NOut,
				l.Rank,
			)
		}
		for _, v := range [][]float32{t.A, t.B} {
			for i, x := range v {
				if !isFinite(float64(x)) {
					return fmt.Errorf("lora: %s has a non-finite value at %d", t.Name, i)
				}
			}
		}
	}
	return validateLoRAHyper(l.Rank, l.Alpha, l.Targets)
}

// Scale returns alpha/r, the factor applied to B·A.
func (l *LoRA) Scale() float64 { return l.Alpha / float64(l.Rank) }

// Tensor returns the adapter of a base tensor, or nil.
func (l *LoRA) Tensor(name string) *LoRATensor {
	for _, t := range l.Tensors {
		if t.Name == name {
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
		s = append(s, ParamShape{t.Name + ".lora_a", len(t.A)}, ParamShape{t.Name + ".lora_b", len(t.B)})
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

// Apply returns scale·B·(A·x) for one input vector x of length NIn: the adapter's contribution to
// W·x. It is a reference for tests of the training graph, not a fast path.
func (t *LoRATensor) Apply(x []float32, rank int, scale float64) ([]float32, error) {
	if len(x) != t.NIn {
		return nil, fmt.Errorf("lora %s: input has %d values, want %d", t.Name, len(x), t.NIn)
	}
	if len(t.A) != rank*t.NIn || len(t.B) != t.NOut*rank {
		return nil, fmt.Errorf("lora %s: A/B sizes do not match rank %d", t.Name, rank)
	}
	ax := make([]float64, rank)
	for r := 0; r < rank; r++ {
		var s float64
		for i, xi := range x {
			s += float64(t.A[r*t.NIn+i]) * float64(xi)
		}
		ax[r] = s
	}
	y := make([]float32, t.NOut)
	for o := range y {
		var s float64
		for r := 0; r < rank; r++ {
			s += float64(t.B[o*rank+r]) * ax[r]
		}
		y[o] = float32(scale * s)
	}
	return y, nil
}
