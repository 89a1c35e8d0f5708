// Package lora describes LoRA adapters once for the whole project: the projection modules they attach
// to, how their tensors are named in GGUF files, and the low-rank pair of one base weight. It is pure
// Go and imports no other package of the project, so training, export, merge and inference share it.
package lora

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Tensor is the LoRA pair of one base weight: y = W x + (alpha/r) B (A x).
type Tensor struct {
	// Base is the base tensor's name, e.g. "blk.0.attn_q.weight".
	Base string
	Rank int
	NIn  int
	NOut int
	// A is rank x NIn, row-major (GGUF ne = [NIn, rank]).
	A []float32
	// B is NOut x rank, row-major (GGUF ne = [rank, NOut]).
	B []float32
}

// Validate checks the sizes of A and B. Its errors carry no sentinel; callers wrap them with theirs.
func (t Tensor) Validate() error {
	if t.Rank <= 0 || t.NIn <= 0 || t.NOut <= 0 {
		return fmt.Errorf("lora %s: rank %d, n_in %d, n_out %d must be > 0", t.Base, t.Rank, t.NIn, t.NOut)
	}
	if len(t.A) != t.Rank*t.NIn || len(t.B) != t.NOut*t.Rank {
		return fmt.Errorf("lora %s: A has %d values (want %d), B has %d (want %d)", t.Base, len(t.A), t.Rank*t.NIn, len(t.B), t.NOut*t.Rank)
	}
	return nil
}

// targets are the projection modules LoRA can be attached to, in canonical order.
var targets = []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}

// Targets returns the projection modules LoRA can be attached to, in canonical order (a fresh slice).
func Targets() []string { return slices.Clone(targets) }

// TargetIndex is module's position in Targets, or -1 when LoRA cannot target it.
func TargetIndex(module string) int { return slices.Index(targets, module) }

// Suffixes of the two tensors of a pair in a GGUF adapter: "<base>.lora_a" and "<base>.lora_b".
const (
	SuffixA = ".lora_a"
	SuffixB = ".lora_b"
)

// KeyAlpha is the adapter's alpha in GGUF metadata; the update is scaled by alpha/rank.
const KeyAlpha = "adapter.lora.alpha"

// BaseName is the GGUF name of module's weight in layer: "blk.<layer>.<module>.weight".
func BaseName(layer int, module string) string { return fmt.Sprintf("blk.%d.%s.weight", layer, module) }

// ParseBase splits a block weight name "blk.<layer>.<module>.weight" into layer and module; ok is
// false for any other shape (a layer not written as BaseName writes it, an empty module or one with a dot).
func ParseBase(name string) (layer int, module string, ok bool) {
	rest, found := strings.CutPrefix(name, "blk.")
	if !found {
		return 0, "", false
	}
	rest, found = strings.CutSuffix(rest, ".weight")
	if !found {
		return 0, "", false
	}
	num, module, found := strings.Cut(rest, ".")
	if !found || module == "" || strings.Contains(module, ".") {
		return 0, "", false
	}
	layer, err := strconv.Atoi(num)
	if err != nil || layer < 0 || strconv.Itoa(layer) != num {
		return 0, "", false
	}
	return layer, module, true
}

// IsTarget reports whether name is the weight of a module LoRA can target ("blk.3.attn_q.weight").
func IsTarget(name string) bool {
	_, module, ok := ParseBase(name)
	return ok && TargetIndex(module) >= 0
}

// Apply returns scale·B·(A·x) for one input vector x of length NIn: the pair's contribution to W·x
// (scale is alpha/rank, times the adapter's scale at inference). It is a reference for tests, not a
// fast path.
func (t Tensor) Apply(x []float32, scale float64) ([]float32, error) {
	if len(x) != t.NIn {
		return nil, fmt.Errorf("lora %s: input has %d values, want %d", t.Base, len(x), t.NIn)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	ax := make([]float64, t.Rank)
	for r := range ax {
		var s float64
		for i, xi := range x {
			s += float64(t.A[r*t.NIn+i]) * float64(xi)
		}
		ax[r] = s
	}
	y := make([]float32, t.NOut)
	for o := range y {
		var s float64
		for r, v := range ax {
			s += float64(t.B[o*t.Rank+r]) * v
		}
		y[o] = float32(scale * s)
	}
	return y, nil
}
