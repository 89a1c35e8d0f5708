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

// TestVulkanMulMatTiles multiplies F32 matrices on Vulkan0 whose products span several 32x32 output
// tiles of ggml-vulkan's matrix kernel (more than 32 tokens, several rows), three times each, and
// compares every element with a float64 product. On lavapipe with its default thread pool whole tiles
// came out zero or partly summed, differently in each run; LoadBackend's LP_NUM_THREADS=1 (see
// ggml.serialLavapipe) is what this checks.
func TestVulkanMulMatTiles(t *testing.T) {
	vulkantest.Need(t)
	if v := os.Getenv("LP_NUM_THREADS"); v != "1" {
		t.Fatalf("LP_NUM_THREADS=%q after loading the backend, want 1", v)
	}
	vk, err := ggml.NewDeviceBackend("vulkan0", 1)
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
	shapes := []struct{ K, M, N int64 }{
		{64, 1, 33}, {64, 2, 66}, {64, 3, 33}, {64, 8, 128}, {64, 32, 66}, {64, 64, 100}, {256, 2, 44}, {256, 4, 33},
	}
	for _, s := range shapes {
		t.Run(fmt.Sprintf("K%d_M%d_N%d", s.K, s.M, s.N), func(t *testing.T) {
			wctx := ggml.NewGContext(2, 0, false)
			defer wctx.Free()
			A := wctx.NewTensor(ggml.TypeF32, s.K, s.M)
			x := wctx.NewTensor(ggml.TypeF32, s.K, s.N)
			buf, err := vk.AllocTensors(wctx)
			if err != nil {
				t.Fatal(err)
			}
			defer buf.Free()
			av, xv := make([]float32, s.K*s.M), make([]float32, s.K*s.N)
			for i := range av {
				av[i] = float32(rng.NormFloat64())
			}
			for i := range xv {
				xv[i] = float32(rng.NormFloat64())
			}
			if err := A.SetFloat32(av); err != nil {
				t.Fatal(err)
			}
			if err := x.SetFloat32(xv); err != nil {
				t.Fatal(err)
			}
			sched, err := ggml.NewScheduler(64, vk, cpu)
			if err != nil {
				t.Fatal(err)
			}
			defer sched.Free()
			for rep := range 3 {
				g := ggml.NewGContext(8, 16, false)
				y := g.MulMat(A, x)
				y.SetOutput()
				gr := g.NewGraph(16, false)
				gr.Expand(y)
				if err := sched.Alloc(gr); err != nil {
					t.Fatal(err)
				}
				if err := sched.Compute(gr); err != nil {
					t.Fatal(err)
				}
				got := y.Float32(nil)
				g.Free()
				bad := 0
				for n := range s.N {
					for m := range s.M {
						var want float64
						for k := range s.K {
							want += float64(av[m*s.K+k]) * float64(xv[n*s.K+k])
						}
						if d := math.Abs(want - float64(got[n*s.M+m])); !(d <= 1e-3*max(1, math.Abs(want))) {
							if bad++; bad <= 3 {
								t.Errorf("run %d: y[%d, %d] = %g, want %g", rep, m, n, got[n*s.M+m], want)
							}
						}
					}
				}
				if bad > 0 {
					t.Fatalf("run %d: %d of %d elements wrong", rep, bad, s.M*s.N)
				}
			}
		})
	}
}
