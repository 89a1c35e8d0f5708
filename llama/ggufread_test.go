package llama

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/lora"
)

// smallAdapterBytes is a valid LoRA adapter for stories260K (rank 2 on one weight).
func smallAdapterBytes(t testing.TB) []byte {
	t.Helper()
	lt := lora.Tensor{Base: "blk.0.attn_q.weight", Rank: 2, NIn: 64, NOut: 64, A: make([]float32, 128), B: make([]float32, 128)}
	for i := range lt.A {
		lt.A[i], lt.B[i] = float32(i%7)*0.01, float32(i%5)*0.01
	}
	path := filepath.Join(t.TempDir(), "a.gguf")
	if err := WriteAdapterFile(path, "llama", 4, []lora.Tensor{lt}, map[string]string{"bpo.note": "seed"}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestReadGGUFAgreesWithGGML checks the Go reader against ggml's on the fixtures: same counts, same
// data offset, tensor descriptions inside the file.
func TestReadGGUFAgreesWithGGML(t *testing.T) {
	adapter := filepath.Join(t.TempDir(), "adapter.gguf")
	if err := os.WriteFile(adapter, smallAdapterBytes(t), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fixture.File(t, stories260K), fixture.File(t, tinyRandom), fixture.File(t, vocabQwen2), fixture.File(t, vocabSPM), adapter} {
		f, err := ggml.ReadGGUF(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		nKV, nTensors, dataOffset, ok := ggml.GGMLReadCounts(path)
		if !ok || nKV != int64(len(f.KV)) || nTensors != int64(len(f.Tensors)) {
			t.Fatalf("%s: ggml reads %d keys, %d tensors (ok %v); Go reader %d, %d", path, nKV, nTensors, ok, len(f.KV), len(f.Tensors))
		}
		if len(f.Tensors) > 0 && f.Tensors[0].Offset != dataOffset {
			t.Fatalf("%s: first tensor at %d, ggml's data section at %d", path, f.Tensors[0].Offset, dataOffset)
		}
	}
}

// FuzzReadGGUF: the Go reader never panics; whatever it accepts, ggml's reader accepts too with the
// same counts (so validation really comes first); a model it and validateModelFile accept loads in
// llama.cpp and scores without crashing.
func FuzzReadGGUF(f *testing.F) {
	stories, err := os.ReadFile(fixture.File(f, stories260K))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(smallAdapterBytes(f))
	f.Add(stories)
	f.Add([]byte("GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ggml.ParseGGUF("fuzz.gguf", bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrNotGGUF) {
				t.Fatalf("error does not wrap ErrNotGGUF: %v", err)
			}
			return
		}
		for _, fl := range g.Layout {
			if fl.Offset < 0 || fl.Size < 0 || fl.Offset+fl.Size > int64(len(data)) {
				t.Fatalf("field %+v outside the %d-byte file", fl, len(data))
			}
		}
		path := filepath.Join(dir, "fuzz.gguf")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		nKV, nTensors, _, ok := ggml.GGMLReadCounts(path)
		if !ok || nKV != int64(len(g.KV)) || nTensors != int64(len(g.Tensors)) {
			t.Fatalf("Go reader accepted %d keys, %d tensors; ggml: %d, %d (ok %v)", len(g.KV), len(g.Tensors), nKV, nTensors, ok)
		}
		if !archSupported(g.Arch()) || len(g.Tensors) == 0 || g.String("general.type") == "adapter" || validateModelFile(g, false) != nil {
			return
		}
		m, err := LoadModel(path, ModelOptions{})
		if err != nil {
			return
		}
		defer m.Close()
		c, err := NewContext(m, ContextOptions{NCtx: 64, NSeq: 1, Threads: 1})
		if err != nil {
			return
		}
		defer c.Close()
		if n := m.Info().VocabSize; n >= 3 {
			_, _ = c.TokenLogProbs(context.Background(), []Token{0, 1, 2})
		}
	})
}
