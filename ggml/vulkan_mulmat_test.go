package ggml_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/vulkantest"
)

// Shapes of llama.cpp's K·Q in one layer: head size, KV heads, cache cells, query heads, tokens.
const (
	kqHead, kqKVHeads, kqCells, kqHeads, kqTokens = 8, 4, 64, 8, 21
)

// kqProducts computes K·Q the way llama.cpp's graph does (K a permuted view of a cache [head x KV
// heads, cells], Q permuted [head, heads, tokens]) and the same product of contiguous copies, on a
// scheduler over backends with the inputs in the first backend's memory.
func kqProducts(t *testing.T, kData, qData []float32, backends ...*ggml.Backend) (viewed, contiguous []float32) {
	t.Helper()
	wctx := ggml.NewGContext(2, 0, false)
	defer wctx.Free()
	kc := wctx.NewTensor(ggml.TypeF32, kqHead*kqKVHeads, kqCells).SetName("cache_k")
	q := wctx.NewTensor(ggml.TypeF32, kqHead, kqHeads, kqTokens).SetName("q")
	buf, err := backends[0].AllocTensors(wctx)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Free()
	if err := kc.SetFloat32(kData); err != nil {
		t.Fatal(err)
	}
	if err := q.SetFloat32(qData); err != nil {
		t.Fatal(err)
	}
	sched, err := ggml.NewScheduler(64, backends...)
	if err != nil {
		t.Fatal(err)
	}
	defer sched.Free()
	g := ggml.NewGContext(16, 64, false)
	defer g.Free()
	k := g.Permute(g.Reshape3D(kc, kqHead, kqKVHeads, kqCells), 0, 2, 1, 3) // [head, cells, KV heads]
	qp := g.Permute(q, 0, 2, 1, 3)                                          // [head, tokens, heads]
	kq, kqCont := g.MulMat(k, qp), g.MulMat(g.Cont(k), g.Cont(qp))
	gr := g.NewGraph(64, false)
	for _, out := range []ggml.Tensor{kq, kqCont} {
		out.SetOutput()
		gr.Expand(out)
	}
	if err := sched.Alloc(gr); err != nil {
		t.Fatal(err)
	}
	if err := sched.Compute(gr); err != nil {
		t.Fatal(err)
	}
	return kq.Float32(nil), kqCont.Float32(nil)
}

// kqReference is K·Q in float64, [cells, tokens, heads] (query head h reads KV head h / (heads/KV heads)).
func kqReference(kData, qData []float32) []float64 {
	out := make([]float64, kqCells*kqTokens*kqHeads)
	for h := range kqHeads {
		kh := h / (kqHeads / kqKVHeads)
		for tok := range kqTokens {
			for c := range kqCells {
				s := 0.0
				for d := range kqHead {
					s += float64(kData[c*kqHead*kqKVHeads+kh*kqHead+d]) * float64(qData[tok*kqHead*kqHeads+h*kqHead+d])
				}
				out[(h*kqTokens+tok)*kqCells+c] = s
			}
		}
	}
	return out
}

// relDiff is max |got - want| / max(1, max |want|).
func relDiff(got []float32, want []float64) float64 {
	d, scale := 0.0, 1.0
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i])-want[i]))
		scale = math.Max(scale, math.Abs(want[i]))
	}
	return d / scale
}

func roundF16(t *testing.T, v []float32) []float32 {
	t.Helper()
	b, err := ggml.ConvertFloat32(v, ggml.TypeF16, int64(len(v)))
	if err != nil {
		t.Fatal(err)
	}
	out, err := ggml.ToFloat32(ggml.TypeF16, b, int64(len(v)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestVulkanMulMatRoundsNonContiguousF32 is the evidence behind llama.NewContext keeping an F32 KV
// cache and the attention on the host for a model on a device: ggml-vulkan multiplies F32 operands
// whose rows are not contiguous after copying them to F16 (ggml_vk_mul_mat_q_f16), even with
// GGML_VK_DISABLE_F16. llama.cpp's K·Q is such a product. Measured on lavapipe: the viewed product is
// 3.4e-4 (relative to max |x|) from the exact one and matches the product of F16-rounded inputs to 7.9e-8;
// the same product of contiguous copies, and the CPU's, match the exact one to 1e-7. When this test
// fails because the viewed product became exact, the host attention can go.
func TestVulkanMulMatRoundsNonContiguousF32(t *testing.T) {
	vulkantest.Need(t)
	rng := rand.New(rand.NewPCG(3, 4))
	kData := make([]float32, kqHead*kqKVHeads*kqCells)
	qData := make([]float32, kqHead*kqHeads*kqTokens)
	for _, v := range [][]float32{kData, qData} {
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 3)
		}
	}
	exact := kqReference(kData, qData)
	rounded := kqReference(roundF16(t, kData), roundF16(t, qData))
	vk, cpu := vulkanAndCPU(t)
	vkViewed, vkCont := kqProducts(t, kData, qData, vk, cpu)
	cpuViewed, cpuCont := kqProducts(t, kData, qData, cpu)
	t.Logf("vulkan0 viewed: %.1e from exact, %.1e from F16-rounded inputs; vulkan0 contiguous %.1e, cpu viewed %.1e, cpu contiguous %.1e from exact",
		relDiff(vkViewed, exact), relDiff(vkViewed, rounded), relDiff(vkCont, exact), relDiff(cpuViewed, exact), relDiff(cpuCont, exact))
	for name, got := range map[string][]float32{"vulkan0 contiguous": vkCont, "cpu viewed": cpuViewed, "cpu contiguous": cpuCont} {
		if d := relDiff(got, exact); d > 1e-5 {
			t.Errorf("%s K·Q is %.1e from the exact product, want F32 rounding (< 1e-5)", name, d)
		}
	}
	if d := relDiff(vkViewed, rounded); d > 1e-5 {
		t.Errorf("vulkan0 viewed K·Q is %.1e from the product of F16-rounded inputs: ggml-vulkan changed how it multiplies views", d)
	}
	if d := relDiff(vkViewed, exact); d < 1e-4 {
		t.Errorf("vulkan0 viewed K·Q is %.1e from the exact product: ggml-vulkan no longer rounds views to F16; llama.NewContext may keep the attention on the device", d)
	}
}
