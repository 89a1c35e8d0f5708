package llama

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/internal/loratest"
	"github.com/bpo-dev/bpo/lora"
)

// mergeLoRA adds scale*(alpha/r)*B*A into the reference model's weights.
func mergeLoRA(ref *refModel, tensors []lora.Tensor, alpha, scale float32) {
	for _, lt := range tensors {
		var w []float32
		l, kind, err := parseBlockName(lt.Base)
		if err != nil {
			panic(err)
		}
		L := &ref.layers[l]
		switch kind {
		case "attn_q":
			w = L.q
		case "attn_k":
			w = L.k
		case "attn_v":
			w = L.v
		case "attn_output":
			w = L.o
		case "ffn_gate":
			w = L.gate
		case "ffn_up":
			w = L.up
		case "ffn_down":
			w = L.down
		}
		s := float64(scale) * float64(alpha) / float64(lt.Rank)
		for o := 0; o < lt.NOut; o++ {
			for i := 0; i < lt.NIn; i++ {
				d := 0.0
				for k := 0; k < lt.Rank; k++ {
					d += float64(lt.B[o*lt.Rank+k]) * float64(lt.A[k*lt.NIn+i])
				}
				w[o*lt.NIn+i] += float32(s * d)
			}
		}
	}
}

func TestAdapterMatchesMergedReference(t *testing.T) {
	m := mustLoad(t, fixture.File(t, stories260K))
	names := []string{"blk.0.attn_q.weight", "blk.1.attn_v.weight", "blk.2.attn_output.weight", "blk.3.ffn_gate.weight", "blk.4.ffn_down.weight", "blk.2.ffn_up.weight", "blk.1.attn_k.weight"}
	tensors := loratest.Random(t, m.File(), names, 4, 3)
	path := filepath.Join(t.TempDir(), "a.gguf")
	const alpha = 8
	if err := WriteAdapterFile(path, "llama", alpha, tensors, map[string]string{"bpo.loss": "test"}); err != nil {
		t.Fatal(err)
	}
	back, err := ReadAdapterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Alpha != alpha || len(back.Tensors) != len(tensors) || back.Meta["bpo.loss"] != "test" || back.Tensors[3].B[5] != tensors[3].B[5] {
		t.Fatalf("adapter round trip: %+v", back.Meta)
	}
	ad, err := LoadAdapter(m, path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := mustContext(t, m, ContextOptions{NCtx: 256})
	toks := mustTokenize(t, m, storyPrompts[0], true)
	base, err := ctx.TokenLogProbs(context.Background(), toks)
	if err != nil {
		t.Fatal(err)
	}
	for _, scale := range []float32{1, 0.5} {
		if err := ctx.SetAdapters(AdapterScale{ad, scale}); err != nil {
			t.Fatal(err)
		}
		got, err := ctx.TokenLogProbs(context.Background(), toks)
		if err != nil {
			t.Fatal(err)
		}
		ref := loadRefModel(t, fixture.File(t, stories260K))
		mergeLoRA(ref, tensors, alpha, scale)
		want := ref.logProbs(toks)
		maxDiff, moved := 0.0, 0.0
		for i := range want {
			maxDiff = math.Max(maxDiff, math.Abs(got[i]-want[i]))
			moved = math.Max(moved, math.Abs(got[i]-base[i]))
		}
		t.Logf("scale %v: max |llama.cpp+adapter - merged reference| = %.2g (adapter moved log-probs by up to %.2g)", scale, maxDiff, moved)
		if maxDiff > 2e-3 || moved < 1e-2 {
			t.Errorf("scale %v: diff %.3g (want <= 2e-3), moved %.3g (want >= 1e-2)", scale, maxDiff, moved)
		}
	}
	// Removing the adapter restores the base model exactly.
	if err := ctx.SetAdapters(); err != nil {
		t.Fatal(err)
	}
	again, err := ctx.TokenLogProbs(context.Background(), toks)
	if err != nil {
		t.Fatal(err)
	}
	for i := range base {
		if again[i] != base[i] {
			t.Fatalf("after removing the adapter token %d: %v, base %v", i, again[i], base[i])
		}
	}
	// Two adapters at once: the second one's effect adds to the first.
	tensors2 := loratest.Random(t, m.File(), []string{"blk.0.ffn_up.weight"}, 2, 11)
	path2 := filepath.Join(t.TempDir(), "b.gguf")
	if err := WriteAdapterFile(path2, "llama", 2, tensors2, nil); err != nil {
		t.Fatal(err)
	}
	ad2, err := LoadAdapter(m, path2)
	if err != nil {
		t.Fatal(err)
	}
	if err := ctx.SetAdapters(AdapterScale{ad, 1}, AdapterScale{ad2, 1}); err != nil {
		t.Fatal(err)
	}
	both, err := ctx.TokenLogProbs(context.Background(), toks)
	if err != nil {
		t.Fatal(err)
	}
	ref := loadRefModel(t, fixture.File(t, stories260K))
	mergeLoRA(ref, tensors, alpha, 1)
	mergeLoRA(ref, tensors2, 2, 1)
	want := ref.logProbs(toks)
	for i := range want {
		if math.Abs(both[i]-want[i]) > 2e-3 {
			t.Fatalf("two adapters, token %d: %v vs reference %v", i, both[i], want[i])
		}
	}
}

func TestAdapterErrors(t *testing.T) {
	m := mustLoad(t, fixture.File(t, stories260K))
	dir := t.TempDir()
	qwen := mustLoad(t, randomModel(t, smallSpec(t, "qwen2", ggml.TypeF32)))
	qwenAdapter := filepath.Join(dir, "qwen.gguf")
	if err := WriteAdapterFile(qwenAdapter, "qwen2", 4, loratest.Random(t, qwen.File(), []string{"blk.0.attn_q.weight"}, 2, 1), nil); err != nil {
		t.Fatal(err)
	}
	// Same architecture, wrong shape: a llama adapter made for the 64-wide llama3 model.
	l3 := mustLoad(t, randomModel(t, smallSpec(t, "llama3", ggml.TypeF32)))
	wrongShape := filepath.Join(dir, "shape.gguf")
	if err := WriteAdapterFile(wrongShape, "llama", 4, loratest.Random(t, l3.File(), []string{"blk.0.ffn_up.weight"}, 2, 1), nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path string
		want       error
	}{
		{"other architecture", qwenAdapter, ErrAdapterMismatch},
		{"wrong shape", wrongShape, ErrAdapterMismatch},
		{"a model, not an adapter", fixture.File(t, stories260K), ErrNotAdapter},
		{"missing file", filepath.Join(dir, "nope.gguf"), errNotExist},
	}
	for _, c := range cases {
		_, err := LoadAdapter(m, c.path)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
	// An adapter loaded for one model cannot be applied to a context of another.
	ad, err := LoadAdapter(qwen, qwenAdapter)
	if err != nil {
		t.Fatal(err)
	}
	ctx := mustContext(t, m, ContextOptions{NCtx: 64})
	if err := ctx.SetAdapters(AdapterScale{ad, 1}); !errors.Is(err, ErrAdapterMismatch) {
		t.Errorf("foreign adapter: got %v", err)
	}
}
