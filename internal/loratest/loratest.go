// Package loratest makes LoRA pairs with random values for the tests of the packages that train,
// apply and merge them (llama, nn).
package loratest

import (
	"math/rand/v2"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/lora"
)

// Random makes rank-rank LoRA pairs with N(0, 0.3²) values on the named 2-D weights of f, from a PCG
// seeded by seed; it fails t when a name is not a tensor of f.
func Random(t testing.TB, f *ggml.GGUFFile, names []string, rank int, seed uint64) []lora.Tensor {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var out []lora.Tensor
	for _, n := range names {
		w, ok := f.Tensor(n)
		if !ok {
			t.Fatalf("no tensor %s", n)
		}
		lt := lora.Tensor{Base: n, Rank: rank, NIn: int(w.Shape[0]), NOut: int(w.Shape[1])}
		lt.A = make([]float32, rank*lt.NIn)
		lt.B = make([]float32, lt.NOut*rank)
		for i := range lt.A {
			lt.A[i] = float32(rng.NormFloat64() * 0.3)
		}
		for i := range lt.B {
			lt.B[i] = float32(rng.NormFloat64() * 0.3)
		}
		out = append(out, lt)
	}
	return out
}
