package ggml_test

import (
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/vulkantest"
)

// TestVulkanPortableForms computes every portable form of TestPortableForms on Vulkan0 (the inputs in
// device memory, so that the ops run there), three times, against the same float64 references, and
// checks that the scheduler runs each graph in one split (no op falls back to the CPU).
//
// Each case gets a Vulkan backend of its own: one backend computing graphs of different shapes one
// after the other corrupted the host heap in most runs on lavapipe ("double free or corruption",
// "corrupted double-linked list") as soon as a mul_mat of an in-graph cont(transpose(x)) went from
// ggml-vulkan's matrix path (many columns) to its vector path (few) or back; each shape alone, a fresh
// backend per shape, or the same products of input tensors never did.
func TestVulkanPortableForms(t *testing.T) {
	vulkantest.Need(t)
	for _, name := range ggml.PortableCaseNames() {
		t.Run(name, func(t *testing.T) {
			dev, err := ggml.NewDeviceBackend("Vulkan0", 1)
			if err != nil {
				t.Fatal(err)
			}
			defer dev.Free()
			for rep := range 3 {
				rel, splits := ggml.RunPortableCase(t, name, dev)
				if rep == 0 {
					t.Logf("max error %.2g, %d splits", rel, splits)
				}
				if !(rel <= 1e-5) {
					t.Fatalf("run %d: max error %.3g > 1e-5", rep, rel)
				}
				if splits != 1 { // every op on the device: no CPU split
					t.Fatalf("run %d: %d backend splits, want 1", rep, splits)
				}
			}
		})
	}
}
