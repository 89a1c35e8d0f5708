package ggml_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/vulkantest"
)

// vulkanAndCPU loads the Vulkan backend (vulkantest.Need) and starts a Vulkan0 backend and a CPU
// backend, one thread each, freed when the test ends.
func vulkanAndCPU(t *testing.T) (vk, cpu *ggml.Backend) {
	t.Helper()
	vulkantest.Need(t)
	vk, err := ggml.NewDeviceBackend("Vulkan0", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vk.Free)
	if cpu, err = ggml.NewCPUBackend(1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cpu.Free)
	return vk, cpu
}

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

// TestVulkanMulMatRepeatable runs F32 products W X on Vulkan0, several times each, and compares every
// element with a float64 product: shapes from one output column to several of ggml-vulkan's 32x32
// output tiles, with 1 to 128 weight rows (its small-tile and large-tile pipelines). On lavapipe with
// its default thread pool whole tiles came out zero or partly summed, differently in each run (32 rows
// or fewer: wrong in 0 to 18 of 20 runs, by shape and machine load, whatever GGML_VK_DISABLE_ASYNC,
// _FUSION or _GRAPH_OPTIMIZE said). LoadBackend's LP_NUM_THREADS=1 (ggml.serialLavapipe) is what this
// checks.
func TestVulkanMulMatRepeatable(t *testing.T) {
	vulkantest.Need(t)
	if v := os.Getenv("LP_NUM_THREADS"); v != "1" {
		t.Fatalf("LP_NUM_THREADS=%q after loading the backend, want 1", v)
	}
	vk, cpu := vulkanAndCPU(t)
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := []struct{ k, m, n, runs int }{
		{64, 1, 33, 3}, {64, 2, 66, 3}, {64, 3, 33, 3}, {64, 8, 128, 3}, {64, 32, 66, 3}, {64, 64, 100, 3},
		{256, 2, 44, 3}, {256, 4, 33, 3},
		{64, 16, 326, 20}, {64, 32, 128, 20}, {64, 32, 512, 20}, {64, 64, 326, 20}, {64, 128, 512, 20},
	}
	for _, s := range shapes {
		t.Run(fmt.Sprintf("K%d_M%d_N%d", s.k, s.m, s.n), func(t *testing.T) {
			w, x := make([]float32, s.k*s.m), make([]float32, s.k*s.n)
			for _, v := range [][]float32{w, x} {
				for i := range v {
					v[i] = float32(rng.NormFloat64())
				}
			}
			want := make([]float64, s.m*s.n)
			for n := range s.n {
				for m := range s.m {
					for k := range s.k {
						want[n*s.m+m] += float64(w[m*s.k+k]) * float64(x[n*s.k+k])
					}
				}
			}
			wrong := 0
			for run := range s.runs {
				got := mulMatOn(t, w, x, s.k, s.m, s.n, vk, cpu)
				bad := 0
				for i := range want {
					if d := math.Abs(want[i] - float64(got[i])); !(d <= 1e-4*max(1, math.Abs(want[i]))) {
						if bad++; bad <= 2 {
							t.Errorf("run %d: y[%d, %d] = %g, want %g", run, i%s.m, i/s.m, got[i], want[i])
						}
					}
				}
				if bad > 0 {
					wrong++
				}
			}
			if wrong > 0 {
				t.Errorf("%d of %d runs on vulkan0 differ from the float64 product", wrong, s.runs)
			}
		})
	}
}
