package llama

import (
	"fmt"
	"os"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/nn"
)

// Fixtures of the repository's testdata/ folder; fixture.File(t, name) gives their path.
const (
	stories260K = "models/stories260K.gguf"
	tinyRandom  = "models/llama-2-tiny-random.gguf"
	vocabBPE    = "models/ggml-vocab-llama-bpe.gguf"
	vocabQwen2  = "models/ggml-vocab-qwen2.gguf"
	vocabSPM    = "models/ggml-vocab-llama-spm.gguf"
)

func TestMain(m *testing.M) {
	code := m.Run()
	fixture.RemoveGenerated()
	os.Exit(code)
}

// smallSpec is a small llama3- or qwen2-shaped model with the real tokenizer.
func smallSpec(t testing.TB, arch string, typ ggml.GGMLType) nn.RandomModelSpec {
	s := nn.RandomModelSpec{Arch: arch, Layers: 2, Embedding: 64, FeedForward: 128, Heads: 4, HeadsKV: 2, Type: typ, Seed: 7}
	switch arch {
	case "llama3":
		s.VocabFrom = fixture.File(t, vocabBPE)
	case "qwen2":
		s.VocabFrom = fixture.File(t, vocabQwen2)
		s.TiedOutput = true
	default:
		s.VocabFrom = fixture.File(t, vocabSPM)
	}
	return s
}

// randomModel returns the path of a generated model for spec, made once per test binary.
func randomModel(t testing.TB, spec nn.RandomModelSpec) string {
	t.Helper()
	key := fmt.Sprintf("%s-%s-%d-%d-%d-%v-%d.gguf", spec.Arch, spec.Type, spec.Layers, spec.Embedding, spec.FeedForward, spec.TiedOutput, spec.Seed)
	return fixture.Generated(t, key, func(path string) error { return nn.WriteRandomModel(path, spec) })
}

func mustLoad(t testing.TB, path string) *Model {
	t.Helper()
	m, err := LoadModel(path, ModelOptions{})
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func mustContext(t testing.TB, m *Model, opts ContextOptions) *Context {
	t.Helper()
	if opts.Threads == 0 {
		opts.Threads = 1 // tests run beside other test binaries: never oversubscribe the cores
	}
	c, err := NewContext(m, opts)
	if err != nil {
		t.Fatalf("new context: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustTokenize(t testing.TB, m *Model, text string, addSpecial bool) []Token {
	t.Helper()
	toks, err := m.Tokenize(text, addSpecial, false)
	if err != nil {
		t.Fatal(err)
	}
	return toks
}
