// Package vulkantest gives the Vulkan device tests (ggml, llama, nn, cmd/bpo) the backend library that
// `make vulkan` builds and Mesa's software Vulkan device (lavapipe). Without the library a test says so
// loudly on stderr and is skipped; with BPO_REQUIRE_VULKAN=1 (CI after `make vulkan`) it fails instead.
package vulkantest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
)

// Dir returns the folder that holds libggml-vulkan.so: $BPO_BACKEND_DIR when set, else the repository's
// build/vulkan/lib/ollama. It also sets the environment the device tests need before the backend is
// loaded: GGML_VK_VISIBLE_DEVICES=0 (ggml-vulkan hides CPU-type devices such as lavapipe unless they are
// listed; kept when already set) and GGML_VK_DISABLE_F16=1 (lavapipe reports fp16 support, and then
// ggml-vulkan multiplies F32 matrices in F16, 2.2e-2 apart from the CPU in log-probs; the tests compare
// F32 arithmetic). ggml-vulkan reads both once, when its backend starts.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("BPO_BACKEND_DIR")
	if dir == "" {
		dir = filepath.Join(fixture.Root(t), "build", "vulkan", "lib", "ollama")
	}
	lib := filepath.Join(dir, "libggml-vulkan.so")
	if _, err := os.Stat(lib); err != nil {
		msg := fmt.Sprintf("*** Vulkan device tests did NOT run: %s is not built (run `make vulkan`) ***", lib)
		if os.Getenv("BPO_REQUIRE_VULKAN") == "1" {
			t.Fatal(msg)
		}
		fmt.Fprintln(os.Stderr, msg)
		t.Skip(msg)
	}
	if os.Getenv("GGML_VK_VISIBLE_DEVICES") == "" {
		os.Setenv("GGML_VK_VISIBLE_DEVICES", "0")
	}
	os.Setenv("GGML_VK_DISABLE_F16", "1")
	return dir
}

// Lib is the path of libggml-vulkan.so in Dir.
func Lib(t testing.TB) string {
	t.Helper()
	return filepath.Join(Dir(t), "libggml-vulkan.so")
}

// Need loads the Vulkan backend into this process (see Dir) and returns its first device, vulkan0,
// checking that it is a Vulkan device with memory figures.
func Need(t testing.TB) ggml.DeviceInfo {
	t.Helper()
	if err := ggml.LoadBackend(Lib(t)); err != nil {
		t.Fatal(err)
	}
	dev, err := ggml.ResolveDevice("vulkan0")
	if err != nil {
		t.Fatal(err)
	}
	if dev.Backend != "Vulkan" || dev.IsCPU() || dev.TotalBytes == 0 {
		t.Fatalf("vulkan0 = %+v, want a Vulkan device with memory figures", dev)
	}
	return dev
}
