package nn

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
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
			maxDiff, _ := graphVsLlamaCpp(t, path)
			t.Logf("rope scaling factor 4: max |training graph - llama.cpp| = %.2g", maxDiff)
			if maxDiff > 1e-3 {
				t.Errorf("difference %.3g > 1e-3", maxDiff)
			}
		})
	}
}
