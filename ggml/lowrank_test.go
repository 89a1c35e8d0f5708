package ggml

import (
	"fmt"
	"math"
	"testing"
)

// TestLowRankKernels checks the LoRA products LowRank (a [n, r] b [r, T]) and OutProdBlocked
// (a [n, T] b [r, T]^T) against float64 loops, on shapes that hit the vector blocks and every tail
// (n not a multiple of 16 or 32, T not a multiple of 4, r below, at and above 16), with 1 and 2 threads.
func TestLowRankKernels(t *testing.T) {
	shapes := []struct{ n, r, T int64 }{
		{32, 16, 4}, {896, 16, 256}, {37, 16, 7}, {64, 8, 9}, {50, 24, 5}, {3, 1, 2}, {130, 64, 33},
	}
	for _, threads := range []int{1, 2} {
		for _, sh := range shapes {
			t.Run(fmt.Sprintf("n%d_r%d_T%d_threads%d", sh.n, sh.r, sh.T, threads), func(t *testing.T) {
				fill := func(n int64, phase float64) []float32 {
					v := make([]float32, n)
					for i := range v {
						v[i] = float32(math.Sin(float64(i)*0.731+phase)) * 0.9
					}
					return v
				}
				a1, b1 := fill(sh.n*sh.r, 0.3), fill(sh.r*sh.T, 1.1) // LowRank operands
				a2, b2 := fill(sh.n*sh.T, 2.0), fill(sh.r*sh.T, 0.7) // OutProdBlocked operands
				got := runOps(t, threads, []opInput{{[]int64{sh.n, sh.r}, a1}, {[]int64{sh.r, sh.T}, b1},
					{[]int64{sh.n, sh.T}, a2}, {[]int64{sh.r, sh.T}, b2}},
					func(g *GContext, in []Tensor) []Tensor {
						return []Tensor{g.LowRank(in[0], in[1]), g.OutProdBlocked(in[2], in[3])}
					})
				check := func(name string, got []float32, want func(i, j int64) float64, n0, n1 int64) {
					if int64(len(got)) != n0*n1 {
						t.Fatalf("%s: %d values, want %d", name, len(got), n0*n1)
					}
					for j := range n1 {
						for i := range n0 {
							w := want(i, j)
							if d := math.Abs(float64(got[j*n0+i]) - w); d > 1e-5*(1+math.Abs(w)) {
								t.Fatalf("%s[%d, %d] = %g, want %g", name, i, j, got[j*n0+i], w)
							}
						}
					}
				}
				check("LowRank", got[0], func(i, tt int64) float64 {
					s := 0.0
					for k := range sh.r {
						s += float64(a1[k*sh.n+i]) * float64(b1[tt*sh.r+k])
					}
					return s
				}, sh.n, sh.T)
				check("OutProdBlocked", got[1], func(i, k int64) float64 {
					s := 0.0
					for tt := range sh.T {
						s += float64(a2[tt*sh.n+i]) * float64(b2[tt*sh.r+k])
					}
					return s
				}, sh.n, sh.r)
			})
		}
	}
}

// TestSwigluBack checks the fused backward pass of silu(a) * b against float64 on a range of a that
// covers the saturated ends of the sigmoid, with a length that leaves a scalar tail.
func TestSwigluBack(t *testing.T) {
	const n, T = 37, 29
	a, b, dm := make([]float32, n*T), make([]float32, n*T), make([]float32, n*T)
	for i := range a {
		a[i] = float32(-100 + 200*float64(i)/float64(len(a)-1)) // -100 .. 100
		if i%3 == 0 {
			a[i] = float32(math.Sin(float64(i))) * 4
		}
		b[i] = float32(math.Cos(float64(i) * 0.37))
		dm[i] = float32(math.Sin(float64(i)*0.11 + 0.5))
	}
	for _, threads := range []int{1, 2} {
		got := runOps(t, threads, []opInput{{[]int64{n, T}, a}, {[]int64{n, T}, b}, {[]int64{n, T}, dm}},
			func(g *GContext, in []Tensor) []Tensor {
				da, db := g.SwigluBack(in[2], in[0], in[1])
				return []Tensor{g.Scale(da, 1), g.Scale(db, 1)} // contiguous copies to read back
			})
		gotA, gotB := got[0], got[1]
		for i := range a {
			x := float64(a[i])
			s := 1 / (1 + math.Exp(-x))
			wantA := float64(dm[i]) * float64(b[i]) * s * (1 + x*(1-s))
			wantB := float64(dm[i]) * x * s
			far := func(got float32, want float64) bool { return math.Abs(float64(got)-want) > 1e-6*(1+math.Abs(want)) }
			if far(gotA[i], wantA) || far(gotB[i], wantB) {
				t.Fatalf("threads %d, a = %g: da %g want %g, db %g want %g", threads, x, gotA[i], wantA, gotB[i], wantB)
			}
		}
	}
}

// TestOutProdBlockedBatchedViews checks OutProdBlocked against ggml's own OutProd on batched operands
// that are views with row and batch strides (as attention's per-head query and probability chunks).
func TestOutProdBlockedBatchedViews(t *testing.T) {
	const n, T, r, h, B = 20, 11, 35, 3, 2 // n and r leave tails; a and b are narrower views of wider tensors
	fill := func(n int, phase float64) []float32 {
		v := make([]float32, n)
		for j := range v {
			v[j] = float32(math.Sin(float64(j)*0.37 + phase))
		}
		return v
	}
	inputs := []opInput{
		{[]int64{n + 5, T + 3, h, B}, fill((n+5)*(T+3)*h*B, 0)},
		{[]int64{r + 2, T + 3, h, B}, fill((r+2)*(T+3)*h*B, 1)},
	}
	vals := runOps(t, 2, inputs,
		func(g *GContext, in []Tensor) []Tensor {
			wa, wb := in[0], in[1]
			a := g.View4D(wa, n, T, h, B, wa.Nb(1), wa.Nb(2), wa.Nb(3), 2*wa.Nb(1)+4*3)
			b := g.View4D(wb, r, T, h, B, wb.Nb(1), wb.Nb(2), wb.Nb(3), 1*wb.Nb(1)+4*1)
			return []Tensor{g.OutProdBlocked(a, b), g.OutProd(g.Cont(a), g.Cont(b))}
		})
	gv, wv := vals[0], vals[1]
	if len(gv) != n*r*h*B || len(wv) != len(gv) {
		t.Fatalf("%d and %d values, want %d", len(gv), len(wv), n*r*h*B)
	}
	for i := range gv {
		if math.Abs(float64(gv[i]-wv[i])) > 1e-5 {
			t.Fatalf("element %d: %g, ggml's out_prod %g", i, gv[i], wv[i])
		}
	}
}
