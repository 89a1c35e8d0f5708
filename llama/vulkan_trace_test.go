package llama

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/internal/vulkantest"
)

// traceDecode decodes text in one batch on device and returns every node of llama.cpp's graph.
func traceDecode(t *testing.T, path, device, text string) []tracedNode {
	t.Helper()
	m, err := LoadModel(path, ModelOptions{Device: device})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	tr := newNodeTrace()
	t.Cleanup(tr.close)
	ctx := mustContext(t, m, ContextOptions{NCtx: 256, Threads: 1, trace: tr})
	var batch []batchToken
	for i, tok := range mustTokenize(t, m, text, true) {
		batch = append(batch, batchToken{tok: tok, pos: i, logits: true})
	}
	if err := ctx.decode(batch, nil); err != nil {
		t.Fatal(err)
	}
	nodes, err := tr.take()
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) < 10 {
		t.Fatalf("%s on %s: %d traced nodes", path, device, len(nodes))
	}
	return nodes
}

func f32s(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// nodeDiff is max |a-b| over the elements of two F32 node outputs, relative to max(1, max |a|);
// equal infinities (masked attention) count as equal.
func nodeDiff(a, b []float32) float64 {
	d, scale := 0.0, 1.0
	for k := range a {
		if math.IsInf(float64(a[k]), 0) && a[k] == b[k] {
			continue
		}
		d = math.Max(d, math.Abs(float64(a[k])-float64(b[k])))
		scale = math.Max(scale, math.Abs(float64(a[k])))
	}
	return d / scale
}

// nodeTol bounds nodeDiff: F32 rounding carried through a few layers (the matching nodes measured
// <= 2e-6), far below the 1e-3 of an operand rounded to F16.
const nodeTol = 1e-4

// gegluError is max |geglu(gate, up) - float64 GELU(gate) up| / max(1, max |float64 result|) over a
// traced GEGLU node, from the backend's own gate and up nodes of the same layer.
func gegluError(t *testing.T, nodes []tracedNode, layer string) float64 {
	t.Helper()
	byName := map[string][]float32{}
	for _, n := range nodes {
		if _, ok := byName[n.Name]; !ok && n.Type == ggml.TypeF32 {
			byName[n.Name] = f32s(n.Data)
		}
	}
	gate, up, out := byName["ffn_gate-"+layer], byName["ffn_up-"+layer], byName["ffn_geglu-"+layer]
	if len(out) == 0 || len(gate) != len(out) || len(up) != len(out) {
		t.Fatalf("layer %s: ffn_gate %d, ffn_up %d, ffn_geglu %d values", layer, len(gate), len(up), len(out))
	}
	want := make([]float64, len(out))
	for i, g := range gate {
		x := float64(g)
		want[i] = 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x))) * float64(up[i])
	}
	d, scale := 0.0, 1.0
	for i := range out {
		d = math.Max(d, math.Abs(float64(out[i])-want[i]))
		scale = math.Max(scale, math.Abs(want[i]))
	}
	return d / scale
}

