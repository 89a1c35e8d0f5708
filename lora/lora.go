// Package lora describes LoRA adapters once for the whole project: the projection modules they attach
// to, how their tensors are named in GGUF files, and the low-rank pair of one base weight. It is pure
// Go and imports no other package of the project, so training, export, merge and inference share it.
package lora

import "fmt"

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
