package ggml

/*
#include "ggml.h"
#include "ggml-backend.h"
*/
import "C"

import "fmt"

// Portable forms of the custom ops.
//
// The custom ops of ggml.go (TransposeF32, LowRank, OutProdBlocked, SwigluBack, GegluTanh,
// GegluTanhBack, SoftMaxBack, RMSNormBack, TokenLogProbs) and ggml's GET_ROWS_BACK run on the CPU
// only. In a graph whose weights live on a device, ggml's scheduler must run each of them on the CPU
// and split the graph around it, copying the tensors that cross every split. A portable context
// (GContext.SetPortable) builds each of these ops from standard ggml ops that device backends such as
// ggml-vulkan implement instead: the same shapes and the same values, up to float rounding.
//
// A portable context also builds GetRows so that ggml-vulkan takes it (see startAligned).
//
// The forms only use ops whose kernels read an element before writing it, so that they stay right when
// ggml's allocator computes a node in the memory of one of its sources (see ggml_op_can_inplace).
// ggml's own SOFT_MAX_BACK and RMS_NORM_BACK are not used for that reason: their CPU kernels copy one
// source into the destination before reading the other (ggml-cpu/ops.cpp), so an in-place schedule on
// the CPU gives a wrong gradient.

// SetPortable makes later calls of the custom-op methods build portable compositions of standard ggml
// ops (on) or the custom CPU ops (off, the default). Use it for graphs that run on a device backend.
func (g *GContext) SetPortable(on bool) { g.portable = on }

// Portable reports whether the custom-op methods build portable compositions (see SetPortable).
func (g *GContext) Portable() bool { return g.portable }

// Splits is the number of backend splits of the graph the scheduler allocated last (1 when it runs
// on one backend; every further split copies the tensors that cross it).
func (s *Scheduler) Splits() int { return int(C.ggml_backend_sched_get_n_splits(s.s)) }

// transposeCont is cont(transpose(a)).
func (g *GContext) transposeCont(a Tensor) Tensor {
	return Tensor{C.ggml_cont(g.c, C.ggml_transpose(g.c, a.t))}
}

// untransposed returns x when a was built as cont(transpose(x)) of a 2-D F32 x with contiguous rows
// (what a portable TransposeF32 makes), so that a product can read x itself.
func untransposed(a Tensor) (Tensor, bool) {
	if a.t.op != C.GGML_OP_CONT || a.t.src[0] == nil || a.t.src[0].op != C.GGML_OP_TRANSPOSE {
		return Tensor{}, false
	}
	x := Tensor{a.t.src[0].src[0]}
	if x.Nil() || x.Type() != TypeF32 || x.Nb(0) != 4 || x.Ne(2) != 1 || x.Ne(3) != 1 {
		return Tensor{}, false
	}
	return x, true
}

// scaleBias is a*s + b element-wise.
func (g *GContext) scaleBias(a Tensor, s, b float32) Tensor {
	return Tensor{C.ggml_scale_bias(g.c, a.t, C.float(s), C.float(b))}
}

func (g *GContext) sqr(a Tensor) Tensor  { return Tensor{C.ggml_sqr(g.c, a.t)} }
func (g *GContext) sqrt(a Tensor) Tensor { return Tensor{C.ggml_sqrt(g.c, a.t)} }
func (g *GContext) div(a, b Tensor) Tensor {
	return Tensor{C.ggml_div(g.c, a.t, b.t)}
}

// portableLowRank is a [n, r] times b [r, T] as mul_mat(a^T, b), which contracts dimension 0 of both.
func (g *GContext) portableLowRank(a, b Tensor) Tensor {
	at, ok := untransposed(a)
	if !ok {
		at = g.transposeCont(a)
	}
	return g.MulMat(at, b)
}

// portableOutProd is OutProdBlocked(a, b) as mul_mat(a^T, b^T): dst[i, k] = sum_t a^T[t, i] b^T[t, k].
// ggml_mul_mat broadcasts a's batches over b's as OutProdBlocked does (batch j of b reads batch
// j / (B2 / A2) of a). Device backends may not broadcast dimension 3 (ggml-vulkan does not), so there
// each batch of dimension 3 is a product of its own, joined along dimension 3.
func (g *GContext) portableOutProd(a, b Tensor) Tensor {
	at, bt := g.transposeCont(a), g.transposeCont(b)
	A3, B3 := a.Ne(3), b.Ne(3)
	if A3 == B3 {
		return g.MulMat(at, bt)
	}
	var out Tensor
	for i3 := range B3 {
		ai := g.View4D(at, at.Ne(0), at.Ne(1), at.Ne(2), 1, at.Nb(1), at.Nb(2), at.Nb(3), (i3/(B3/A3))*at.Nb(3))
		bi := g.View4D(bt, bt.Ne(0), bt.Ne(1), bt.Ne(2), 1, bt.Nb(1), bt.Nb(2), bt.Nb(3), i3*bt.Nb(3))
		p := g.MulMat(ai, bi)
		if i3 == 0 {
			out = p
		} else {
			out = g.Concat(out, p, 3)
		}
	}
	return out
}

