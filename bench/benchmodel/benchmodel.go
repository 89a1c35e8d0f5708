// Package benchmodel generates, once, the random-weight Qwen2.5-0.5B-shaped model the benchmarks share
// (bench/bridge, bench/train, bench/evalrun) and caches it by its spec.
package benchmodel

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/nn"
)

// Spec is the Qwen2.5-0.5B shape: qwen2, 24 layers, embedding 896, FFN 4864, 14 heads, 2 KV heads,
// tied output; VocabFrom and Type are set by Ensure.
var Spec = nn.RandomModelSpec{
	Arch: "qwen2", Layers: 24, Embedding: 896, FeedForward: 4864, Heads: 14, HeadsKV: 2,
	ContextLength: 32768, Type: ggml.TypeQ8_0, TiedOutput: true, Seed: 1, Name: "bpo-bench-qwen2.5-0.5b-shape",
}

// DefaultVocab is the repository fixture whose qwen2 tokenizer the benchmark model uses.
const DefaultVocab = "models/ggml-vocab-qwen2.gguf"

// VocabPath returns vocab, or when it is empty the path of DefaultVocab in the repository's
// testdata/ folder (decompressed into the cache on first use).
func VocabPath(vocab string) (string, error) {
	if vocab != "" {
		return vocab, nil
	}
	return fixture.Path(DefaultVocab)
}

// Describe is a one-line description of the model for a result's settings.
func Describe(vocab string, typ ggml.GGMLType) string {
	return fmt.Sprintf(
		"qwen2 %d layers, embedding %d, ff %d, %d heads, %d KV heads, tied output, %s, vocab %s (random weights)",
		Spec.Layers,
		Spec.Embedding,
		Spec.FeedForward,
		Spec.Heads,
		Spec.HeadsKV,
		typ,
		filepath.Base(vocab),
	)
}

// Llama8BSpec is the Llama-3.1-8B shape: llama, 32 layers, embedding 4096, FFN 14336, 32 heads,
// 8 KV heads, untied output, rope base 500000; VocabFrom (the llama-bpe tokenizer) is set by the caller.
var Llama8BSpec = nn.RandomModelSpec{
	Arch: "llama3", Layers: 32, Embedding: 4096, FeedForward: 14336, Heads: 32, HeadsKV: 8,
	ContextLength: 131072, Type: ggml.TypeQ4_K, Seed: 1, Name: "bpo-bench-llama3.1-8b-shape",
}

// Default returns model, or when it is empty the path of the standard benchmark model (Spec with the
// tokenizer of vocab, or of DefaultVocab when vocab is empty), generated into cache the first time.
func Default(model, cache, vocab string) (string, error) {
	if model != "" {
		return model, nil
	}
	v, err := VocabPath(vocab)
	if err != nil {
		return "", err
	}
	return Ensure(cache, v, Spec.Type)
}

// Ensure returns the absolute path of the model with weights of type typ and the tokenizer of vocab,
// generating it into cache the first time (the file name records the spec).
func Ensure(cache, vocab string, typ ggml.GGMLType) (string, error) {
	spec := Spec
	spec.VocabFrom = vocab
	spec.Type = typ
	return EnsureSpec(cache, spec)
}

// EnsureSpec returns the absolute path of the random model of spec, generating it into cache the
// first time (the file name records the shape, type and seed).
func EnsureSpec(cache string, spec nn.RandomModelSpec) (string, error) {
	name := fmt.Sprintf(
		"%s-%dL-%d-%d-%dh-%dkv-%s-seed%d.gguf",
		spec.Arch,
		spec.Layers,
		spec.Embedding,
		spec.FeedForward,
		spec.Heads,
		spec.HeadsKV,
		spec.Type,
		spec.Seed,
	)
	path, err := filepath.Abs(filepath.Join(cache, name))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "bench: generating %s (once)\n", path)
	start := time.Now()
	if err := nn.WriteRandomModel(path, spec); err != nil {
		return "", fmt.Errorf("generate %s: %w", path, err)
	}
	fmt.Fprintf(os.Stderr, "bench: generated in %.0f s\n", time.Since(start).Seconds())
	return path, nil
}

// RandomTokensBelow draws n token ids uniformly from [0, limit).
func RandomTokensBelow(rng *rand.Rand, n, limit int) []llama.Token {
	out := make([]llama.Token, n)
	for i := range out {
		out[i] = llama.Token(rng.IntN(limit))
	}
	return out
}

// RandomTokens draws n ordinary (non-special) token ids of the qwen2 vocabulary the
// benchmark model uses: benchmark inputs whose content does not matter, only their length.
func RandomTokens(rng *rand.Rand, n int) []llama.Token {
	const ordinary = 151643 // ids >= this are special tokens of the qwen2 vocabulary
	ids := make([]llama.Token, n)
	for i := range ids {
		ids[i] = llama.Token(rng.IntN(ordinary))
	}
	return ids
}
