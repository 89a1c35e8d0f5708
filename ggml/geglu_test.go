package ggml

import (
	"math"
	"testing"
)

// geluTanh64 is GELU's tanh form in float64.
func geluTanh64(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

// TestGegluTanh checks GegluTanh against float64 GELU and GegluTanhBack against float64 central
// differences of it, over a range of a that covers both saturated ends, on one and two threads.
func TestGegluTanh(t *testing.T) {
	const n, T = 37, 29
	a, b, dm := make([]float32, n*T), make([]float32, n*T), make([]float32, n*T)
	for i := range a {
		a[i] = float32(-12 + 24*float64(i)/float64(len(a)-1))
		if i%3 == 0 {
			a[i] = float32(math.Sin(float64(i))) * 3
		}
		b[i] = float32(math.Cos(float64(i) * 0.37))
		dm[i] = float32(math.Sin(float64(i)*0.11 + 0.5))
	}
	for _, threads := range []int{1, 2} {
		got := runOps(t, threads, []opInput{{[]int64{n, T}, a}, {[]int64{n, T}, b}, {[]int64{n, T}, dm}},
			func(g *GContext, in []Tensor) []Tensor {
				da, db := g.GegluTanhBack(in[2], in[0], in[1])
				return []Tensor{g.GegluTanh(in[0], in[1]), g.Scale(da, 1), g.Scale(db, 1)} // contiguous copies
			})
		gotM, gotA, gotB := got[0], got[1], got[2]
		for i := range a {
			x := float64(a[i])
			const h = 1e-5
			deriv := (geluTanh64(x+h) - geluTanh64(x-h)) / (2 * h)
			wantM := geluTanh64(x) * float64(b[i])
			wantA := float64(dm[i]) * float64(b[i]) * deriv
			wantB := float64(dm[i]) * geluTanh64(x)
			for _, c := range []struct {
				what      string
				got, want float64
			}{{"gelu(a) b", float64(gotM[i]), wantM}, {"da", float64(gotA[i]), wantA}, {"db", float64(gotB[i]), wantB}} {
				if math.Abs(c.got-c.want) > 1e-5*(1+math.Abs(c.want)) {
					t.Fatalf("threads %d, a = %g: %s = %g, want %g", threads, x, c.what, c.got, c.want)
				}
			}
		}
	}
}