// portableSwigluBack is the backward pass of silu(a) * b: da = silu_back(dm b, a) = dm b silu'(a) and
// db = dm silu(a).
func (g *GContext) portableSwigluBack(dm, a, b Tensor) (da, db Tensor) {
	return g.SiluBack(g.Mul(dm, b), a), g.Mul(dm, g.Silu(a))
}

// GELU's tanh form is 0.5 x (1 + tanh(c x (1 + k x^2))).
const (
	geluC = 0.7978845608028654 // sqrt(2/pi)
	geluK = 0.044715
)

// geluTanhParts returns h = 0.5 (1 + tanh(c x (1 + k x^2))) (so gelu(x) = x h), tanh's value t and x^2.
func (g *GContext) geluTanhParts(x Tensor) (h, t, x2 Tensor) {
	x2 = g.sqr(x)
	t = Tensor{C.ggml_tanh(g.c, g.Mul(x, g.scaleBias(x2, geluC*geluK, geluC)).t)}
	return g.scaleBias(t, 0.5, 0.5), t, x2
}

// portableGegluTanh is gelu_tanh(a) * b from sqr, scale, mul and tanh.
func (g *GContext) portableGegluTanh(a, b Tensor) Tensor {
	h, _, _ := g.geluTanhParts(a)
	return g.Mul(g.Mul(a, h), b)
}

// portableGegluTanhBack is da = dm b gelu'(a) and db = dm gelu(a), with
// gelu'(x) = h + x (1 - t^2) 0.5 c (1 + 3 k x^2).
func (g *GContext) portableGegluTanhBack(dm, a, b Tensor) (da, db Tensor) {
	h, t, a2 := g.geluTanhParts(a)
	oneMinusT2 := g.scaleBias(g.sqr(t), -1, 1)
	slope := g.scaleBias(a2, 1.5*geluC*geluK, 0.5*geluC)
	deriv := g.Add(h, g.Mul(g.Mul(a, oneMinusT2), slope))
	return g.Mul(g.Mul(dm, b), deriv), g.Mul(dm, g.Mul(a, h))
}

// portableSoftMaxBack is scale y (dy - dot(y, dy)) row by row.
func (g *GContext) portableSoftMaxBack(dy, y Tensor, scale float32) Tensor {
	dot := g.SumRows(g.Mul(y, dy))
	return g.Scale(g.Mul(g.Sub(dy, dot), y), scale)
}

// portableRMSNormBack is (dz - x dot(x, dz) / (sum(x^2) + n eps)) / sqrt(mean(x^2) + eps) row by row.
func (g *GContext) portableRMSNormBack(dz, x Tensor, eps float32) Tensor {
	n := float32(x.Ne(0))
	sxx := g.SumRows(g.sqr(x))
	c := g.div(g.SumRows(g.Mul(x, dz)), g.scaleBias(sxx, 1, n*eps))
	return g.div(g.Sub(dz, g.Mul(x, c)), g.sqrt(g.scaleBias(sxx, 1/n, eps)))
}

// startAligned returns t, or a contiguous copy of it when t is a view that starts inside its source:
// ggml-vulkan's GET_ROWS aborts on operands whose start is not aligned to the device's storage-buffer
// offset alignment (ggml-vulkan.cpp, init_pushconst_tensor_offsets), which a view at an arbitrary
// offset (a chunk of the targets) need not be. A fresh tensor is aligned by the allocator.
func (g *GContext) startAligned(t Tensor) Tensor {
	if t.t.view_src != nil && t.t.view_offs != 0 {
		return g.Cont(t)
	}
	return t
}

// portableGetRows is GetRows with both operands starting aligned (see startAligned).
func (g *GContext) portableGetRows(a, rows Tensor) Tensor {
	return Tensor{C.ggml_get_rows(g.c, g.startAligned(a).t, g.startAligned(rows).t)}
}

// pickRows returns src[idx[c], c] for each column c of src [V, C] (rows contiguous) as [1, 1, C]: a
// batched get_rows over src seen as C batches of V one-element rows.
func (g *GContext) pickRows(src, idx Tensor) Tensor {
	src, idx = g.startAligned(src), g.startAligned(idx)
	V, C := src.Ne(0), src.Ne(1)
	rows := g.View4D(src, 1, V, C, 1, src.Nb(0), src.Nb(1), src.Nb(1)*C, 0)
	return Tensor{C.ggml_get_rows(g.c, rows.t, g.Reshape2D(idx, 1, C).t)}
}

