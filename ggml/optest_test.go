package ggml

import "testing"

// opInput is an F32 input tensor of a small op test: its shape and values.
type opInput struct {
	ne []int64
	v  []float32
}

// runOps builds a graph with the inputs as F32 tensors, the outputs build returns, computes it on a
// CPU backend with the given threads and returns each output's values.
func runOps(t *testing.T, threads int, inputs []opInput, build func(g *GContext, in []Tensor) []Tensor) [][]float32 {
	t.Helper()
	be, err := NewCPUBackend(threads)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free()
	g := NewGContext(256, 256, false)
	defer g.Free()
	in := make([]Tensor, len(inputs))
	for i, x := range inputs {
		in[i] = g.NewTensor(TypeF32, x.ne...)
		in[i].SetInput()
	}
	outs := build(g, in)
	gr := g.NewGraph(256, false)
	for _, o := range outs {
		o.SetOutput()
		gr.Expand(o)
	}
	sched, err := NewScheduler(256, be)
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
	return vals
}
