package nn

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/internal/vulkantest"
	"github.com/bpo-dev/bpo/lora"
)

// deviceStep is what one LoRA training step over a batch gives: per-token log-probs of the forward
// pass, then the log-prob sums and every parameter's gradient of a step with row weights.
type deviceStep struct {
	logp  [][]float64
	sums  []float64
	grads map[string][]float32
}

// runDeviceStep runs the forward pass and a gradient step over seqs on a new TrainModel on device
// (with the chunk limits given, when not zero), each twice to see that no state is left over.
func runDeviceStep(t *testing.T, path string, lora []lora.Tensor, device string, limits chunkLimits, seqs []TrainSeq) deviceStep {
	t.Helper()
	tm, err := NewTrainModel(path, TrainOptions{LoRA: lora, LoRAAlpha: 4, Threads: 1, Device: device})
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close()
	if tm.TrainDevice().IsCPU() != (device == "cpu") {
		t.Fatalf("train model on %+v, want %s", tm.TrainDevice(), device)
	}
	if limits != (chunkLimits{}) {
		tm.limits = limits
	}
	coef := []float64{1, -0.5, 0.25, -2}
	var out deviceStep
	for range 2 {
		if out.logp, err = tm.LogProbs(seqs); err != nil {
			t.Fatal(err)
		}
		tm.ZeroGrads()
		out.sums, err = tm.LogProbsAndGradient(seqs, func(s []float64) ([]float64, error) { return coef[:len(s)], nil })
		if err != nil {
			t.Fatalf("gradient on %s: %v", device, err)
		}
	}
	out.grads = map[string][]float32{}
	for _, p := range tm.Params() {
		out.grads[p.Name] = slices.Clone(p.Grad)
	}
	return out
}

// TestVulkanTrainStepMatchesCPU runs the LoRA training step (LoRA on every target, B non-zero) with the
// weights and LoRA tensors on Vulkan0 and on the CPU over a batch of three sequences of different
// lengths (66 tokens with padding, so that matrix products span several 32-token tiles: see
// ggml.serialLavapipe), for stories260K (llama; with the default chunking and with attention and head
// chunks so small that every layer has several of each) and random qwen2, qwen3 and gemma3 models (the
// architectures of deviceArchitectures). Per-token log-probs must agree to 1e-3 and every gradient
// tensor to 1e-3 relative (||dev - cpu|| / ||cpu||). Full-parameter training is refused on a device.
func TestVulkanTrainStepMatchesCPU(t *testing.T) {
	vulkantest.Need(t)
	qwen2 := smallSpec(t, "qwen2", ggml.TypeF32)
	gemma3 := smallSpec(t, "gemma3", ggml.TypeF32)
	gemma3.Layers, gemma3.HeadDim, gemma3.SlidingWindow = 6, 32, 4
	cases := []struct {
		name, path string
		limits     chunkLimits
	}{
		{"stories260K", fixture.File(t, stories260K), chunkLimits{}},
		{"stories260K-small-chunks", fixture.File(t, stories260K), chunkLimits{attention: 8 * 22 * 3, head: 512 * 5}},
		{"qwen2-random-f32", randomModel(t, qwen2), chunkLimits{}},
		{"qwen3-random-f32", randomModel(t, smallSpec(t, "qwen3", ggml.TypeF32)), chunkLimits{}},
		{"gemma3-random-f32", randomModel(t, gemma3), chunkLimits{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := mustLoad(t, tc.path)
			seqs := trainSeqs(t, m, trainTexts)
			lora := allLoRA(t, m.File(), m.Info().Layers, 2, 0.05, 5)
			cpu := runDeviceStep(t, tc.path, lora, "cpu", tc.limits, seqs)
			dev := runDeviceStep(t, tc.path, lora, "vulkan0", tc.limits, seqs)
			worstLogp := 0.0
			for s := range cpu.logp {
				if len(cpu.logp[s]) != len(dev.logp[s]) || len(cpu.logp[s]) == 0 {
					t.Fatalf("sequence %d: %d vs %d log-probs", s, len(cpu.logp[s]), len(dev.logp[s]))
				}
				for k := range cpu.logp[s] {
					worstLogp = math.Max(worstLogp, math.Abs(cpu.logp[s][k]-dev.logp[s][k]))
				}
				worstLogp = math.Max(worstLogp, math.Abs(cpu.sums[s]-dev.sums[s]))
			}
			worstRel, worstElem, worstName := 0.0, 0.0, ""
			for name, gc := range cpu.grads {
				gd := dev.grads[name]
				var diff, norm float64
				for i := range gc {
					d := float64(gd[i] - gc[i])
					diff += d * d
					norm += float64(gc[i]) * float64(gc[i])
					worstElem = math.Max(worstElem, math.Abs(d))
				}
				if norm == 0 {
					t.Fatalf("gradient of %s is zero on the CPU", name)
				}
				if rel := math.Sqrt(diff / norm); !(rel <= worstRel) {
					worstRel, worstName = rel, name
				}
			}
			t.Logf("%d sequences, %d gradient tensors: largest |log p(cpu) - log p(vulkan0)| %.2e; largest relative gradient difference %.2e (%s), largest elementwise %.2e",
				len(seqs), len(cpu.grads), worstLogp, worstRel, worstName, worstElem)
			if worstLogp > 1e-3 {
				t.Errorf("log-probs differ by %.2e > 1e-3", worstLogp)
			}
			if worstRel > 1e-3 || math.IsNaN(worstRel) {
				t.Errorf("gradient of %s differs by %.2e > 1e-3 relative", worstName, worstRel)
			}
		})
	}
	path := fixture.File(t, stories260K)
	if _, err := NewTrainModel(path, TrainOptions{FullParams: true, Device: "vulkan0"}); err == nil || !errors.Is(err, ggml.ErrDevice) ||
		!strings.Contains(err.Error(), "full-parameter training runs on the CPU only") {
		t.Fatalf("full-parameter training on vulkan0: error %v, want ErrDevice", err)
	}
}

// TestTrainModelDeviceErrors: an unknown device is an ErrDevice naming the model file, before any
// weight is loaded.
func TestTrainModelDeviceErrors(t *testing.T) {
	path := fixture.File(t, stories260K)
	m := mustLoad(t, path)
	_, err := NewTrainModel(path, TrainOptions{LoRA: allLoRA(t, m.File(), m.Info().Layers, 2, 0, 1), LoRAAlpha: 4, Threads: 1, Device: "vulkan9"})
	if err == nil || !errors.Is(err, ggml.ErrDevice) || !strings.Contains(err.Error(), `stories260K.gguf: device error: unknown device "vulkan9"`) {
		t.Fatalf("train model on vulkan9: error %v, want ErrDevice naming the file", err)
	}
}
