package llama

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/lora"
	"github.com/bpo-dev/bpo/nn"
)

// allTargetLoRA makes LoRA pairs (values ~ N(0, std²)) for every projection of every layer of f.
func allTargetLoRA(t testing.TB, f *ggml.GGUFFile, rank int, std float64, seed uint64) []lora.Tensor {
	t.Helper()
	var names []string
	for _, tn := range f.Tensors {
		if lora.IsTarget(tn.Name) {
			names = append(names, tn.Name)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	var out []lora.Tensor
	for _, n := range names {
		w, _ := f.Tensor(n)
		lt := lora.Tensor{Base: n, Rank: rank, NIn: int(w.Shape[0]), NOut: int(w.Shape[1])}
		lt.A = make([]float32, rank*lt.NIn)
		lt.B = make([]float32, lt.NOut*rank)
		for _, v := range [][]float32{lt.A, lt.B} {
			for i := range v {
				v[i] = float32(rng.NormFloat64() * std)
			}
		}
		out = append(out, lt)
	}
	if len(out) == 0 {
		t.Fatalf("%s has no projections", f.Path)
	}
	return out
}

// logProbsWith scores text with model path, with the adapter at adapterPath applied unless it is "".
func logProbsWith(t *testing.T, path, adapterPath, text string) []float64 {
	t.Helper()
	m := mustLoad(t, path)
	ctx := mustContext(t, m, ContextOptions{NCtx: 256})
	if adapterPath != "" {
		ad, err := LoadAdapter(m, adapterPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := ctx.SetAdapters(AdapterScale{ad, 1}); err != nil {
			t.Fatal(err)
		}
	}
	toks := mustTokenize(t, m, text, true)
	lp, err := ctx.TokenLogProbs(context.Background(), toks)
	if err != nil {
		t.Fatal(err)
	}
	return lp
}

func maxAbsDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// q4kSpec is a llama-shaped model whose every row length is a multiple of Q4_K's 256-value block.
func q4kSpec(t testing.TB, typ ggml.GGMLType) nn.RandomModelSpec {
	return nn.RandomModelSpec{Arch: "llama", VocabFrom: fixture.File(t, vocabSPM), Layers: 1, Embedding: 256, FeedForward: 512, Heads: 4, HeadsKV: 2, Type: typ, Seed: 5}
}

// TestMergeMatchesAdapter compares the merged model with base + adapter through llama.cpp. F32
// merges must agree to 1e-3 per token. F16 and quantized merges round W + ΔW to the output type,
// so they must stay within twice the rounding error of that type, measured as the gap between the
// same weights in F32 and in the output type (both with the adapter applied).
func TestMergeMatchesAdapter(t *testing.T) {
	q8 := ggml.TypeQ8_0
	cases := []struct {
		name  string
		spec  nn.RandomModelSpec
		into  *ggml.GGMLType
		float bool
	}{
		{"llama3 f32", smallSpec(t, "llama3", ggml.TypeF32), nil, true},
		{"llama3 f16", smallSpec(t, "llama3", ggml.TypeF16), nil, false},
		{"qwen2 f32", smallSpec(t, "qwen2", ggml.TypeF32), nil, true},
		{"qwen2 f16", smallSpec(t, "qwen2", ggml.TypeF16), nil, false},
		{"qwen2 q8_0", smallSpec(t, "qwen2", ggml.TypeQ8_0), nil, false},
		{"llama q4_k", q4kSpec(t, ggml.TypeQ4_K), nil, false},
		{"llama3 f32 into q8_0", smallSpec(t, "llama3", ggml.TypeF32), &q8, false},
	}
	text := storyPrompts[0] + " " + storyPrompts[1]
	dir := t.TempDir()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := randomModel(t, c.spec)
			bf, err := ggml.ReadGGUF(base)
			if err != nil {
				t.Fatal(err)
			}
			adapter := filepath.Join(dir, c.spec.Arch+"-adapter.gguf")
			arch := bf.Arch()
			if err := WriteAdapterFile(adapter, arch, 8, allTargetLoRA(t, bf, 4, 0.05, uint64(i)), nil); err != nil {
				t.Fatal(err)
			}
			merged := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".gguf")
			res, err := MergeAdapter(base, adapter, merged, MergeOptions{Type: c.into})
			if err != nil {
				t.Fatal(err)
			}
			if res.Merged != 7*c.spec.Layers || res.Rank != 4 || res.Alpha != 8 {
				t.Fatalf("merge result %+v", res)
			}
			mf, err := ggml.ReadGGUF(merged)
			if err != nil {
				t.Fatal(err)
			}
			if mf.String("general.name") != bf.String("general.name") || mf.String("tokenizer.ggml.model") != bf.String("tokenizer.ggml.model") || mf.String("bpo.merged_adapter") != filepath.Base(adapter) {
				t.Fatalf("metadata not kept: name %q, tokenizer %q, merged_adapter %q", mf.String("general.name"), mf.String("tokenizer.ggml.model"), mf.String("bpo.merged_adapter"))
			}
			outType := c.spec.Type
			if c.into != nil {
				outType = *c.into
			}
			for j, tn := range mf.Tensors {
				want := bf.Tensors[j].Type
				if len(tn.Shape) == 2 && c.into != nil {
					want = *c.into
				}
				if tn.Name != bf.Tensors[j].Name || tn.Type != want {
					t.Fatalf("tensor %d: %s %s, want %s %s", j, tn.Name, tn.Type, bf.Tensors[j].Name, want)
				}
			}
			plain := logProbsWith(t, base, "", text)
			want := logProbsWith(t, base, adapter, text)
			got := logProbsWith(t, merged, "", text)
			diff, moved := maxAbsDiff(got, want), maxAbsDiff(want, plain)
			if moved < 1e-2 {
				t.Fatalf("the adapter moved log-probs by only %.3g: the test would prove nothing", moved)
			}
			if c.float {
				t.Logf("%s: max |merged - base+adapter| = %.3g over %d tokens (adapter moved them by up to %.3g)", c.name, diff, len(got), moved)
				if diff > 1e-3 {
					t.Fatalf("merged model differs from base+adapter by %.3g, want <= 1e-3", diff)
				}
				return
			}
			f32Spec, qSpec := c.spec, c.spec
			f32Spec.Type, qSpec.Type = ggml.TypeF32, outType
			quantErr := maxAbsDiff(logProbsWith(t, randomModel(t, f32Spec), adapter, text), logProbsWith(t, randomModel(t, qSpec), adapter, text))
			t.Logf("%s: max |merged - base+adapter| = %.3g; quantization error of %s on the same weights = %.3g (adapter moved log-probs by up to %.3g)", c.name, diff, outType, quantErr, moved)
			if outType == ggml.TypeF16 && c.spec.Type == ggml.TypeF16 {
				// The reference itself rounds: llama.cpp multiplies an F16 weight by activations
				// rounded to F16, while the adapter's product stays in F32. An F32 merge of the same
				// F16 base holds W + ΔW exactly, so its gap to base+adapter is that rounding alone.
				exact := filepath.Join(dir, "exact-f32.gguf")
				f32 := ggml.TypeF32
				if _, err := MergeAdapter(base, adapter, exact, MergeOptions{Type: &f32}); err != nil {
					t.Fatal(err)
				}
				ex := logProbsWith(t, exact, "", text)
				t.Logf("%s: exact F32 merge vs base+adapter %.3g (llama.cpp's F16 activation rounding); F16 merge vs exact F32 merge %.3g (rounding W + ΔW to F16)", c.name, maxAbsDiff(ex, want), maxAbsDiff(got, ex))
			}
			if diff > 2*quantErr {
				t.Fatalf("merged model differs from base+adapter by %.3g, more than twice %s's quantization error %.3g", diff, outType, quantErr)
			}
		})
	}
}

