package nn

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/internal/vulkantest"
)

// TestVulkanTrainGraphLogProbsMatchCPU runs the training graph's forward pass (LoRA on every target)
// with the weights and LoRA tensors on Vulkan0 and on the CPU, three sequences of different lengths,
// for stories260K (llama) and a random qwen2 model. Gradients on the device are refused with ErrDevice
// until they match (see runStepOnDevice), and so are full-parameter training and the architectures not
// yet verified on a device (qwen3, gemma3: see deviceArchitectures).
func TestVulkanTrainGraphLogProbsMatchCPU(t *testing.T) {
	vulkantest.Need(t)
	qwen2 := smallSpec(t, "qwen2", ggml.TypeF32)
	cases := []struct{ name, path string }{
		{"stories260K", fixture.File(t, stories260K)},
		{"qwen2-random-f32", randomModel(t, qwen2)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := mustLoad(t, tc.path)
			seqs := trainSeqs(t, m, trainTexts)
			lora := allLoRA(t, m.File(), m.Info().Layers, 2, 0.05, 5)
			var logp [2][][]float64
			for i, device := range []string{"cpu", "vulkan0"} {
				tm, err := NewTrainModel(tc.path, TrainOptions{LoRA: lora, LoRAAlpha: 4, Threads: 1, Device: device})
				if err != nil {
					t.Fatal(err)
				}
				defer tm.Close()
				if tm.TrainDevice().IsCPU() != (device == "cpu") {
					t.Fatalf("train model on %+v, want %s", tm.TrainDevice(), device)
				}
				for rep := range 2 { // the same twice: no state left over between steps
					lp, err := tm.LogProbs(seqs)
					if err != nil {
						t.Fatal(err)
					}
					if rep == 1 {
						logp[i] = lp
					}
				}
				_, err = tm.LogProbsAndGradient(seqs, func(s []float64) ([]float64, error) { return make([]float64, len(s)), nil })
				if device == "cpu" && err != nil {
					t.Fatalf("gradient on the CPU: %v", err)
				}
				if device != "cpu" && (err == nil || !errors.Is(err, ggml.ErrDevice) || !strings.Contains(err.Error(), "gradients on vulkan0 do not match the CPU yet")) {
					t.Fatalf("gradient on %s: error %v, want ErrDevice", device, err)
				}
			}
			worst := 0.0
			for s := range logp[0] {
				if len(logp[0][s]) != len(logp[1][s]) || len(logp[0][s]) == 0 {
					t.Fatalf("sequence %d: %d vs %d log-probs", s, len(logp[0][s]), len(logp[1][s]))
				}
				for k := range logp[0][s] {
					worst = math.Max(worst, math.Abs(logp[0][s][k]-logp[1][s][k]))
				}
			}
			t.Logf("largest |log p(cpu) - log p(vulkan0)| over %d sequences: %.2e", len(seqs), worst)
			if worst > 1e-3 {
				t.Fatalf("training-graph log-probs differ by %.2e > 1e-3", worst)
			}
		})
	}
	path := fixture.File(t, stories260K)
	if _, err := NewTrainModel(path, TrainOptions{FullParams: true, Device: "vulkan0"}); err == nil || !errors.Is(err, ggml.ErrDevice) ||
		!strings.Contains(err.Error(), "full-parameter training runs on the CPU only") {
		t.Fatalf("full-parameter training on vulkan0: error %v, want ErrDevice", err)
	}
	gemma3 := smallSpec(t, "gemma3", ggml.TypeF32)
	gemma3.Layers, gemma3.HeadDim, gemma3.SlidingWindow = 6, 32, 4
	for _, spec := range []RandomModelSpec{smallSpec(t, "qwen3", ggml.TypeF32), gemma3} {
		path := randomModel(t, spec)
		m := mustLoad(t, path)
		_, err := NewTrainModel(path, TrainOptions{LoRA: allLoRA(t, m.File(), m.Info().Layers, 2, 0, 1), LoRAAlpha: 4, Threads: 1, Device: "vulkan0"})
		if err == nil || !errors.Is(err, ggml.ErrDevice) || !strings.Contains(err.Error(), "training graph does not run on vulkan0 yet") {
			t.Errorf("%s on vulkan0: error %v, want ErrDevice", spec.Arch, err)
		}
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
