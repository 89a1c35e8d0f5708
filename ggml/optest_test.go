package ggml

import "testing"

// opInput is an F32 input tensor of a small op test: its shape and values.
type opInput struct {
	ne []int64
	v  []float32
}

// runOps builds a graph with the inputs as F32 tensors, the outputs build returns, computes it on a
// CPU backend with the given threads and returns each output's values.
func runOps(t testing.TB, threads int, inputs []opInput, build func(g *GContext, in []Tensor) []Tensor) [][]float32 {
	t.Helper()
	vals, _ := runOpsOn(t, nil, threads, inputs, build)
	return vals
}

// runOpsOn is runOps on a scheduler over dev (when not nil, holding the inputs) and the CPU; it also
// returns the number of backend splits of the graph.
func runOpsOn(t testing.TB, dev *Backend, threads int, inputs []opInput, build func(g *GContext, in []Tensor) []Tensor) ([][]float32, int) {
	t.Helper()
	be, err := NewCPUBackend(threads)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free()
	backends := []*Backend{be}
	if dev != nil {
		backends = []*Backend{dev, be}
	}
	g := NewGContext(256, 256, false)
	defer g.Free()
	in := make([]Tensor, len(inputs))
	inCtx := g // on a device, the inputs live in the device's memory, so that the ops run there
	if dev != nil {
		inCtx = NewGContext(len(inputs)+1, 0, false)
		defer inCtx.Free()
	}
	for i, x := range inputs {
		in[i] = inCtx.NewTensor(TypeF32, x.ne...)
		in[i].SetInput()
	}
	if dev != nil {
		buf, err := dev.AllocTensors(inCtx)
		if err != nil {
			t.Fatal(err)
		}
		defer buf.Free()
	}
	outs := build(g, in)
	gr := g.NewGraph(256, false)
	for _, o := range outs {
		o.SetOutput()
		gr.Expand(o)
	}
	sched, err := NewScheduler(256, backends...)
	if err != nil {
		t.Fatal(err)
	}
	defer sched.Free()
	if err := sched.Alloc(gr); err != nil {
		t.Fatal(err)
	}
	for i, x := range inputs {
		if err := in[i].SetFloat32(x.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := sched.Compute(gr); err != nil {
		t.Fatal(err)
	}
	vals := make([][]float32, len(outs))
	for i, o := range outs {
		vals[i] = o.Float32(nil)
	}
	return vals, sched.Splits()
}
