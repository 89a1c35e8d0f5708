package nn

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/llama"
)

// withLinearRopeScaling writes a copy of the model at src with rope.scaling.type typ (none when "") and
// the given factor added to its metadata (Gemma 3 4B+ and some Llama fine-tunes are scaled so).
func withLinearRopeScaling(t testing.TB, src, typ string, factor float32) string {
	t.Helper()
	f, err := ggml.ReadGGUF(src)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	w := ggml.NewGGUFWriter()
	defer w.Close()
	if err := w.CopyKV(src); err != nil {
		t.Fatal(err)
	}
	if typ != "" {
		w.SetString(f.Arch()+".rope.scaling.type", typ)
	}
	w.SetFloat32(f.Arch()+".rope.scaling.factor", factor)
	for _, tt := range f.Tensors {
		if err := w.AddTensor(tt.Name, tt.Type, tt.Shape, raw[tt.Offset:tt.Offset+tt.Size]); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "rope-scaled.gguf")
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTrainGraphLinearRopeScaling checks that the training graph rotates with llama.cpp's freq_scale
// (1 / rope.scaling.factor): before it was passed to ggml, a factor of 4 put the graph 0.55 away. A
// factor without a scaling type is linear too, as llama.cpp reads it.
func TestTrainGraphLinearRopeScaling(t *testing.T) {
	for _, c := range []struct{ arch, typ string }{{"llama", "linear"}, {"qwen2", "linear"}, {"llama", ""}} {
		t.Run(c.arch+"-"+c.typ, func(t *testing.T) {
			path := withLinearRopeScaling(t, randomModel(t, smallSpec(t, c.arch, ggml.TypeF32)), c.typ, 4)
			m := mustLoad(t, path)
			ctx := mustContext(t, m, llama.ContextOptions{NCtx: 256})
			tm, err := NewTrainModel(path, TrainOptions{LoRA: allLoRA(t, m.File(), m.Info().Layers, 2, 0, 1), LoRAAlpha: 4, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer tm.Close()
			seqs := trainSeqs(t, m, trainTexts)
			got, err := tm.LogProbs(seqs)
			if err != nil {
				t.Fatal(err)
			}
			maxDiff := 0.0
			for s, seq := range seqs {
				res, err := ctx.Score(context.Background(), []llama.ScoreRequest{{Prompt: seq.Tokens[:seq.PromptLen], Completions: [][]llama.Token{seq.Tokens[seq.PromptLen:]}}})
				if err != nil {
					t.Fatal(err)
				}
				for i, v := range res[0][0].LogProbs {
					maxDiff = math.Max(maxDiff, math.Abs(v-got[s][i]))
				}
			}
			t.Logf("rope scaling factor 4: max |training graph - llama.cpp| = %.2g", maxDiff)
			if maxDiff > 1e-3 {
				t.Errorf("difference %.3g > 1e-3", maxDiff)
			}
		})
	}
}