// portableTokenLogProbs is logits[t] - logits[j] + log(softmax[j]) per column, with j the column's
// argmax: the custom op's formula, exact and stable. targets must lie in [0, V) (the custom op gives
// NaN for others; here ggml's get_rows does not check them on every backend).
func (g *GContext) portableTokenLogProbs(logits, softmax, targets Tensor) Tensor {
	j := Tensor{C.ggml_argmax(g.c, logits.t)}
	lp := g.Add(g.Sub(g.pickRows(logits, targets), g.pickRows(logits, j)), g.Log(g.pickRows(softmax, j)))
	return Tensor{C.ggml_reshape_1d(g.c, lp.t, C.int64_t(logits.Ne(1)))}
}

// portableGetRowsBack is GetRowsBack(a, rows, like) as a [d, R] times a one-hot Y [R, N], Y[r, n] = 1
// where rows[r] = n: mul_mat(a^T, Y). Y is step(0.5 - |rows[r] - n|) over float row numbers (exact
// below 2^24). Repeated rows add up as in GET_ROWS_BACK.
func (g *GContext) portableGetRowsBack(a, rows, like Tensor) Tensor {
	R, N := rows.Ne(0), like.Ne(1)
	rf := g.Repeat4D(g.Reshape2D(g.Cast(rows, TypeF32), R, 1), R, N, 1, 1) // rows[r] in every column
	n := g.Reshape2D(Tensor{C.ggml_arange(g.c, 0, C.float(N), 1)}, 1, N)   // n along dimension 1
	dist := Tensor{C.ggml_abs(g.c, g.Sub(rf, n).t)}
	oneHot := Tensor{C.ggml_step(g.c, g.scaleBias(dist, -1, 0.5).t)}
	return g.MulMat(g.transposeCont(a), oneHot)
}

// ScatterDistinctRows is GetRowsBack(a, rows, like) for rows that are all different (each of like's
// rows receives at most one row of a; the caller guarantees it). On the CPU it is ggml's get_rows_back.
// In a portable context it writes a's rows into zeros shaped like like with ggml's set_rows, where
// GetRowsBack's portable form (which also adds up repeated rows) multiplies by an [R, N] one-hot matrix.
func (g *GContext) ScatterDistinctRows(a, rows, like Tensor) Tensor {
	checkGetRowsBack(a, rows, like, false)
	if !g.portable {
		return Tensor{C.ggml_get_rows_back(g.c, a.t, rows.t, like.t)}
	}
	zeros := Tensor{C.ggml_fill(g.c, like.t, 0)}
	return Tensor{C.ggml_set_rows(g.c, zeros.t, g.Cont(a).t, rows.t)}
}

// checkGetRowsBack panics unless a [d, R] (F32), rows [R] (I32) and like [d, N] fit GetRowsBack, with
// N below 2^24 for the portable form (its row numbers are floats).
func checkGetRowsBack(a, rows, like Tensor, portable bool) {
	if a.Type() != TypeF32 || rows.Type() != TypeI32 || a.Ne(2)*a.Ne(3) != 1 || like.Ne(2)*like.Ne(3) != 1 ||
		rows.Ne(1)*rows.Ne(2)*rows.Ne(3) != 1 || a.Ne(1) != rows.Ne(0) || a.Ne(0) != like.Ne(0) || (portable && like.Ne(1) >= 1<<24) {
		panic(fmt.Sprintf("ggml: GetRowsBack of %s, rows %s, like %s: want F32 [d, R], I32 [R] and [d, N] (N < 2^24 when portable)",
			a.describe(), rows.describe(), like.describe()))
	}
}

// checkTokenLogProbs panics unless logits and softmax are F32 [V, C] with contiguous rows and targets is
// I32 [C].
func checkTokenLogProbs(logits, softmax, targets Tensor) {
	if logits.Type() != TypeF32 || softmax.Type() != TypeF32 || targets.Type() != TypeI32 || logits.Nb(0) != 4 || softmax.Nb(0) != 4 ||
		logits.Ne(2)*logits.Ne(3) != 1 || !sameShape(logits, softmax) || targets.Ne(0) != logits.Ne(1) || targets.Ne(1)*targets.Ne(2)*targets.Ne(3) != 1 {
		panic(fmt.Sprintf("ggml: TokenLogProbs of logits %s, softmax %s, targets %s: want F32 [V, C] twice (rows contiguous) and I32 [C]",
			logits.describe(), softmax.describe(), targets.describe()))
	}
}

// opNames are the ggml op names of the graph's nodes, in order ("MUL_MAT", "CUSTOM", ...).
func (gr *Graph) opNames() []string {
	g := gr.run()
	names := make([]string, int(C.ggml_graph_n_nodes(g)))
	for i := range names {
		names[i] = C.GoString(C.ggml_op_name(C.ggml_graph_node(g, C.int(i)).op))
	}
	return names
}
