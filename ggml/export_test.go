package ggml

import (
	"math"
	"testing"
)

// PortableCaseNames are the names of TestPortableForms's cases, for the device test of package ggml_test.
func PortableCaseNames() []string {
	var names []string
	for _, c := range portableCases() {
		names = append(names, c.name)
	}
	return names
}

// RunPortableCase computes the portable form of the case called name on a scheduler over dev and the
// CPU, and returns its largest error against the float64 reference, max |got - want| / (1 + |want|),
// and the graph's backend splits.
func RunPortableCase(t *testing.T, name string, dev *Backend) (maxRel float64, splits int) {
	t.Helper()
	for _, c := range portableCases() {
		if c.name != name {
			continue
		}
		got, splits := runOpsOn(t, dev, 1, c.inputs, func(g *GContext, in []Tensor) []Tensor {
			g.SetPortable(true)
			outs := c.build(g, in)
			for j, o := range outs {
				outs[j] = g.Cont(o)
			}
			return outs
		})
		for o, want := range c.want() {
			if len(got[o]) != len(want) {
				t.Fatalf("%s output %d: %d values, want %d", name, o, len(got[o]), len(want))
			}
			for k, w := range want {
				rel := math.Abs(float64(got[o][k])-w) / (1 + math.Abs(w))
				if math.IsNaN(rel) {
					rel = math.Inf(1)
				}
				maxRel = max(maxRel, rel)
			}
		}
		return maxRel, splits
	}
	t.Fatalf("no portable case %q", name)
	return 0, 0
}
