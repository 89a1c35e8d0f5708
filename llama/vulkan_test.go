package llama

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/internal/vulkantest"
)

// vulkanLogProbTol bounds |log p(cpu) - log p(vulkan0)| with an F32 KV cache, the bound
// (see TestVulkanLogProbsMatchCPU). vulkanF16LogProbTol bounds it with an F16 cache, where both backends
// round K, Q and the attention weights to F16, each in its own order.
const (
	vulkanLogProbTol    = 1e-3
	vulkanF16LogProbTol = 1e-2
)

// TestCPUModelStaysOnCPU: a model loaded for the CPU computes on the CPU alone once a backend library
// is loaded. Without an explicit empty device list llama.cpp would take the Vulkan device into the
// model's contexts and offload batches of 32 tokens or more to it, which changed the log-probs. The test
// loads the Vulkan backend itself, so it must run before the other Vulkan tests of this package.
func TestCPUModelStaysOnCPU(t *testing.T) {
	vulkantest.Dir(t)
	if len(ggml.Devices()) > 1 {
		t.Fatalf("a backend library is already loaded (devices %+v): run this test first", ggml.Devices())
	}
	path := randomModel(t, smallSpec(t, "qwen2", ggml.TypeF32))
	text := strings.Repeat("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. ", 3)
	score := func() []float64 {
		m, err := LoadModel(path, ModelOptions{Device: "cpu"})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		ctx, err := NewContext(m, ContextOptions{NCtx: 256, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer ctx.Close()
		toks := mustTokenize(t, m, text, true)
		if len(toks) < 64 {
			t.Fatalf("%d tokens, want a batch of at least 64", len(toks))
		}
		lp, err := ctx.TokenLogProbs(context.Background(), toks)
		if err != nil {
			t.Fatal(err)
		}
		return lp
	}
	before := score()
	vulkantest.Need(t)
	after := score()
	if !slices.Equal(before, after) {
		t.Fatalf("a CPU model's log-probs changed once the Vulkan backend was loaded:\nbefore %v\nafter  %v", before[:8], after[:8])
	}
}

// TestVulkanLogProbsMatchCPU scores the same texts with the weights on the CPU and on Vulkan0, with
// an F32 KV cache (exact log-probs). Measured on lavapipe (LLVM 15): 8.7e-6 (stories260K), 1.5e-5
// (qwen2), 1.4e-6 (qwen3), 2.3e-4 (gemma3). With an F32 cache the attention runs on the host
// (NewContext): on the device ggml-vulkan rounded K and Q to F16 in K·Q, 6.8e-3 (stories260K) and
// 4.0e-3 (qwen2) (TestVulkanNodesMatchCPU names such a node). An F16 cache (KVF16) is not compared:
// rounding values that differ by 1e-6 to F16 lands some on different F16 neighbours, 2.6e-3 apart
// (stories260K, attention on the host) to 1.8e-2 (attention on the device, as KVF16 keeps it). Q8_0
// weights are not compared: the CPU quantizes activations to Q8_0 and ggml-vulkan does not, which moved
// log-probs of the random qwen2 model by 0.22.
func TestVulkanLogProbsMatchCPU(t *testing.T) {
	vulkantest.Need(t)
	// Six layers: llama.cpp's gemma3 makes every sixth layer global, and a model of sliding-window
	// layers only aborts its decode (GGML_ASSERT(buffer), on the CPU too).
	gemma3 := smallSpec(t, "gemma3", ggml.TypeF32)
	gemma3.Layers, gemma3.SlidingWindow = 6, 4
	cases := []struct{ name, path string }{
		{"stories260K", fixture.File(t, stories260K)},
		{"qwen2-random-f32", randomModel(t, smallSpec(t, "qwen2", ggml.TypeF32))},
		{"qwen3-random-f32", randomModel(t, smallSpec(t, "qwen3", ggml.TypeF32))},
		{"gemma3-random-f32", randomModel(t, gemma3)},
	}
	texts := []string{"Once upon a time, there was a little girl who liked to play.", "Natalia sold clips to 48 of her friends in April."}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got [2][][]float64
			for i, device := range []string{"cpu", "vulkan0"} {
				m, err := LoadModel(tc.path, ModelOptions{Device: device})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { m.Close() }) // after the context's cleanup (mustContext)
				if m.Device().IsCPU() != (device == "cpu") {
					t.Fatalf("model on %+v, want %s", m.Device(), device)
				}
				ctx := mustContext(t, m, ContextOptions{NCtx: 256, Threads: 1})
				for _, text := range texts {
					lp, err := ctx.TokenLogProbs(context.Background(), mustTokenize(t, m, text, true))
					if err != nil {
						t.Fatal(err)
					}
					got[i] = append(got[i], lp)
				}
			}
			worst := 0.0
			for j := range texts {
				if len(got[0][j]) != len(got[1][j]) || len(got[0][j]) < 5 {
					t.Fatalf("text %d: %d vs %d log-probs", j, len(got[0][j]), len(got[1][j]))
				}
				for k := range got[0][j] {
					worst = math.Max(worst, math.Abs(got[0][j][k]-got[1][j][k]))
				}
			}
			t.Logf("largest |log p(cpu) - log p(vulkan0)| = %.2e", worst)
			if worst > vulkanLogProbTol {
				t.Fatalf("log-probs differ by %.2e > %g", worst, vulkanLogProbTol)
			}
		})
	}
}