// TestVulkanNodesMatchCPU compares every F32 node of llama.cpp's graph, computed on Vulkan0 and on the
// CPU for the same batch of tokens, by name, and names the first node that parts ways. Before
// NewContext kept attention on the host, that was kq-0 (K·Q of layer 0, 6.9e-2 apart at |x| 77 while
// its inputs matched to 6e-6: ggml-vulkan rounds non-contiguous F32 operands to F16). For gemma3 it is
// ffn_geglu-0, and there the CPU is the one off: its GELU looks values up in a table of F16 inputs
// and outputs (ggml-cpu's GGML_GELU_FP16), 3.9e-4 from float64 GELU of its own inputs, Vulkan0's
// 5e-8; that is gemma3's 2.3e-4 in log-probs (TestVulkanLogProbsMatchCPU).
func TestVulkanNodesMatchCPU(t *testing.T) {
	vulkantest.Need(t)
	text := "Once upon a time, there was a little girl who liked to play."
	gemma3 := smallSpec(t, "gemma3", ggml.TypeF32)
	gemma3.Layers, gemma3.SlidingWindow = 6, 4
	for _, tc := range []struct {
		name, path string
		cpuGELU    bool // the first node apart is the CPU's table GELU of layer 0
	}{
		{"stories260K", fixture.File(t, stories260K), false},
		{"qwen2-random-f32", randomModel(t, smallSpec(t, "qwen2", ggml.TypeF32)), false},
		{"qwen3-random-f32", randomModel(t, smallSpec(t, "qwen3", ggml.TypeF32)), false},
		{"gemma3-random-f32", randomModel(t, gemma3), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cpu := traceDecode(t, tc.path, "cpu", text)
			vk := traceDecode(t, tc.path, "vulkan0", text)
			seen := map[string]int{}
			onVulkan := map[string]tracedNode{}
			for _, n := range vk {
				seen[n.Name]++
				onVulkan[fmt.Sprintf("%s#%d", n.Name, seen[n.Name])] = n
			}
			clear(seen)
			compared, devNodes, worst, worstName, apart := 0, 0, 0.0, "", ""
			for _, a := range cpu {
				seen[a.Name]++
				b, ok := onVulkan[fmt.Sprintf("%s#%d", a.Name, seen[a.Name])]
				if !ok || a.Type != ggml.TypeF32 || len(a.Data) != len(b.Data) {
					continue
				}
				compared++
				if b.Backend == "Vulkan0" {
					devNodes++
				}
				d := nodeDiff(f32s(a.Data), f32s(b.Data))
				if d > worst {
					worst, worstName = d, a.Name
				}
				if d > nodeTol {
					apart = fmt.Sprintf("%s (%s %v, on %s) differs by %.2e relative > %g", a.Name, a.Op, a.Shape, b.Backend, d, nodeTol)
					if !(tc.cpuGELU && a.Name == "ffn_geglu-0") {
						t.Fatalf("first node apart: %s", apart)
					}
					break
				}
			}
			if tc.cpuGELU {
				if apart == "" {
					t.Fatal("no node apart: the CPU's GELU is no longer a table of F16 values?")
				}
				cpuErr, vkErr := gegluError(t, cpu, "0"), gegluError(t, vk, "0")
				t.Logf("first node apart: %s; GEGLU from float64 of its own inputs: cpu %.2e, vulkan0 %.2e", apart, cpuErr, vkErr)
				if vkErr > 1e-6 || cpuErr < 1e-4 {
					t.Fatalf("GEGLU error cpu %.2e, vulkan0 %.2e: want the CPU's table rounding (> 1e-4) and Vulkan0 exact (< 1e-6)", cpuErr, vkErr)
				}
				return
			}
			if compared < len(cpu)/2 || devNodes < compared/2 {
				t.Fatalf("compared %d of %d nodes, %d of them on Vulkan0", compared, len(cpu), devNodes)
			}
			t.Logf("%d nodes compared (%d on Vulkan0), largest relative difference %.2e (%s)", compared, devNodes, worst, worstName)
		})
	}
}

// TestVulkanPlacement: with the weights on Vulkan0 and an F32 cache, the weights' products run on
// Vulkan0 and the attention (its cache in host memory, see NewContext) on the CPU, each CPU node with
// a reason; with an F16 cache the attention runs on Vulkan0 too.
func TestVulkanPlacement(t *testing.T) {
	vulkantest.Need(t)
	for _, path := range []string{fixture.File(t, stories260K), randomModel(t, smallSpec(t, "qwen2", ggml.TypeF32))} {
		m, err := LoadModel(path, ModelOptions{Device: "vulkan0"})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		for _, kvf16 := range []bool{false, true} {
			_, cpu, all, reasons := logPlacement(t, m, ContextOptions{Threads: 1, KVF16: kvf16})
			if cpu == 0 || cpu >= all/2 {
				t.Errorf("%s F16 cache %v: %d of %d nodes on the CPU", path, kvf16, cpu, all)
			}
			for op, r := range reasons {
				if r == "" {
					t.Errorf("%s: %s on the CPU without a reason", path, op)
				}
			}
			_, softMaxOnCPU := reasons["SOFT_MAX"]
			if softMaxOnCPU == kvf16 {
				t.Errorf("%s F16 cache %v: soft_max on the CPU %v (reason %q)", path, kvf16, softMaxOnCPU, reasons["SOFT_MAX"])
			}
			if !kvf16 && reasons["SET_ROWS"] != "reads cache_k_lN, held in host memory" && reasons["SET_ROWS"] != "reads cache_v_lN, held in host memory" {
				t.Errorf("%s: SET_ROWS on the CPU for %q, want the cache in host memory", path, reasons["SET_ROWS"])
			}
		}
	}
}
