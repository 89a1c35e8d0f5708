package ggml_test

import (
	"reflect"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/vulkantest"
)

// TestNewPlacement: nodes are counted per (op, backend, reason), the device's rows first, then the
// CPU's, each by op.
func TestNewPlacement(t *testing.T) {
	for _, tc := range []struct {
		name   string
		device string
		nodes  []ggml.PlacedNode
		want   []ggml.PlacementRow
	}{
		{"empty", "CPU", nil, nil},
		{"cpu only", "CPU", []ggml.PlacedNode{{Op: "MUL_MAT", Backend: "CPU"}, {Op: "ADD", Backend: "CPU"}, {Op: "MUL_MAT", Backend: "CPU"}},
			[]ggml.PlacementRow{{PlacedNode: ggml.PlacedNode{Op: "ADD", Backend: "CPU"}, Nodes: 1}, {PlacedNode: ggml.PlacedNode{Op: "MUL_MAT", Backend: "CPU"}, Nodes: 2}}},
		{"device first, reasons apart", "Vulkan0", []ggml.PlacedNode{
			{Op: "VIEW", Backend: "CPU", Reason: "b"}, {Op: "ADD", Backend: "CPU", Reason: "a"}, {Op: "VIEW", Backend: "CPU", Reason: "a"},
			{Op: "MUL_MAT", Backend: "Vulkan0"}, {Op: "VIEW", Backend: "CPU", Reason: "a"},
		}, []ggml.PlacementRow{
			{PlacedNode: ggml.PlacedNode{Op: "MUL_MAT", Backend: "Vulkan0"}, Nodes: 1},
			{PlacedNode: ggml.PlacedNode{Op: "ADD", Backend: "CPU", Reason: "a"}, Nodes: 1},
			{PlacedNode: ggml.PlacedNode{Op: "VIEW", Backend: "CPU", Reason: "a"}, Nodes: 2},
			{PlacedNode: ggml.PlacedNode{Op: "VIEW", Backend: "CPU", Reason: "b"}, Nodes: 1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ggml.NewPlacement(tc.device, tc.nodes)
			if p.Device != tc.device || !reflect.DeepEqual(p.Rows, tc.want) {
				t.Fatalf("NewPlacement = %+v, want rows %+v", p, tc.want)
			}
			if p.Nodes("") != len(tc.nodes) {
				t.Errorf("Nodes(\"\") = %d, want %d", p.Nodes(""), len(tc.nodes))
			}
		})
	}
}

// placeSmallGraph allocates y = A x, a custom transpose of y and get_rows_back of y's rows on a
// scheduler over backends (weights in the first one's memory) and returns its placement.
func placeSmallGraph(t *testing.T, backends ...*ggml.Backend) ggml.Placement {
	t.Helper()
	wctx := ggml.NewGContext(2, 0, false)
	defer wctx.Free()
	A := wctx.NewTensor(ggml.TypeF32, 4, 3).SetName("A")
	x := wctx.NewTensor(ggml.TypeF32, 4, 2).SetName("x")
	buf, err := backends[0].AllocTensors(wctx)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Free()
	sched, err := ggml.NewScheduler(64, backends...)
	if err != nil {
		t.Fatal(err)
	}
	defer sched.Free()
	g := ggml.NewGContext(16, 64, false)
	defer g.Free()
	rows := g.NewTensor(ggml.TypeI32, 2).SetName("rows")
	rows.SetInput()
	y := g.MulMat(A, x)                                             // [3, 2]
	back := g.GetRowsBack(y, rows, g.NewTensor(ggml.TypeF32, 3, 5)) // [3, 5]
	gr := g.NewGraph(64, false)
	for _, out := range []ggml.Tensor{g.TransposeF32(y), back} {
		out.SetOutput()
		gr.Expand(out)
	}
	if _, err := sched.Placement(gr); err == nil {
		t.Error("placement before Alloc: no error")
	}
	if err := sched.Alloc(gr); err != nil {
		t.Fatal(err)
	}
	p, err := sched.Placement(gr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSchedulerPlacementCPU: a CPU-only scheduler puts every node on the CPU and gives no reason.
func TestSchedulerPlacementCPU(t *testing.T) {
	cpu, err := ggml.NewCPUBackend(1)
	if err != nil {
		t.Fatal(err)
	}
	defer cpu.Free()
	p := placeSmallGraph(t, cpu)
	want := []ggml.PlacementRow{
		{PlacedNode: ggml.PlacedNode{Op: "CUSTOM", Backend: "CPU"}, Nodes: 1},
		{PlacedNode: ggml.PlacedNode{Op: "GET_ROWS_BACK", Backend: "CPU"}, Nodes: 1},
		{PlacedNode: ggml.PlacedNode{Op: "MUL_MAT", Backend: "CPU"}, Nodes: 1},
	}
	if p.Device != "CPU" || !reflect.DeepEqual(p.Rows, want) {
		t.Fatalf("placement %+v, want rows %+v", p, want)
	}
}

// TestVulkanSchedulerPlacement: over Vulkan0 and the CPU, the product runs on Vulkan0, the custom op
// and get_rows_back (which ggml-vulkan lacks) on the CPU, each with its reason.
func TestVulkanSchedulerPlacement(t *testing.T) {
	vulkantest.Need(t)
	vk, cpu := vulkanAndCPU(t)
	p := placeSmallGraph(t, vk, cpu)
	want := []ggml.PlacementRow{
		{PlacedNode: ggml.PlacedNode{Op: "MUL_MAT", Backend: "Vulkan0"}, Nodes: 1},
		{PlacedNode: ggml.PlacedNode{Op: "CUSTOM", Backend: "CPU", Reason: "custom CPU op"}, Nodes: 1},
		{PlacedNode: ggml.PlacedNode{Op: "GET_ROWS_BACK", Backend: "CPU", Reason: "Vulkan0 does not support it (f32, i32 -> f32)"}, Nodes: 1},
	}
	if p.Device != "Vulkan0" || !reflect.DeepEqual(p.Rows, want) {
		t.Fatalf("placement %+v,\nwant rows %+v", p, want)
	}
}