func TestMergeErrors(t *testing.T) {
	dir := t.TempDir()
	l3 := randomModel(t, smallSpec(t, "llama3", ggml.TypeF32))
	l3f16 := randomModel(t, smallSpec(t, "llama3", ggml.TypeF16))
	l3File, err := ggml.ReadGGUF(l3)
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.gguf")
	if err := WriteAdapterFile(good, "llama", 8, allTargetLoRA(t, l3File, 2, 0.05, 1), nil); err != nil {
		t.Fatal(err)
	}
	qwen := randomModel(t, smallSpec(t, "qwen2", ggml.TypeF32))
	qwenFile, err := ggml.ReadGGUF(qwen)
	if err != nil {
		t.Fatal(err)
	}
	qwenAdapter := filepath.Join(dir, "qwen.gguf")
	if err := WriteAdapterFile(qwenAdapter, "qwen2", 8, allTargetLoRA(t, qwenFile, 2, 0.05, 1), nil); err != nil {
		t.Fatal(err)
	}
	storiesFile, err := ggml.ReadGGUF(fixture.File(t, stories260K))
	if err != nil {
		t.Fatal(err)
	}
	storiesAdapter := filepath.Join(dir, "stories.gguf")
	if err := WriteAdapterFile(storiesAdapter, "llama", 8, allTargetLoRA(t, storiesFile, 2, 0.05, 1), nil); err != nil {
		t.Fatal(err)
	}
	huge := allTargetLoRA(t, l3File, 2, 0.05, 1)
	for i := range huge[0].B {
		huge[0].B[i] = 1e4
	}
	for i := range huge[0].A {
		huge[0].A[i] = 1e1
	}
	hugeAdapter := filepath.Join(dir, "huge.gguf")
	if err := WriteAdapterFile(hugeAdapter, "llama", 2, huge, nil); err != nil {
		t.Fatal(err)
	}
	q4k, q5 := ggml.TypeQ4_K, ggml.GGMLType(6) // q5_0: a valid ggml type without a place in MergeTypes
	cases := []struct {
		name, model, adapter string
		into                 *ggml.GGMLType
		want                 error
		msg                  string
	}{
		{"adapter for another architecture", l3, qwenAdapter, nil, ErrAdapterMismatch, `is for architecture "qwen2"`},
		{"adapter for another model", l3, storiesAdapter, nil, ErrAdapterMismatch, "do not fit base weight"},
		{"a model as the adapter", l3, fixture.File(t, stories260K), nil, ErrNotAdapter, `general.type = ""`},
		{"an adapter as the model", good, good, nil, ErrInvalidArgument, "is an adapter"},
		{"rows too short for q4_k", l3, good, &q4k, ErrInvalidArgument, "not a multiple of q4_K's block size 256"},
		{"type with no file type", l3, good, &q5, ErrInvalidArgument, "cannot merge into q5_0"},
		{"f16 cannot hold the result", l3f16, hugeAdapter, nil, ErrInvalidArgument, "which f16 cannot hold"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, "out.gguf")
			_, err := MergeAdapter(c.model, c.adapter, out, MergeOptions{Type: c.into})
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v containing %q", err, c.want, c.msg)
			}
			t.Log(err)
			if _, statErr := os.Stat(out); !os.IsNotExist(statErr) {
				t.Fatalf("a failed merge left %s behind", out)
			}
		})
	}
	if _, err := MergeAdapter(l3, good, l3, MergeOptions{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("merging over the base model: got %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
