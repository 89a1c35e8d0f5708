package ggml

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestComputePaused: the pause function sees the node it pauses after (y = a + b) and sets an input
// (w) that only later nodes read (z = y * w, then z + y), in one compute; an error from it is returned;
// a pause node that is not in the graph is an error.
func TestComputePaused(t *testing.T) {
	be, err := NewCPUBackend(1)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Free()
	sched, err := NewScheduler(64, be)
	if err != nil {
		t.Fatal(err)
	}
	defer sched.Free()
	g := NewGContext(16, 64, false)
	defer g.Free()
	a := g.NewTensor(TypeF32, 3).SetName("a")
	b := g.NewTensor(TypeF32, 3).SetName("b")
	w := g.NewTensor(TypeF32, 3).SetName("w")
	for _, in := range []Tensor{a, b, w} {
		in.SetInput()
	}
	y := g.Add(a, b).SetName("y")
	y.SetOutput()
	z := g.Add(g.Mul(y, w), y).SetName("z")
	z.SetOutput()
	gr := g.NewGraph(64, false)
	gr.Expand(z)
	other := g.Scale(a, 2).SetName("not_in_graph")

	cases := []struct {
		name    string
		at      Tensor
		pauseFn func() error
		want    []float32 // z
		wantErr string
	}{
		{"sets w from y", y, func() error {
			got := y.Float32(nil)
			if !slices.Equal(got, []float32{5, 7, 9}) {
				return errors.New("y not computed before the pause")
			}
			return w.SetFloat32([]float32{got[0], 0, -1}) // z = y*w + y
		}, []float32{30, 7, 0}, ""},
		{"error", y, func() error { return errors.New("no weights") }, nil, "no weights"},
		{"not a node", other, func() error { return nil }, nil, "pause node not_in_graph is not a node of the graph"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := sched.Alloc(gr); err != nil {
				t.Fatal(err)
			}
			if err := errors.Join(a.SetFloat32([]float32{1, 2, 3}), b.SetFloat32([]float32{4, 5, 6}), w.SetFloat32([]float32{0, 0, 0})); err != nil {
				t.Fatal(err)
			}
			err := sched.ComputePaused(gr, tc.at, tc.pauseFn)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := z.Float32(nil); !slices.Equal(got, tc.want) {
				t.Fatalf("z = %v, want %v", got, tc.want)
			}
		})
	}
	// Pins: a backend the scheduler does not have is refused.
	other2, err := NewCPUBackend(1)
	if err != nil {
		t.Fatal(err)
	}
	defer other2.Free()
	if err := sched.Alloc(gr, Pin{Node: z, Backend: other2}); err == nil || !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("pin to a foreign backend: error %v, want ErrInvalidArgument", err)
	}
}
