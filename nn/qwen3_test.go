package nn

import (
	"errors"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
)

// qwen3Spec is a small random Qwen3 for the training-graph tests: heads of 32 (not embedding/heads =
// 16, as real Qwen3 models differ), grouped-query attention, tied output, and stories260K's 512-token
// SPM vocabulary so that finite differences stay fast.
func qwen3Spec(t testing.TB) RandomModelSpec {
	return RandomModelSpec{Arch: "qwen3", VocabFrom: fixture.File(t, stories260K), Layers: 2, Embedding: 64, FeedForward: 128,
		Heads: 4, HeadsKV: 2, HeadDim: 32, Type: ggml.TypeF32, TiedOutput: true, Seed: 11}
}

// TestQwen3FullParamsRefused: the full-parameter graph does not build per-head Q/K norms, and says so.
func TestQwen3FullParamsRefused(t *testing.T) {
	_, err := NewTrainModel(randomModel(t, qwen3Spec(t)), TrainOptions{FullParams: true, Threads: 1})
	if !errors.Is(err, ggml.ErrUnsupportedArch) || !strings.Contains(err.Error(), "per-head Q/K norms") {
		t.Fatalf("got %v, want ErrUnsupportedArch naming the per-head Q/K norms", err)
	}
}
