package nn

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/llama"
)

// Fixtures of the repository's testdata/ folder; fixture.File(t, name) gives their path.
const (
	stories260K = "models/stories260K.gguf"
	vocabBPE    = "models/ggml-vocab-llama-bpe.gguf"
	vocabQwen2  = "models/ggml-vocab-qwen2.gguf"
	vocabSPM    = "models/ggml-vocab-llama-spm.gguf"
)

func TestMain(m *testing.M) {
	code := m.Run()
	fixture.RemoveGenerated()
	os.Exit(code)
}

// smallSpec is a small model of arch (llama, llama3 or qwen2) with a real tokenizer.
func smallSpec(t testing.TB, arch string, typ ggml.GGMLType) RandomModelSpec {
	s := RandomModelSpec{Arch: arch, Layers: 2, Embedding: 64, FeedForward: 128, Heads: 4, HeadsKV: 2, Type: typ, Seed: 7}
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
func randomModel(t testing.TB, spec RandomModelSpec) string {
	t.Helper()
	key := fmt.Sprintf("%s-%s-%d-%d-%d-%v-%d-hd%d-w%d-%s", spec.Arch, spec.Type, spec.Layers, spec.Embedding, spec.FeedForward, spec.TiedOutput, spec.Seed,
		spec.HeadDim, spec.SlidingWindow, filepath.Base(spec.VocabFrom))
	return fixture.Generated(t, key, func(path string) error { return WriteRandomModel(path, spec) })
}

// mustLoad loads a model into llama.cpp (the reference the training graphs are checked against).
func mustLoad(t testing.TB, path string) *llama.Model {
	t.Helper()
	m, err := llama.LoadModel(path, llama.ModelOptions{})
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// mustContext makes a llama.cpp context on one thread (tests run beside other test binaries).
func mustContext(t testing.TB, m *llama.Model, opts llama.ContextOptions) *llama.Context {
	t.Helper()
	opts.Threads = max(opts.Threads, 1)
	c, err := llama.NewContext(m, opts)
	if err != nil {
		t.Fatalf("new context: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// mustTokenize tokenizes text with m's tokenizer.
func mustTokenize(t testing.TB, m *llama.Model, text string, addSpecial bool) []llama.Token {
	t.Helper()
	toks, err := m.Tokenize(text, addSpecial, false)
	if err != nil {
		t.Fatal(err)
	}
	return toks
}
