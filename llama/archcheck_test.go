package llama

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/nn"
)

// TestArchKeyChecks checks that the hyper-parameters llama.cpp's qwen3 and gemma3 code asserts on or
// divides by are refused with an error naming the key, before llama.cpp sees them.
func TestArchKeyChecks(t *testing.T) {
	paths := map[string]string{}
	for _, spec := range []nn.RandomModelSpec{
		{Arch: "qwen3", VocabFrom: fixture.File(t, vocabSPM), Layers: 1, Embedding: 64, FeedForward: 64, Heads: 4, HeadsKV: 2, HeadDim: 32, Type: ggml.TypeF32},
		{Arch: "gemma3", VocabFrom: fixture.File(t, vocabSPM), Layers: 6, Embedding: 64, FeedForward: 64, Heads: 4, HeadsKV: 2, HeadDim: 32, SlidingWindow: 4, Type: ggml.TypeF32},
	} {
		paths[spec.Arch] = filepath.Join(t.TempDir(), spec.Arch+".gguf")
		if err := nn.WriteRandomModel(paths[spec.Arch], spec); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		arch, key string
		value     any // nil deletes the key
		want      string
	}{
		{"qwen3", "", nil, ""},
		{"qwen3", "qwen3.rope.dimension_count", uint32(16), "qwen3.rope.dimension_count"},
		{"qwen3", "qwen3.attention.value_length", uint32(16), "qwen3.attention.value_length"},
		{"qwen3", "qwen3.attention.value_length", nil, "qwen3.attention.value_length"},
		{"gemma3", "", nil, ""},
		{"gemma3", "gemma3.attention.sliding_window", float32(4), "gemma3.attention.sliding_window"},
		{"gemma3", "gemma3.final_logit_softcapping", float32(-30), "gemma3.final_logit_softcapping"},
		{"gemma3", "gemma3.final_logit_softcapping", uint32(30), "gemma3.final_logit_softcapping"},
		{"gemma3", "gemma3.block_count", uint32(5), "gemma3.block_count"},
	}
	for _, c := range cases {
		f, err := ggml.ReadGGUF(paths[c.arch])
		if err != nil {
			t.Fatal(err)
		}
		if c.key != "" {
			if c.value == nil {
				delete(f.KV, c.key)
			} else {
				f.KV[c.key] = c.value
			}
		}
		err = validateModelFile(f, false)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s as written: %v", c.arch, err)
		case c.want != "" && (!errors.Is(err, ggml.ErrInvalidArgument) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s with %s = %v: got %v, want an ErrInvalidArgument naming %s", c.arch, c.key, c.value, err, c.want)
		}
	}
}
