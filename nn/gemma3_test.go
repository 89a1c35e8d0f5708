package nn

import (
	"errors"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
)

// gemma3Spec is a small random Gemma 3 for the training-graph tests: 6 layers (5 sliding-window, 1
// global, so both rope bases and both masks are used) with a window of 4 positions, shorter than the
// training texts; heads of 32 (not embedding/heads = 16); stories260K's 512-token SPM vocabulary.
func gemma3Spec(t testing.TB) RandomModelSpec {
	return RandomModelSpec{Arch: "gemma3", VocabFrom: fixture.File(t, stories260K), Layers: 6, Embedding: 64, FeedForward: 128,
		Heads: 4, HeadsKV: 2, HeadDim: 32, SlidingWindow: 4, Type: ggml.TypeF32, TiedOutput: true, Seed: 12}
}

// TestGemma3FullParamsRefused: the full-parameter graph does not build Gemma 3's blocks, and says so.
func TestGemma3FullParamsRefused(t *testing.T) {
	_, err := NewTrainModel(randomModel(t, gemma3Spec(t)), TrainOptions{FullParams: true, Threads: 1})
	if !errors.Is(err, ggml.ErrUnsupportedArch) || !strings.Contains(err.Error(), "full-parameter training does not build") {
		t.Fatalf("got %v, want ErrUnsupportedArch naming what the full-parameter graph lacks", err)
	}
}
