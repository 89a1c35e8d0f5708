package peft

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ollamaconvert "github.com/ollama/ollama/convert"
	ollamaggml "github.com/ollama/ollama/fs/ggml"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/lora"
)

// TestOllamaReadsExport hands an exported PEFT folder to ollama's own PEFT-to-GGUF adapter
// converter (the code behind `ADAPTER <safetensors folder>` in an ollama Modelfile, from the pinned
// ollama module), loads its output into llama.cpp and compares log-probs with the original adapter.
// ollama's converter permutes lora_A of llama's attn_q/attn_k (the input side) where llama.cpp's
// convert_lora_to_gguf.py permutes lora_B (the output rows rope acts on, see
// TestPermutationMatchesRope), so the two agree only without Q/K targets: that part is measured
// and logged, not asserted.
func TestOllamaReadsExport(t *testing.T) {
	all, base := writeAdapter(t, fixture.File(t, stories260K), 4, 8, nil)
	ad, err := llama.ReadAdapterFile(all)
	if err != nil {
		t.Fatal(err)
	}
	var noQK, qk []lora.Tensor
	for _, lt := range ad.Tensors {
		if strings.Contains(lt.Base, ".attn_q.") || strings.Contains(lt.Base, ".attn_k.") {
			qk = append(qk, lt)
		} else {
			noQK = append(noQK, lt)
		}
	}
	for _, c := range []struct {
		name    string
		tensors []lora.Tensor
		assert  bool
	}{{"v, o, gate, up, down", noQK, true}, {"q, k", qk, false}} {
		t.Run(c.name, func(t *testing.T) {
			orig := filepath.Join(t.TempDir(), "adapter.gguf")
			if err := llama.WriteAdapterFile(orig, "llama", 8, c.tensors, nil); err != nil {
				t.Fatal(err)
			}
			ollamaCase(t, orig, base, c.assert)
		})
	}
}

func ollamaCase(t *testing.T, orig string, base *ggml.GGUFFile, assert bool) {
	dir := exportFor(t, orig, base, "")
	fh, err := os.Open(fixture.File(t, stories260K))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	g, err := ollamaggml.Decode(fh, -1)
	if err != nil {
		t.Fatal(err)
	}
	converted := filepath.Join(t.TempDir(), "ollama-adapter.gguf")
	out, err := os.Create(converted)
	if err != nil {
		t.Fatal(err)
	}
	if err := ollamaconvert.ConvertAdapter(os.DirFS(dir), out, g.KV()); err != nil {
		t.Fatalf("ollama's converter rejected the export: %v", err)
	}
	out.Close()
	m, err := llama.LoadModel(fixture.File(t, stories260K), llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, err := llama.NewContext(m, llama.ContextOptions{NCtx: 128, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	toks, err := m.Tokenize("Once upon a time, there was a little girl named Lily. She liked to play in the park.", true, false)
	if err != nil {
		t.Fatal(err)
	}
	score := func(path string) []float64 {
		var as []llama.AdapterScale
		if path != "" {
			ad, err := llama.LoadAdapter(m, path)
			if err != nil {
				t.Fatal(err)
			}
			as = append(as, llama.AdapterScale{Adapter: ad, Scale: 1})
		}
		if err := ctx.SetAdapters(as...); err != nil {
			t.Fatal(err)
		}
		lp, err := ctx.TokenLogProbs(context.Background(), toks)
		if err != nil {
			t.Fatal(err)
		}
		return lp
	}
	plain, want, got := score(""), score(orig), score(converted)
	diff, moved := 0.0, 0.0
	for i := range want {
		diff = math.Max(diff, math.Abs(got[i]-want[i]))
		moved = math.Max(moved, math.Abs(want[i]-plain[i]))
	}
	t.Logf("ollama-converted export vs original adapter: max |Δ log-prob| = %.3g over %d tokens (the adapter moves them by up to %.3g)", diff, len(got), moved)
	if assert && (diff > 1e-3 || moved < 1e-2) {
		t.Fatalf("diff %.3g (want <= 1e-3), moved %.3g (want >= 1e-2)", diff, moved)
	}
}
