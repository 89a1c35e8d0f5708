package ggml_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/vulkantest"
)

// mulMatOn computes W X (W: k x m weights, X: k x n) on a scheduler over backends, the inputs in the
// first backend's memory.
func mulMatOn(t *testing.T, w, x []float32, k, m, n int, backends ...*ggml.Backend) []float32 {
	t.Helper()
	wctx := ggml.NewGContext(2, 0, false)
	defer wctx.Free()
	W := wctx.NewTensor(ggml.TypeF32, int64(k), int64(m)).SetName("w")
	X := wctx.NewTensor(ggml.TypeF32, int64(k), int64(n)).SetName("x")
	buf, err := backends[0].AllocTensors(wctx)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Free()
	if err := W.SetFloat32(w); err != nil {
		t.Fatal(err)
	}
	if err := X.SetFloat32(x); err != nil {
		t.Fatal(err)
	}
	sched, err := ggml.NewScheduler(64, backends...)
	if err != nil {
		t.Fatal(err)
	}
	defer sched.Free()
	g := ggml.NewGContext(4, 16, false)
	defer g.Free()
	y := g.MulMat(W, X)
	y.SetOutput()
	gr := g.NewGraph(16, false)
	gr.Expand(y)
	if err := sched.Alloc(gr); err != nil {
		t.Fatal(err)
	}
	if err := sched.Compute(gr); err != nil {
		t.Fatal(err)
	}
	return y.Float32(nil)
}

// TestVulkanMulMatRepeatable runs the same F32 product W X twenty times on Vulkan0 and asserts that it
// matches the CPU every time. Before LoadBackend set LP_NUM_THREADS=1 (see TestVulkanMulMatTiles),
// products whose W had 32 rows or fewer came out wrong on lavapipe in 0 to 18 of 20 runs, depending on
// the shape and the machine's load, whatever GGML_VK_DISABLE_ASYNC, _FUSION or _GRAPH_OPTIMIZE said.
func TestVulkanMulMatRepeatable(t *testing.T) {
	vulkantest.Need(t)
	vk, err := ggml.NewDeviceBackend("Vulkan0", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer vk.Free()
	cpu, err := ggml.NewCPUBackend(1)
	if err != nil {
		t.Fatal(err)
	}
	defer cpu.Free()
	rng := rand.New(rand.NewPCG(1, 2))
	const k, runs = 64, 20
	for _, m := range []int{16, 32, 64, 128} {
		for _, n := range []int{128, 326, 512} {
			w, x := make([]float32, k*m), make([]float32, k*n)
			for _, v := range [][]float32{w, x} {
				for i := range v {
					v[i] = float32(rng.NormFloat64())
				}
			}
			want := mulMatOn(t, w, x, k, m, n, cpu)
			wrong := 0
			for range runs {
				got := mulMatOn(t, w, x, k, m, n, vk, cpu)
				for i := range want {
					if math.Abs(float64(got[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
						wrong++
						break
					}
				}
			}
			t.Logf("%d x %d weights, %d columns: %d of %d runs wrong", m, k, n, wrong, runs)
			if wrong > 0 {
				t.Errorf("%d x %d weights, %d columns: %d of %d runs on vulkan0 differ from the CPU", m, k, n, wrong, runs)
			}
		}
	}
}