// TestModelDeviceErrors: a model asked onto an unknown device, or onto one with too little memory, is
// an ErrDevice that names the file, before llama.cpp is called.
func TestModelDeviceErrors(t *testing.T) {
	path := fixture.File(t, stories260K)
	_, err := LoadModel(path, ModelOptions{Device: "cuda3"})
	if err == nil || !errors.Is(err, ErrDevice) || !strings.Contains(err.Error(), `stories260K.gguf: device error: unknown device "cuda3"`) {
		t.Fatalf("model on cuda3: error %v, want ErrDevice naming the file", err)
	}
	// "cpu" and "" are the CPU.
	for _, opts := range []ModelOptions{{Device: "cpu"}, {Device: ""}} {
		m, err := LoadModel(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Device().IsCPU() {
			t.Errorf("model with %+v on %+v, want the CPU", opts, m.Device())
		}
		m.Close()
	}
	if err := deviceLoadError(path, ggml.DeviceInfo{Name: "Vulkan0", Description: "llvmpipe"}); !errors.Is(err, ErrDevice) ||
		!strings.Contains(err.Error(), "could not load it onto vulkan0 (llvmpipe;") {
		t.Errorf("device load error %v", err)
	}
}

// TestVulkanMaxUbatch: the micro-batch bound keeps a batch's logits, and with device attention its
// K·Q scores, within the 128 MiB every Vulkan device addresses.
func TestVulkanMaxUbatch(t *testing.T) {
	for _, tc := range []struct {
		vocab, nCtx, heads int
		deviceAttention    bool
		want               int
	}{
		{151936, 4096, 14, false, 220}, // qwen2: 220 rows of 607,744 bytes
		{128256, 4096, 32, false, 261}, // llama 3
		{512, 256, 8, false, 65536},    // stories260K: no bound in practice
		{32000, 4096, 32, true, 256},   // K·Q of 4,096 cells x 32 heads: 512 KiB a token
		{32000, 256, 8, true, 1048},    // the logits bound again
		{1 << 26, 1, 1, false, 1},      // at least one token
	} {
		got := vulkanMaxUbatch(tc.vocab, tc.nCtx, tc.heads, tc.deviceAttention)
		if got != tc.want {
			t.Errorf("vulkanMaxUbatch(%d, %d, %d, %v) = %d, want %d", tc.vocab, tc.nCtx, tc.heads, tc.deviceAttention, got, tc.want)
		}
		if got > 1 && got*4*max(tc.vocab, map[bool]int{true: tc.nCtx * tc.heads}[tc.deviceAttention]) > vulkanStorageRange {
			t.Errorf("%+v: %d tokens exceed %d bytes", tc, got, vulkanStorageRange)
		}
	}
}

// TestVulkanLongBatchLogProbsMatchCPU scores 301 tokens of a qwen2-shaped model (151,936-token
// vocabulary) in one batch: more rows of logits than fit the 128 MiB a Vulkan shader may address.
// Before NewContext bounded the micro-batch (vulkanMaxUbatch), rows past the 221st came out hundreds of
// nats off (287 on a Qwen2.5-shaped model of 8 layers). The model's K and V projections have 128 rows:
// ggml-vulkan's products with 32 rows or fewer and a few hundred columns come out wrong in some runs
// on lavapipe (see ggml's TestVulkanMulMatRepeatable), so the small test models would make it flaky.
func TestVulkanLongBatchLogProbsMatchCPU(t *testing.T) {
	vulkantest.Need(t)
	spec := smallSpec(t, "qwen2", ggml.TypeF32)
	spec.Embedding, spec.FeedForward, spec.Heads, spec.HeadsKV = 128, 256, 4, 4
	path := randomModel(t, spec)
	text := strings.Repeat("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. ", 12)
	var got [2][]float64
	for i, device := range []string{"cpu", "vulkan0"} {
		m, err := LoadModel(path, ModelOptions{Device: device})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		ctx := mustContext(t, m, ContextOptions{NCtx: 512, Threads: 1})
		toks := mustTokenize(t, m, text, true)
		if len(toks) <= 222 {
			t.Fatalf("%d tokens, want more than 222", len(toks))
		}
		if got[i], err = ctx.TokenLogProbs(context.Background(), toks); err != nil {
			t.Fatal(err)
		}
	}
	worst := 0.0
	for k := range got[0] {
		worst = math.Max(worst, math.Abs(got[0][k]-got[1][k]))
	}
	t.Logf("%d tokens: largest |log p(cpu) - log p(vulkan0)| = %.2e", len(got[0]), worst)
	if len(got[0]) != len(got[1]) || worst > vulkanLogProbTol {
		t.Fatalf("%d vs %d log-probs, %.2e apart > %g", len(got[0]), len(got[1]), worst, vulkanLogProbTol)
	}
}
