package ggml

import (
	"fmt"
	"math"
	"testing"
)

// waves is n values of amp * sin(0.731 i + phase), an input that is not periodic over short rows.
func waves(n int64, phase, amp float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(amp * math.Sin(float64(i)*0.731+phase))
	}
	return v
}

// f32 is v as floats, for index inputs (cast to I32 in the graph).
func f32(v []int32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// portableCase is one op test: its inputs, the graph outputs built from them (by the custom ops or, in
// a portable context, their portable forms) and float64 references of the outputs.
type portableCase struct {
	name   string
	inputs []opInput
	build  func(g *GContext, in []Tensor) []Tensor
	want   func() [][]float64
}

// TestPortableForms computes every custom op and GetRowsBack both as the custom CPU op and in a portable
// context (standard ggml ops), on the CPU, and checks both against float64 references to 1e-5 relative
// (|got - want| <= 1e-5 (1 + |want|)), on shapes like the training graph's: views with row and batch
// strides, grouped-query batch broadcast, long vocabulary rows, repeated rows.
func TestPortableForms(t *testing.T) {
	for _, c := range portableCases() {
		t.Run(c.name, func(t *testing.T) {
			checkPortableOps(t, c)
			want := c.want()
			var got [2][][]float32
			for i, portable := range []bool{false, true} {
				got[i] = runOps(t, 2, c.inputs, func(g *GContext, in []Tensor) []Tensor {
					g.SetPortable(portable)
					outs := c.build(g, in)
					for j, o := range outs {
						outs[j] = g.Cont(o) // contiguous copies of the views some ops return
					}
					return outs
				})
			}
			if len(got[0]) != len(want) || len(got[1]) != len(want) {
				t.Fatalf("%d and %d outputs, want %d", len(got[0]), len(got[1]), len(want))
			}
			for o := range want {
				var maxRel [2]float64
				var maxDiff float64 // custom vs portable, relative
				for i, form := range []string{"custom", "portable"} {
					g := got[i][o]
					if len(g) != len(want[o]) {
						t.Fatalf("output %d (%s): %d values, want %d", o, form, len(g), len(want[o]))
					}
					for k, w := range want[o] {
						rel := math.Abs(float64(g[k])-w) / (1 + math.Abs(w))
						if !(rel <= 1e-5) { // also catches NaN
							t.Fatalf("output %d (%s) element %d = %g, want %g", o, form, k, g[k], w)
						}
						maxRel[i] = max(maxRel[i], rel)
					}
				}
				for k := range want[o] {
					maxDiff = max(maxDiff, math.Abs(float64(got[0][o][k]-got[1][o][k]))/(1+math.Abs(want[o][k])))
				}
				t.Logf("output %d (%d values): max error custom %.2g, portable %.2g; custom vs portable %.2g",
					o, len(want[o]), maxRel[0], maxRel[1], maxDiff)
			}
		})
	}
}

// checkPortableOps fails when the portable graph of c has a node that runs on the CPU only.
func checkPortableOps(t *testing.T, c portableCase) {
	t.Helper()
	g := NewGContext(256, 256, false)
	defer g.Free()
	g.SetPortable(true)
	in := make([]Tensor, len(c.inputs))
	for i, x := range c.inputs {
		in[i] = g.NewTensor(TypeF32, x.ne...)
	}
	gr := g.NewGraph(256, false)
	for _, o := range c.build(g, in) {
		gr.Expand(o)
	}
	for _, op := range gr.opNames() {
		if op == "CUSTOM" || op == "OUT_PROD" || op == "GET_ROWS_BACK" {
			t.Fatalf("portable graph has a %s node: %v", op, gr.opNames())
		}
	}
}

// portableCases are TestPortableForms's cases.
func portableCases() []portableCase {
	var cases []portableCase
	f64 := func(v []float32) []float64 {
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	}

	// TransposeF32 of a 4-D view with row and batch strides.
	{
		const n, T, h, B = 21, 13, 3, 2
		w := waves((n+3)*(T+2)*h*B, 0.2, 1)
		cases = append(cases, portableCase{
			name:   "TransposeF32/strided_view",
			inputs: []opInput{{ne: []int64{n + 3, T + 2, h, B}, v: w}},
			build: func(g *GContext, in []Tensor) []Tensor {
				x := in[0]
				v := g.View4D(x, n, T, h, B, x.Nb(1), x.Nb(2), x.Nb(3), x.Nb(1)+4*2)
				return []Tensor{g.TransposeF32(v)}
			},
			want: func() [][]float64 {
				out := make([]float64, 0, n*T*h*B)
				for b := range B {
					for k := range h {
						for i := range n { // rows of the transpose
							for j := range T {
								out = append(out, float64(w[((b*h+k)*(T+2)+j+1)*(n+3)+i+2]))
							}
						}
					}
				}
				return [][]float64{out}
			},
		})
	}

	// LowRank a [n, r] b [r, T], on its own and as nn uses it: LowRank(TransposeF32(B), u) for a LoRA B
	// [r, n] (where the portable form reads B itself).
	for _, sh := range []struct{ n, r, T int64 }{{896, 16, 256}, {37, 16, 7}, {3, 1, 2}, {130, 64, 33}} {
		a, b, lb := waves(sh.n*sh.r, 0.3, 0.9), waves(sh.r*sh.T, 1.1, 0.9), waves(sh.r*sh.n, 2.3, 0.9)
		cases = append(cases, portableCase{
			name:   fmt.Sprintf("LowRank/n%d_r%d_T%d", sh.n, sh.r, sh.T),
			inputs: []opInput{{ne: []int64{sh.n, sh.r}, v: a}, {ne: []int64{sh.r, sh.T}, v: b}, {ne: []int64{sh.r, sh.n}, v: lb}},
			build: func(g *GContext, in []Tensor) []Tensor {
				return []Tensor{g.LowRank(in[0], in[1]), g.LowRank(g.TransposeF32(in[2]), in[1])}
			},
			want: func() [][]float64 {
				o1, o2 := make([]float64, sh.n*sh.T), make([]float64, sh.n*sh.T)
				for t := range sh.T {
					for i := range sh.n {
						var s1, s2 float64
						for k := range sh.r {
							s1 += float64(a[k*sh.n+i]) * float64(b[t*sh.r+k])
							s2 += float64(lb[i*sh.r+k]) * float64(b[t*sh.r+k])
						}
						o1[t*sh.n+i], o2[t*sh.n+i] = s1, s2
					}
				}
				return [][]float64{o1, o2}
			},
		})
	}

	// OutProdBlocked of views with row and batch strides (attention's chunks), with a's batches broadcast
	// over b's in dimension 2 (grouped-query heads) and in dimension 3.
	for _, sh := range []struct{ n, T, r, A2, A3, B2, B3 int64 }{
		{896, 256, 16, 1, 1, 1, 1}, // a LoRA gradient
		{20, 11, 35, 3, 2, 3, 2},   // per-head chunks, tails in n and r
		{16, 9, 12, 2, 2, 6, 2},    // GQA: 3 query heads per KV head
		{8, 5, 7, 2, 1, 4, 3},      // broadcast in dimension 3 too
		{8, 5, 7, 1, 2, 2, 4},
	} {
		const padN, padR, padT, offA, offB = 5, 2, 3, 2, 1
		wa := waves((sh.n+padN)*(sh.T+padT)*sh.A2*sh.A3, 0, 1)
		wb := waves((sh.r+padR)*(sh.T+padT)*sh.B2*sh.B3, 1, 1)
		cases = append(cases, portableCase{
			name: fmt.Sprintf("OutProdBlocked/n%d_T%d_r%d_a%dx%d_b%dx%d", sh.n, sh.T, sh.r, sh.A2, sh.A3, sh.B2, sh.B3),
			inputs: []opInput{{ne: []int64{sh.n + padN, sh.T + padT, sh.A2, sh.A3}, v: wa},
				{ne: []int64{sh.r + padR, sh.T + padT, sh.B2, sh.B3}, v: wb}},
			build: func(g *GContext, in []Tensor) []Tensor {
				x, y := in[0], in[1]
				a := g.View4D(x, sh.n, sh.T, sh.A2, sh.A3, x.Nb(1), x.Nb(2), x.Nb(3), offA*x.Nb(1)+4*3)
				b := g.View4D(y, sh.r, sh.T, sh.B2, sh.B3, y.Nb(1), y.Nb(2), y.Nb(3), offB*y.Nb(1)+4*1)
				return []Tensor{g.OutProdBlocked(a, b)}
			},
			want: func() [][]float64 {
				out := make([]float64, 0, sh.n*sh.r*sh.B2*sh.B3)
				at := func(i, t, i2, i3 int64) float64 {
					return float64(wa[((i3*sh.A2+i2)*(sh.T+padT)+t+offA)*(sh.n+padN)+i+3])
				}
				bt := func(k, t, i2, i3 int64) float64 {
					return float64(wb[((i3*sh.B2+i2)*(sh.T+padT)+t+offB)*(sh.r+padR)+k+1])
				}
				for i3 := range sh.B3 {
					for i2 := range sh.B2 {
						a2, a3 := i2/(sh.B2/sh.A2), i3/(sh.B3/sh.A3)
						for k := range sh.r {
							for i := range sh.n {
								var s float64
								for t := range sh.T {
									s += at(i, t, a2, a3) * bt(k, t, i2, i3)
								}
								out = append(out, s)
							}
						}
					}
				}
				return [][]float64{out}
			},
		})
	}

	// SwigluBack and GegluTanh(Back) over a range of a that covers the saturated ends.
	{
		const n, T = 37, 29
		a, b, dm := make([]float32, n*T), waves(n*T, 0.4, 1), waves(n*T, 0.5, 1)
		for i := range a {
			a[i] = float32(-30 + 60*float64(i)/float64(len(a)-1))
			if i%3 == 0 {
				a[i] = float32(math.Sin(float64(i))) * 4
			}
		}
		in := []opInput{{ne: []int64{n, T}, v: dm}, {ne: []int64{n, T}, v: a}, {ne: []int64{n, T}, v: b}}
		cases = append(cases, portableCase{
			name:   "SwigluBack",
			inputs: in,
			build: func(g *GContext, in []Tensor) []Tensor {
				da, db := g.SwigluBack(in[0], in[1], in[2])
				return []Tensor{da, db}
			},
			want: func() [][]float64 {
				da, db := make([]float64, n*T), make([]float64, n*T)
				for i := range a {
					x := float64(a[i])
					s := 1 / (1 + math.Exp(-x))
					da[i] = float64(dm[i]) * float64(b[i]) * s * (1 + x*(1-s))
					db[i] = float64(dm[i]) * x * s
				}
				return [][]float64{da, db}
			},
		}, portableCase{
			name:   "GegluTanh",
			inputs: in,
			build: func(g *GContext, in []Tensor) []Tensor {
				da, db := g.GegluTanhBack(in[0], in[1], in[2])
				return []Tensor{g.GegluTanh(in[1], in[2]), da, db}
			},
			want: func() [][]float64 {
				m, da, db := make([]float64, n*T), make([]float64, n*T), make([]float64, n*T)
				for i := range a {
					x := float64(a[i])
					const h = 1e-5
					deriv := (geluTanh64(x+h) - geluTanh64(x-h)) / (2 * h)
					m[i] = geluTanh64(x) * float64(b[i])
					da[i] = float64(dm[i]) * float64(b[i]) * deriv
					db[i] = float64(dm[i]) * geluTanh64(x)
				}
				return [][]float64{m, da, db}
			},
		})
	}

	// SoftMaxBack on attention-shaped [q1, n, heads, B] probabilities.
	{
		const q1, n, h, B int64 = 70, 9, 3, 2
		const scale = 0.125
		rows := n * h * B
		x, dy := waves(q1*rows, 0.1, 6), waves(q1*rows, 0.9, 1)
		y := make([]float32, len(x))
		for r := range rows {
			mx := math.Inf(-1)
			for i := range q1 {
				mx = max(mx, float64(x[r*q1+i]))
			}
			var s float64
			for i := range q1 {
				s += math.Exp(float64(x[r*q1+i]) - mx)
			}
			for i := range q1 {
				y[r*q1+i] = float32(math.Exp(float64(x[r*q1+i])-mx) / s)
			}
		}
		cases = append(cases, portableCase{
			name:   "SoftMaxBack",
			inputs: []opInput{{ne: []int64{q1, n, h, B}, v: dy}, {ne: []int64{q1, n, h, B}, v: y}},
			build: func(g *GContext, in []Tensor) []Tensor {
				return []Tensor{g.SoftMaxBack(in[0], in[1], scale)}
			},
			want: func() [][]float64 {
				out := make([]float64, len(y))
				for r := range rows {
					var d float64
					for i := range q1 {
						d += float64(y[r*q1+i]) * float64(dy[r*q1+i])
					}
					for i := range q1 {
						out[r*q1+i] = scale * float64(y[r*q1+i]) * (float64(dy[r*q1+i]) - d)
					}
				}
				return [][]float64{out}
			},
		})
	}

	// RMSNormBack over model rows [d, T] and per-head rows [hd, heads, T].
	for _, sh := range []struct{ ne []int64 }{{[]int64{896, 5}}, {[]int64{64, 3, 7}}, {[]int64{48, 4}}} {
		const eps = 1e-6
		cnt := int64(1)
		for _, e := range sh.ne {
			cnt *= e
		}
		n := sh.ne[0]
		x, dz := waves(cnt, 0.3, 2), waves(cnt, 1.7, 1)
		if n == 48 { // a row of zeros: only eps keeps the norm finite
			for i := range n {
				x[i] = 0
			}
		}
		cases = append(cases, portableCase{
			name:   fmt.Sprintf("RMSNormBack/%v", sh.ne),
			inputs: []opInput{{ne: sh.ne, v: dz}, {ne: sh.ne, v: x}},
			build: func(g *GContext, in []Tensor) []Tensor {
				return []Tensor{g.RMSNormBack(in[0], in[1], eps)}
			},
			want: func() [][]float64 {
				out := make([]float64, cnt)
				for r := range cnt / n {
					xs, ds := f64(x[r*n:(r+1)*n]), f64(dz[r*n:(r+1)*n])
					var sxx, sxd float64
					for i := range n {
						sxx += xs[i] * xs[i]
						sxd += xs[i] * ds[i]
					}
					rrms := 1 / math.Sqrt(sxx/float64(n)+eps)
					for i := range n {
						out[r*n+i] = (ds[i] - xs[i]*sxd/(sxx+float64(n)*eps)) * rrms
					}
				}
				return [][]float64{out}
			},
		})
	}

	// TokenLogProbs over long vocabulary rows with a wide spread of logits (targets whose probability
	// underflows float32), for a chunk of columns and a view of the targets, as the head builds them.
	{
		const V, C, off = 32000, 6, 2
		logits := waves(V*C, 0.3, 1)
		for i := range logits {
			logits[i] *= float32(1 + 60*float64(i%97)/97) // up to ~60 apart within a row
		}
		targets := make([]int32, C+off)
		for c := range C {
			row := logits[c*V : (c+1)*V]
			switch c {
			case 0: // the row's maximum
				j := 0
				for v := range row {
					if row[v] > row[j] {
						j = v
					}
				}
				targets[c+off] = int32(j)
			case 1: // the row's minimum: exp underflows
				j := 0
				for v := range row {
					if row[v] < row[j] {
						j = v
					}
				}
				targets[c+off] = int32(j)
			default:
				targets[c+off] = int32((c*7919 + 13) % V)
			}
		}
		targets[len(targets)-1] = V - 1 // the last vocabulary entry
		cases = append(cases, portableCase{
			name:   "TokenLogProbs/V32000",
			inputs: []opInput{{ne: []int64{V, C}, v: logits}, {ne: []int64{C + off}, v: f32(targets)}},
			build: func(g *GContext, in []Tensor) []Tensor {
				tg := g.View1D(g.Cast(in[1], TypeI32), C, 4*off)
				return []Tensor{g.TokenLogProbs(in[0], g.SoftMax(in[0]), tg)}
			},
			want: func() [][]float64 {
				out := make([]float64, C)
				for c := range C {
					row := f64(logits[c*V : (c+1)*V])
					mx := math.Inf(-1)
					for _, l := range row {
						mx = max(mx, l)
					}
					var s float64
					for _, l := range row {
						s += math.Exp(l - mx)
					}
					out[c] = row[targets[c+off]] - mx - math.Log(s)
				}
				return [][]float64{out}
			},
		})
	}

	// GetRows with the row numbers a view at an unaligned offset (a chunk of the head's targets).
	{
		const d, N, off int64 = 24, 9, 3
		rows := []int32{0, 0, 0, 8, 2, 2, 5}
		data := waves(d*N, 0.8, 1)
		k := int64(len(rows)) - off
		cases = append(cases, portableCase{
			name:   "GetRows/offset_rows",
			inputs: []opInput{{ne: []int64{d, N}, v: data}, {ne: []int64{int64(len(rows))}, v: f32(rows)}},
			build: func(g *GContext, in []Tensor) []Tensor {
				return []Tensor{g.GetRows(in[0], g.View1D(g.Cast(in[1], TypeI32), k, 4*off))}
			},
			want: func() [][]float64 {
				var out []float64
				for _, r := range rows[off:] {
					out = append(out, f64(data[int64(r)*d:int64(r+1)*d])...)
				}
				return [][]float64{out}
			},
		})
	}

	// GetRowsBack with repeated and unused rows.
	{
		const d, N int64 = 40, 11
		rows := []int32{3, 0, 10, 3, 7, 3, 5}
		R := int64(len(rows))
		a := waves(d*R, 0.6, 1)
		cases = append(cases, portableCase{
			name:   "GetRowsBack",
			inputs: []opInput{{ne: []int64{d, R}, v: a}, {ne: []int64{R}, v: f32(rows)}, {ne: []int64{d, N}, v: make([]float32, d*N)}},
			build: func(g *GContext, in []Tensor) []Tensor {
				// like's values are not read; it is an output too so that both graphs allocate it.
				return []Tensor{g.GetRowsBack(in[0], g.Cast(in[1], TypeI32), in[2]), in[2]}
			},
			want: func() [][]float64 {
				out := make([]float64, d*N)
				for r, row := range rows {
					for i := range d {
						out[int64(row)*d+i] += float64(a[int64(r)*d+i])
					}
				}
				return [][]float64{out, make([]float64, d*N)}
			},
		})
	}
	// ScatterDistinctRows: distinct rows, some of like's rows unused.
	{
		const d, N int64 = 40, 11
		rows := []int32{3, 0, 10, 7, 5}
		R := int64(len(rows))
		a := waves(d*R, 0.3, 1)
		cases = append(cases, portableCase{
			name:   "ScatterDistinctRows",
			inputs: []opInput{{ne: []int64{d, R}, v: a}, {ne: []int64{R}, v: f32(rows)}, {ne: []int64{d, N}, v: waves(d*N, 0.9, 1)}},
			build: func(g *GContext, in []Tensor) []Tensor {
				return []Tensor{g.ScatterDistinctRows(in[0], g.Cast(in[1], TypeI32), in[2]), in[2]}
			},
			want: func() [][]float64 {
				out := make([]float64, d*N)
				for r, row := range rows {
					copy(out[int64(row)*d:int64(row+1)*d], f64(a[int64(r)*d:int64(r+1)*d]))
				}
				return [][]float64{out, f64(waves(d*N, 0.9, 1))}
			},
		})
	}
	return cases
}
