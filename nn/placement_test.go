package nn

import (
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/internal/vulkantest"
)

// placementOf is the placement of one LoRA step (forward and backward) over trainTexts.
func placementOf(t *testing.T, path, device string) ggml.Placement {
	t.Helper()
	m := mustLoad(t, path)
	seqs := trainSeqs(t, m, trainTexts[:1])
	tm, err := NewTrainModel(path, TrainOptions{LoRA: allLoRA(t, m.File(), m.Info().Layers, 2, 0.05, 5), LoRAAlpha: 4, Threads: 1, Device: device})
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close()
	pl, err := tm.StepPlacement(seqs, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range pl.Rows {
		t.Logf("%-14s %-8s %4d  %s", r.Op, r.Backend, r.Nodes, r.Reason)
	}
	return pl
}

// TestStepPlacementCPU: on the CPU every node of a LoRA step is on the CPU, with no reason given,
// and the custom ops of the backward pass are among them.
func TestStepPlacementCPU(t *testing.T) {
	pl := placementOf(t, fixture.File(t, stories260K), "cpu")
	if pl.Device != "CPU" || pl.Nodes("CPU") != pl.Nodes("") || pl.Nodes("") < 100 {
		t.Fatalf("placement on the CPU: device %s, %d of %d nodes on the CPU", pl.Device, pl.Nodes("CPU"), pl.Nodes(""))
	}
	custom := 0
	for _, r := range pl.Rows {
		if r.Reason != "" {
			t.Errorf("%+v: a reason without a device", r)
		}
		if r.Op == "CUSTOM" {
			custom += r.Nodes
		}
	}
	if custom == 0 {
		t.Error("no custom op in the backward pass")
	}
}

// TestVulkanStepPlacement: with the weights on Vulkan0 the products run there; the nodes left on the
// CPU each carry a reason, and the custom ops are on the CPU as custom CPU ops.
func TestVulkanStepPlacement(t *testing.T) {
	vulkantest.Need(t)
	for _, path := range []string{fixture.File(t, stories260K), randomModel(t, smallSpec(t, "qwen2", ggml.TypeF32))} {
		pl := placementOf(t, path, "vulkan0")
		if pl.Device != "Vulkan0" || pl.Nodes("Vulkan0")+pl.Nodes("CPU") != pl.Nodes("") {
			t.Fatalf("%s: device %s, %d on Vulkan0 + %d on the CPU of %d", path, pl.Device, pl.Nodes("Vulkan0"), pl.Nodes("CPU"), pl.Nodes(""))
		}
		mulMatOnDevice := false
		for _, r := range pl.Rows {
			switch {
			case r.Backend == "CPU" && r.Reason == "":
				t.Errorf("%s: %+v on the CPU without a reason", path, r)
			case r.Op == "CUSTOM" && (r.Backend != "CPU" || r.Reason != "custom CPU op"):
				t.Errorf("%s: %+v, want the custom op on the CPU as a custom CPU op", path, r)
			case r.Op == "MUL_MAT" && r.Backend == "Vulkan0":
				mulMatOnDevice = true
			case r.Backend == "CPU" && strings.Contains(r.Reason, "does not support") && !strings.HasPrefix(r.Reason, "Vulkan0 "):
				t.Errorf("%s: %+v names another device", path, r)
			}
		}
		if !mulMatOnDevice {
			t.Errorf("%s: no MUL_MAT on Vulkan0", path)
		}
	}
}
