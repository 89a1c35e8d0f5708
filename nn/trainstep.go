package nn

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/bpo-dev/bpo/ggml"
)

// The LoRA training step is one ggml graph with a hand-written backward pass (ggml's automatic
// differentiation is used only for full-parameter training, see traingraph_full.go):
//
//  1. forward: embedding, the blocks, then the head on the scored rows only, in row chunks: logits,
//     softmax, each row's log-prob and g_r = d logp_r / d h_r = W_out[target] - W_out^T softmax (so no
//     vocabulary-sized tensor outlives its chunk, and no one-hot label tensor exists);
//  2. the caller reads the log-probs and sets each row's weight w_r = dLoss/dlogp_r;
//  3. backward: from sum_r w_r g_r through the final norm, then block by block from the last,
//     recomputing each block's activations from its input when checkpointing is on.
//
// Attention is computed in query chunks (each chunk attends to the keys up to its last query), so the
// score matrices that exist at one time are chunk x keys, not L x L, and the causal upper triangle is
// never computed. Grouped-query attention broadcasts K/V heads in the forward and sums the query
// heads' K/V gradients per group in the backward: no per-head copies. The frozen weights are multiplied
// transposed through stored transposes (transposed.go), so the backward costs about one forward.

// attnChunkElems bounds the elements of one chunk's attention scores (keys x queries x heads x rows).
const attnChunkElems = 8 << 20

// headChunkElems bounds the elements of one chunk's logits (vocabulary x rows).
const headChunkElems = 16 << 20

// chunk is a range of query positions [q0, q1) and the offset of its causal mask in the mask input.
type chunk struct{ q0, q1, maskOff int }

// attentionChunks splits L query positions into chunks whose scores fit attnChunkElems.
func attentionChunks(L, heads, B, limit int) []chunk {
	n := max(limit/max(L*heads*B, 1), 1)
	n = min(n, L)
	var cs []chunk
	off := 0
	for q0 := 0; q0 < L; q0 += n {
		q1 := min(q0+n, L)
		cs = append(cs, chunk{q0, q1, off})
		off += q1 * (q1 - q0)
	}
	return cs
}

// chunkMasks is the causal mask of every chunk, one after the other: chunk [q0, q1) has q1 - q0 rows of
// q1 keys, key k hidden (-inf) from query q when k > q, and with window > 0 also when q - k >= window
// (the key is not among the query's last window positions).
func chunkMasks(cs []chunk, window int) []float32 {
	m := make([]float32, maskElems(cs))
	negInf := float32(math.Inf(-1))
	for _, c := range cs {
		for q := c.q0; q < c.q1; q++ {
			row := m[c.maskOff+(q-c.q0)*c.q1:]
			for k := q + 1; k < c.q1; k++ {
				row[k] = negInf
			}
			if window > 0 {
				for k := 0; k <= q-window; k++ {
					row[k] = negInf
				}
			}
		}
	}
	return m
}

// maskElems is the number of elements of one set of chunk masks.
func maskElems(cs []chunk) int {
	last := cs[len(cs)-1]
	return last.maskOff + last.q1*(last.q1-last.q0)
}

// stepMasks is the mask input of a step graph: the causal chunk masks, then, when the model has
// sliding-window layers, the same chunks' window masks.
func (tm *TrainModel) stepMasks(cs []chunk) []float32 {
	m := chunkMasks(cs, 0)
	if tm.hp.window > 0 {
		m = append(m, chunkMasks(cs, tm.hp.window)...)
	}
	return m
}

// stepGraph is one built LoRA training (or scoring) graph with its inputs and outputs.
type stepGraph struct {
	ctx                            *ggml.GContext
	gr                             *ggml.Graph
	tokens, pos, masks, rows, tgts ggml.Tensor
	chunks                         []chunk       // the attention chunks the graph was built for
	rowWeight                      ggml.Tensor   // backward: dLoss/dlogp of each scored row
	split                          ggml.Tensor   // the first node that reads rowWeight
	logp                           ggml.Tensor   // log-prob of each scored row
	grads                          []ggml.Tensor // gradient of each of tm.params
}

// stepBuilder builds a stepGraph.
type stepBuilder struct {
	tm     *TrainModel
	g      *ggml.GContext
	gr     *ggml.Graph
	sg     *stepGraph
	p      *batchPlan
	chunks []chunk
	freq   ggml.Tensor
	grads  map[string]ggml.Tensor
}

// blockActs are the activations of one block the backward pass reads.
type blockActs struct {
	layer            int
	x, xn            ggml.Tensor // block input, normed input
	q, k, v          ggml.Tensor // projections (with bias), [hd*heads, T]
	q3, k3           ggml.Tensor // with per-head Q/K norms: q and k as [hd, heads, T] before the norm
	uq, uk, uv, uo   ggml.Tensor // LoRA A x of each projection (nil without LoRA)
	Q, K, Vt         ggml.Tensor // Q, K: [hd, L, heads, B]; Vt is V transposed, [L, hd, kv heads, B]
	probs            []ggml.Tensor
	o                ggml.Tensor // attention output before attn_output, [d, T]
	att              ggml.Tensor // with post-norms: W_o o before its norm
	h, hn            ggml.Tensor // after the attention residual, normed
	a, b, m          ggml.Tensor // gate, up, act(gate)*up
	f                ggml.Tensor // with post-norms: W_down m before its norm
	ug, uu, ud       ggml.Tensor
	out              ggml.Tensor // the block output h + W_down m
	kt, qt           ggml.Tensor // K and Q transposed, [L, hd, heads, B]
	xnT, hnT, oT, mT ggml.Tensor // transposed inputs of the projections (made in the backward, for LoRA)
}

// build makes the graph for plan p; withGrad adds the backward pass.
func (tm *TrainModel) buildStep(p *batchPlan, withGrad bool) (*stepGraph, error) {
	hp := tm.hp
	chunks := tm.chunksOf(p)
	size := tm.graphSize(len(chunks), len(p.rows), withGrad)
	if err := tm.ensureScheduler(size); err != nil {
		return nil, err
	}
	g := ggml.NewGContext(2*size+64, size, false)
	g.SetPortable(tm.onDevice()) // on a device: standard ops instead of the CPU-only custom ops (ggml/portable.go)
	sg := &stepGraph{ctx: g, chunks: chunks}
	sg.gr = g.NewGraph(size, false)
	b := &stepBuilder{tm: tm, g: g, gr: sg.gr, sg: sg, p: p, chunks: chunks, grads: map[string]ggml.Tensor{}}
	T, R := int64(len(p.tokens)), int64(len(p.rows))
	sg.tokens = g.NewTensor(ggml.TypeI32, T).SetName("tokens")
	sg.pos = g.NewTensor(ggml.TypeI32, T).SetName("positions")
	maskSets := 1
	if hp.window > 0 {
		maskSets = 2
	}
	sg.masks = g.NewTensor(ggml.TypeF32, int64(maskSets*maskElems(chunks))).SetName("kq_masks")
	sg.rows = g.NewTensor(ggml.TypeI32, R).SetName("scored_rows")
	sg.tgts = g.NewTensor(ggml.TypeI32, R).SetName("targets")
	for _, t := range []ggml.Tensor{sg.tokens, sg.pos, sg.masks, sg.rows, sg.tgts} {
		t.SetInput()
	}
	if w, ok := tm.weights["rope_freqs.weight"]; ok {
		b.freq = w
	}
	ckpt := withGrad && tm.recompute(p)
	x := g.GetRows(tm.weights["token_embd.weight"], sg.tokens)
	if hp.arch.embedScale {
		x = g.Scale(x, float32(math.Sqrt(float64(hp.nEmbd))))
	}
	acts := make([]*blockActs, hp.nLayer)
	for l := range hp.nLayer {
		acts[l] = b.blockForward(l, x, !withGrad || ckpt)
		x = acts[l].out
	}
	xN := x
	xs, gs := b.headForward(xN, withGrad)
	sg.logp.SetOutput()
	sg.gr.Expand(sg.logp)
	if !withGrad {
		return sg, nil
	}
	gs.SetOutput()
	sg.gr.Expand(gs)
	// Backward: row weights, the head's final norm, then the blocks from the last.
	sg.rowWeight = g.NewTensor(ggml.TypeF32, R).SetName("row_weight")
	sg.rowWeight.SetInput()
	dhn := g.Mul(gs, g.Reshape2D(sg.rowWeight, 1, R))
	sg.split = dhn
	dxs := g.RMSNormBack(g.Mul(dhn, tm.weights["output_norm.weight"]), xs, hp.eps)
	dx := g.ScatterDistinctRows(dxs, sg.rows, xN) // scored rows are distinct positions (plan)
	sg.gr.Expand(dx)
	for l := hp.nLayer - 1; l >= 0; l-- {
		a := acts[l]
		if ckpt {
			a = b.blockForward(l, a.x, true)
		}
		dx = b.blockBackward(l, a, dx)
		sg.gr.Expand(dx)
	}
	for _, p := range tm.params {
		gt, ok := b.grads[p.Name]
		if !ok {
			return nil, fmt.Errorf("train graph: no gradient for %s", p.Name)
		}
		gt.SetOutput()
		sg.gr.Expand(gt)
		sg.grads = append(sg.grads, gt)
	}
	return sg, nil
}

// w returns the weight blk.<l>.<name>.
func (b *stepBuilder) w(l int, name string) string { return fmt.Sprintf("blk.%d.%s", l, name) }

// lin applies the frozen weight name and its LoRA pair, if any, to x: W x + s B (A x). u = A x.
func (b *stepBuilder) lin(name string, x ggml.Tensor) (y, u ggml.Tensor) {
	y = b.mulMatSliced(b.tm.weights[name], x, sliceK)
	if ab, ok := b.tm.lora[name]; ok {
		u = b.g.MulMat(ab[0], x)
		bu := b.g.LowRank(b.g.TransposeF32(ab[1]), u) // contracts only the rank
		y = b.g.Add(y, b.g.Scale(bu, b.tm.loraScale))
	}
	return y, u
}

// sliceK is the longest contraction one product of a frozen weight takes in one piece, and vocabSlice
// the one of the head's gradient product W^T p over the vocabulary (see mulMatSliced).
const (
	sliceK     = 2048
	vocabSlice = 1792
)

// mulMatSliced is w^T x for a frozen weight w [K, N] and activations x [K, T]. A K longer than maxK (the
// FFN's 4,864 in W_down and the transposes of W_gate and W_up; the 151,936 entries of the head's
// gradient) is cut into equal slices of at most maxK, whose products are summed: a slice of w's rows and
// of x's columns stays in cache while ggml's kernel sweeps the tokens, where one product over all of K
// streams both from memory for every output tile (the head's ran at half the speed of the logits).
// Slices start on multiples of 256 (every type's block). On a device the product is one MUL_MAT: the
// slicing is for CPU caches, and ggml-vulkan copies each slice's strided column view of x to a scratch
// buffer that it regrows in the middle of the graph (on lavapipe, before every step got its own
// backend, qwen2's 151,936-entry head gradient crashed 3 to 8 of 10 steps in one process; unsliced,
// none in 20); the unsliced product is also closer to the CPU's.
func (b *stepBuilder) mulMatSliced(w, x ggml.Tensor, maxK int64) ggml.Tensor {
	g := b.g
	K := w.Ne(0)
	if K <= maxK || x.Ne(2)*x.Ne(3) != 1 || b.tm.onDevice() {
		return g.MulMat(w, x)
	}
	n := (K + maxK - 1) / maxK
	step := ((K+n-1)/n + 255) / 256 * 256
	var sum ggml.Tensor
	for k0 := int64(0); k0 < K; k0 += step {
		k := min(step, K-k0)
		part := g.MulMat(g.View2D(w, k, w.Ne(1), w.Nb(1), ggml.RowSize(w.Type(), k0)),
			g.View2D(x, k, x.Ne(1), x.Nb(1), k0*x.Nb(0)))
		if k0 == 0 {
			sum = part
		} else {
			sum = g.Add(sum, part)
		}
	}
	return sum
}

// linBack is the backward pass of lin: it records the LoRA gradients of name and returns dL/dx.
// The LoRA gradients are outer products summed over tokens (ggml's out_prod contracts the token
// dimension of both operands directly, so neither needs a transposed copy).
func (b *stepBuilder) linBack(name string, x, u, dy ggml.Tensor) ggml.Tensor {
	g := b.g
	dx := b.mulMatSliced(b.tm.wT[name], dy, sliceK)
	ab, ok := b.tm.lora[name]
	if !ok {
		return dx
	}
	s := b.tm.loraScale
	du := g.Scale(g.MulMat(g.TransposeF32(ab[1]), dy), s)     // [r, T]
	gb := g.Scale(g.TransposeF32(g.OutProdBlocked(dy, u)), s) // [r, out] from dy u^T [out, r]: no transposed dy
	ga := g.OutProdBlocked(x, du)                             // [in, r]
	// Into the graph now, so that x, u and dy can be freed with this block rather than kept until
	// the end of the backward pass.
	for _, p := range []struct {
		name string
		grad ggml.Tensor
	}{{name + ".lora_b", gb}, {name + ".lora_a", ga}} {
		p.grad.SetOutput()
		b.gr.Expand(p.grad)
		b.grads[p.name] = p.grad
	}
	return g.Add(dx, g.LowRank(ab[0], du)) // A^T du: contracts only the rank
}

// blockForward builds block l on input x. dropProbs lets each attention chunk's probabilities die with
// the chunk (the backward recomputes them); otherwise they are kept for the backward pass.
func (b *stepBuilder) blockForward(l int, x ggml.Tensor, dropProbs bool) *blockActs {
	tm, g, hp := b.tm, b.g, b.tm.hp
	hd, nh, nkv := int64(hp.headDim), int64(hp.nHead), int64(hp.nKV)
	L, B := int64(b.p.L), int64(b.p.B)
	T := L * B
	a := &blockActs{layer: l, x: x}
	a.xn = g.Mul(g.RMSNorm(x, hp.eps), tm.weights[b.w(l, "attn_norm.weight")])
	a.q, a.uq = b.lin(b.w(l, "attn_q.weight"), a.xn)
	a.k, a.uk = b.lin(b.w(l, "attn_k.weight"), a.xn)
	a.v, a.uv = b.lin(b.w(l, "attn_v.weight"), a.xn)
	for _, qkv := range []struct {
		t    *ggml.Tensor
		name string
	}{{&a.q, "attn_q.bias"}, {&a.k, "attn_k.bias"}, {&a.v, "attn_v.bias"}} {
		if bias, ok := tm.weights[b.w(l, qkv.name)]; ok {
			*qkv.t = g.Add(*qkv.t, bias)
		}
	}
	q, k := g.Reshape3D(a.q, hd, nh, T), g.Reshape3D(a.k, hd, nkv, T)
	if hp.arch.qkNorm { // RMS norm over each head (ne0), before rope
		a.q3, a.k3 = q, k
		q = g.Mul(g.RMSNorm(q, hp.eps), tm.weights[b.w(l, "attn_q_norm.weight")])
		k = g.Mul(g.RMSNorm(k, hp.eps), tm.weights[b.w(l, "attn_k_norm.weight")])
	}
	q, k = b.rope(l, q), b.rope(l, k)
	a.Q = g.Cont(g.Permute(g.Reshape4D(q, hd, nh, L, B), 0, 2, 1, 3))     // [hd, L, nh, B]
	a.K = g.Cont(g.Permute(g.Reshape4D(k, hd, nkv, L, B), 0, 2, 1, 3))    // [hd, L, nkv, B]
	a.Vt = g.Cont(g.Permute(g.Reshape4D(a.v, hd, nkv, L, B), 1, 2, 0, 3)) // [L, hd, nkv, B]
	a.kt = g.TransposeF32(a.K)                                            // [L, hd, nkv, B]
	a.qt = g.TransposeF32(a.Q)                                            // [L, hd, nh, B]
	var O ggml.Tensor
	for i, c := range b.chunks {
		P := b.probs(a, c)
		if !dropProbs {
			a.probs = append(a.probs, P)
		}
		q1 := int64(c.q1)
		Vc := g.View4D(a.Vt, q1, hd, nkv, B, a.Vt.Nb(1), a.Vt.Nb(2), a.Vt.Nb(3), 0)
		Oc := g.MulMat(Vc, P) // [hd, n, nh, B]
		if i == 0 {
			O = Oc
		} else {
			O = g.Concat(O, Oc, 1)
		}
	}
	a.o = g.Reshape2D(g.Cont(g.Permute(O, 0, 2, 1, 3)), hd*nh, T)
	var att ggml.Tensor
	att, a.uo = b.lin(b.w(l, "attn_output.weight"), a.o)
	if hp.arch.postNorms {
		a.att = att
		att = g.Mul(g.RMSNorm(att, hp.eps), tm.weights[b.w(l, "post_attention_norm.weight")])
	}
	a.h = g.Add(att, x)
	a.hn = g.Mul(g.RMSNorm(a.h, hp.eps), tm.weights[b.w(l, "ffn_norm.weight")])
	a.a, a.ug = b.lin(b.w(l, "ffn_gate.weight"), a.hn)
	a.b, a.uu = b.lin(b.w(l, "ffn_up.weight"), a.hn)
	if hp.arch.ffn == gegluTanh {
		a.m = g.GegluTanh(a.a, a.b)
	} else {
		a.m = g.SwigluSplit(a.a, a.b)
	}
	var down ggml.Tensor
	down, a.ud = b.lin(b.w(l, "ffn_down.weight"), a.m)
	if hp.arch.postNorms {
		a.f = down
		down = g.Mul(g.RMSNorm(down, hp.eps), tm.weights[b.w(l, "post_ffw_norm.weight")])
	}
	a.out = g.Add(down, a.h)
	return a
}

// rope rotates a [hd, heads, T] tensor of layer l (whose rope base and scale may be its own).
func (b *stepBuilder) rope(l int, x ggml.Tensor) ggml.Tensor {
	hp, lh := b.tm.hp, b.tm.hp.layers[l]
	return b.g.Rope(x, b.sg.pos, b.freq, hp.headDim, hp.ropeMode, hp.nCtxTrain, lh.ropeBase, lh.ropeScale)
}

// ropeBack is the gradient of rope(l, .).
func (b *stepBuilder) ropeBack(l int, dx ggml.Tensor) ggml.Tensor {
	hp, lh := b.tm.hp, b.tm.hp.layers[l]
	return b.g.RopeBack(dx, b.sg.pos, b.freq, hp.headDim, hp.ropeMode, hp.nCtxTrain, lh.ropeBase, lh.ropeScale)
}

// probs is chunk c's attention probabilities softmax(K^T Q * attnScale + mask), [q1, n, heads, B], with
// the window mask on sliding-window layers.
func (b *stepBuilder) probs(a *blockActs, c chunk) ggml.Tensor {
	g, hp := b.g, b.tm.hp
	hd, nh, nkv := int64(hp.headDim), int64(hp.nHead), int64(hp.nKV)
	B := int64(b.p.B)
	n, q1 := int64(c.q1-c.q0), int64(c.q1)
	// K^T Q contracts the head dimension: as a blocked outer product over the transposed K and Q, whose
	// rows are positions (mul_mat would take a 64-long dot product and a horizontal sum per score).
	Qtc := g.View4D(a.qt, n, hd, nh, B, a.qt.Nb(1), a.qt.Nb(2), a.qt.Nb(3), 4*int64(c.q0))
	Ktc := g.View4D(a.kt, q1, hd, nkv, B, a.kt.Nb(1), a.kt.Nb(2), a.kt.Nb(3), 0)
	maskOff := int64(c.maskOff)
	if hp.layers[a.layer].windowed {
		maskOff += int64(maskElems(b.chunks))
	}
	mask := g.View2D(b.sg.masks, q1, n, 4*q1, 4*maskOff)
	return g.SoftMaxExt(g.OutProdBlocked(Ktc, Qtc), mask, hp.attnScale)
}

// groupSum sums a per-query-head gradient [hd, n, heads, B] over each KV head's group of query heads
// (query head h reads KV head h / group) to [hd, n, kv heads, B].
func (b *stepBuilder) groupSum(x ggml.Tensor) ggml.Tensor {
	hp := b.tm.hp
	group := int64(hp.nHead / hp.nKV)
	if group == 1 {
		return x
	}
	nkv, B := int64(hp.nKV), int64(b.p.B)
	var s ggml.Tensor
	for j := range group {
		v := b.g.View4D(x, x.Ne(0), x.Ne(1), nkv, B, x.Nb(1), x.Nb(2)*group, x.Nb(3), j*x.Nb(2))
		if j == 0 {
			s = v
		} else {
			s = b.g.Add(s, v)
		}
	}
	return s
}

// blockBackward builds the gradient of block l's input from the gradient dy of its output, recording
// the LoRA gradients of its projections.
func (b *stepBuilder) blockBackward(l int, a *blockActs, dy ggml.Tensor) ggml.Tensor {
	tm, g, hp := b.tm, b.g, b.tm.hp
	hd, nh, nkv := int64(hp.headDim), int64(hp.nHead), int64(hp.nKV)
	L, B := int64(b.p.L), int64(b.p.B)
	T := L * B
	// MLP: y = h + W_down (act(a) * b), a = W_gate hn, b = W_up hn (with post-norms, y = h + norm(W_down ...)).
	dDown := dy
	if hp.arch.postNorms {
		dDown = g.RMSNormBack(g.Mul(dy, tm.weights[b.w(l, "post_ffw_norm.weight")]), a.f, hp.eps)
	}
	dm := b.linBack(b.w(l, "ffn_down.weight"), a.m, a.ud, dDown)
	var da, db ggml.Tensor
	if hp.arch.ffn == gegluTanh {
		da, db = g.GegluTanhBack(dm, a.a, a.b)
	} else {
		da, db = g.SwigluBack(dm, a.a, a.b)
	}
	dhn := g.Add(b.linBack(b.w(l, "ffn_gate.weight"), a.hn, a.ug, da), b.linBack(b.w(l, "ffn_up.weight"), a.hn, a.uu, db))
	dh := g.Add(dy, g.RMSNormBack(g.Mul(dhn, tm.weights[b.w(l, "ffn_norm.weight")]), a.h, hp.eps))
	b.gr.Expand(dh)
	// Attention.
	dAtt := dh
	if hp.arch.postNorms {
		dAtt = g.RMSNormBack(g.Mul(dh, tm.weights[b.w(l, "post_attention_norm.weight")]), a.att, hp.eps)
	}
	do := b.linBack(b.w(l, "attn_output.weight"), a.o, a.uo, dAtt)
	dO := g.Cont(g.Permute(g.Reshape4D(do, hd, nh, L, B), 0, 2, 1, 3)) // [hd, L, nh, B]
	dOt := g.TransposeF32(dO)                                          // [L, hd, nh, B]
	scale := hp.attnScale
	var dQ, dK, dV ggml.Tensor
	for i, c := range b.chunks {
		n, q1 := int64(c.q1-c.q0), int64(c.q1)
		var P ggml.Tensor
		if len(a.probs) > 0 {
			P = a.probs[i]
		} else {
			P = b.probs(a, c)
		}
		dOc := g.View4D(dO, hd, n, nh, B, dO.Nb(1), dO.Nb(2), dO.Nb(3), int64(c.q0)*dO.Nb(1))
		Qc := g.View4D(a.Q, hd, n, nh, B, a.Q.Nb(1), a.Q.Nb(2), a.Q.Nb(3), int64(c.q0)*a.Q.Nb(1))
		Vtc := g.View4D(a.Vt, q1, hd, nkv, B, a.Vt.Nb(1), a.Vt.Nb(2), a.Vt.Nb(3), 0)
		dOtc := g.View4D(dOt, n, hd, nh, B, dOt.Nb(1), dOt.Nb(2), dOt.Nb(3), 4*int64(c.q0))
		Ktc := g.View4D(a.kt, q1, hd, nkv, B, a.kt.Nb(1), a.kt.Nb(2), a.kt.Nb(3), 0)
		dS := g.SoftMaxBack(g.OutProdBlocked(Vtc, dOtc), P, scale) // V^T dO: [q1, n, nh, B]
		dQc := g.MulMat(Ktc, dS)                                   // [hd, n, nh, B]
		dKc := b.groupSum(g.OutProdBlocked(Qc, dS))                // Q dS^T: [hd, q1, nkv, B]
		dVc := b.groupSum(g.OutProdBlocked(dOc, P))                // dO P^T: [hd, q1, nkv, B]
		if pad := L - q1; pad > 0 {
			dKc, dVc = g.PadRows(dKc, pad), g.PadRows(dVc, pad)
		}
		if i == 0 {
			dQ, dK, dV = dQc, dKc, dVc
		} else {
			dQ, dK, dV = g.Concat(dQ, dQc, 1), g.Add(dK, dKc), g.Add(dV, dVc)
		}
		b.gr.Expand(dQ)
		b.gr.Expand(dK)
		b.gr.Expand(dV)
	}
	back := func(d ggml.Tensor, heads int64) ggml.Tensor { // [hd, L, heads, B] -> [hd, heads, T]
		return g.Reshape3D(g.Cont(g.Permute(d, 0, 2, 1, 3)), hd, heads, T)
	}
	dq3, dk3 := b.ropeBack(l, back(dQ, nh)), b.ropeBack(l, back(dK, nkv))
	if hp.arch.qkNorm {
		dq3 = g.RMSNormBack(g.Mul(dq3, tm.weights[b.w(l, "attn_q_norm.weight")]), a.q3, hp.eps)
		dk3 = g.RMSNormBack(g.Mul(dk3, tm.weights[b.w(l, "attn_k_norm.weight")]), a.k3, hp.eps)
	}
	dq, dk := g.Reshape2D(dq3, hd*nh, T), g.Reshape2D(dk3, hd*nkv, T)
	dv := g.Reshape2D(back(dV, nkv), hd*nkv, T)
	dxn := b.linBack(b.w(l, "attn_q.weight"), a.xn, a.uq, dq)
	dxn = g.Add(dxn, b.linBack(b.w(l, "attn_k.weight"), a.xn, a.uk, dk))
	dxn = g.Add(dxn, b.linBack(b.w(l, "attn_v.weight"), a.xn, a.uv, dv))
	return g.Add(dh, g.RMSNormBack(g.Mul(dxn, tm.weights[b.w(l, "attn_norm.weight")]), a.x, hp.eps))
}

// headForward builds the head on the scored rows of the last block's output xN: the final norm, then,
// per row chunk, logits, softmax and log-probs (into sg.logp), and with withGrad g = d logp / d hn.
func (b *stepBuilder) headForward(xN ggml.Tensor, withGrad bool) (xs, gs ggml.Tensor) {
	tm, g, hp := b.tm, b.g, b.tm.hp
	d, V, R := int64(hp.nEmbd), int64(hp.nVocab), int64(len(b.p.rows))
	out, ok := tm.weights["output.weight"]
	outName := "output.weight"
	if !ok {
		out, outName = tm.weights["token_embd.weight"], "token_embd.weight"
	}
	xs = g.GetRows(xN, b.sg.rows) // [d, R]
	hn := g.Mul(g.RMSNorm(xs, hp.eps), tm.weights["output_norm.weight"])
	n := max(min(int64(tm.limits.head)/V, R), 1)
	for r0 := int64(0); r0 < R; r0 += n {
		c := min(n, R-r0)
		hc := g.View2D(hn, d, c, hn.Nb(1), r0*hn.Nb(1))
		tc := g.View1D(b.sg.tgts, c, 4*r0)
		logits := g.MulMat(out, hc) // [V, c]
		sm := g.SoftMax(logits)
		lp := g.TokenLogProbs(logits, sm, tc)
		var gc ggml.Tensor
		if withGrad {
			gc = g.Sub(g.GetRows(out, tc), b.mulMatSliced(tm.wT[outName], sm, vocabSlice)) // [d, c]
		}
		if r0 == 0 {
			b.sg.logp, gs = lp, gc
		} else {
			b.sg.logp = g.Concat(b.sg.logp, lp, 0)
			if withGrad {
				gs = g.Concat(gs, gc, 1)
			}
		}
		b.gr.Expand(b.sg.logp)
		if withGrad {
			b.gr.Expand(gs)
		}
	}
	return xs, gs
}

// chunkLimits bound the elements of one attention chunk's scores and of one head chunk's logits.
type chunkLimits struct{ attention, head int }

var defaultChunkLimits = chunkLimits{attnChunkElems, headChunkElems}

// chunksOf is the attention chunking of plan p.
func (tm *TrainModel) chunksOf(p *batchPlan) []chunk {
	return attentionChunks(p.L, tm.hp.nHead, p.B, tm.limits.attention)
}

// graphSize bounds the nodes plus leaves of a step graph with the given attention and head chunks.
func (tm *TrainModel) graphSize(chunks, rows int, withGrad bool) int {
	hp := tm.hp
	group := hp.nHead / max(hp.nKV, 1)
	perLayer := 140 + chunks*12
	if withGrad {
		perLayer = 440 + chunks*(60+2*group)
	}
	headChunks := rows*hp.nVocab/tm.limits.head + 1
	return 1024 + hp.nLayer*perLayer + (32+4*(hp.nVocab/vocabSlice+1))*headChunks
}

// ensureScheduler makes sure the scheduler takes graphs of size nodes and leaves. On a device every
// step gets a new scheduler and device backend (see renewDeviceBackend).
func (tm *TrainModel) ensureScheduler(size int) error {
	if tm.sched != nil && size <= tm.schedSize && !tm.onDevice() {
		return nil
	}
	old := tm.sched
	if old != nil {
		old.Free()
		tm.sched = nil
		if tm.onDevice() {
			if err := tm.renewDeviceBackend(); err != nil {
				return err
			}
		}
	}
	s, err := ggml.NewScheduler(size, tm.schedBackends()...)
	if err != nil {
		return err
	}
	if old != nil {
		s.CarryPeak(old)
	}
	tm.sched, tm.schedSize = s, size
	return nil
}

// activationBytes estimates the memory a step without checkpointing keeps for the backward pass.
func (tm *TrainModel) activationBytes(p *batchPlan) int64 {
	hp := tm.hp
	T := int64(p.L * p.B)
	perToken := int64(10*hp.nEmbd + 4*hp.nFF + 3*(hp.nHead+2*hp.nKV)*hp.headDim)
	if hp.arch.qkNorm { // the pre-norm Q and K heads
		perToken += int64((hp.nHead + hp.nKV) * hp.headDim)
	}
	if hp.arch.postNorms { // the attention and FFN outputs before their norms
		perToken += int64(2 * hp.nEmbd)
	}
	probs := int64(p.L) * int64(p.L+1) / 2 * int64(hp.nHead*p.B)
	return 4 * int64(hp.nLayer) * (T*perToken + probs)
}

// recompute reports whether a step over p recomputes block activations in the backward pass.
func (tm *TrainModel) recompute(p *batchPlan) bool {
	switch tm.ckpt {
	case CheckpointOn:
		return true
	case CheckpointOff:
		return false
	}
	return tm.activationBytes(p) > availableMemory()/4
}

// availableMemory is /proc/meminfo's MemAvailable in bytes (4 GiB, i.e. a 1 GiB activation budget,
// where it cannot be read).
func availableMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 4 * checkpointAutoFallbackBytes
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			if f := strings.Fields(v); len(f) == 2 && f[1] == "kB" {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil && n > 0 {
					return n << 10
				}
			}
		}
	}
	return 4 * checkpointAutoFallbackBytes
}

// runStep builds, allocates and runs a step graph over seqs: the forward part, then (when rowWeights is
// not nil) rowWeights(log-probs) gives each scored row's weight and the backward part runs, adding the
// gradient of sum_r weight_r * logp_r into every parameter's Grad. It returns the log-prob of each
// scored row, in plan order.
func (tm *TrainModel) runStep(p *batchPlan, rowWeights func(logp []float32) ([]float32, error)) ([]float32, error) {
	withGrad := rowWeights != nil
	if tm.onDevice() && withGrad {
		return tm.runStepOnDevice(p, rowWeights) // a device and the CPU (device.go)
	}
	sg, err := tm.buildStep(p, withGrad)
	if err != nil {
		return nil, err
	}
	defer sg.ctx.Free()
	if err := tm.sched.Alloc(sg.gr); err != nil {
		return nil, fmt.Errorf("%w (sequences of %d tokens x %d: use shorter sequences, fewer pairs per micro-batch, or --checkpointing on)", err, p.L, p.B)
	}
	if err := tm.setStepInputs(sg, p); err != nil {
		return nil, err
	}
	if !withGrad {
		if err := tm.sched.Compute(sg.gr); err != nil {
			return nil, err
		}
		return sg.logp.Float32(nil), nil
	}
	forward, backward, err := sg.gr.SplitAt(sg.ctx, sg.split)
	if err != nil {
		return nil, err
	}
	if err := tm.sched.ComputePart(forward); err != nil {
		return nil, err
	}
	logp := sg.logp.Float32(nil)
	w, err := rowWeights(logp)
	if err != nil {
		return nil, err
	}
	if err := sg.rowWeight.SetFloat32(w); err != nil {
		return nil, err
	}
	if err := tm.sched.ComputePart(backward); err != nil {
		return nil, err
	}
	return logp, tm.addGradTensors(sg.grads)
}

// setStepInputs copies plan p's tokens, positions, masks, scored rows and targets into the inputs of
// the allocated step graph sg.
func (tm *TrainModel) setStepInputs(sg *stepGraph, p *batchPlan) error {
	for _, err := range []error{sg.tokens.SetInt32(p.tokens), sg.pos.SetInt32(p.pos), sg.masks.SetFloat32(tm.stepMasks(sg.chunks)),
		sg.rows.SetInt32(p.rows), sg.tgts.SetInt32(p.targets)} {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkLogProbs fails on a non-finite log-prob.
func checkLogProbs(logp []float32, what string) error {
	for r, v := range logp {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%s: %w: log-prob %v at scored row %d", what, ErrNumerical, v, r)
		}
	}
	return nil
}

// SetCheckpointing changes the activation-recomputation setting of later steps.
func (tm *TrainModel) SetCheckpointing(c Checkpointing) { tm.ckpt = c }

// KeptActivationBytes estimates the activation memory a step over seqs keeps for its backward pass
// without checkpointing (the quantity CheckpointAuto compares with a quarter of the available memory).
func (tm *TrainModel) KeptActivationBytes(seqs []TrainSeq) (int64, error) {
	p, err := tm.plan(seqs)
	if err != nil {
		return 0, err
	}
	return tm.activationBytes(p), nil
}

// SetThreads changes the CPU threads of later steps (at most the idle cores are used; see threads.go).
func (tm *TrainModel) SetThreads(n int) { tm.cpu.SetThreads(n) }

// TokenLogProbsAndGradient is the per-token form of LogProbsAndGradient (LoRA training): it computes
// the log-prob of every completion token of every sequence, asks coefFn for the coefficients
// c_{s,i} = dLoss/dlogp_{s,i} (same shape), then adds the exact gradient of sum_{s,i} c_{s,i} logp_{s,i}
// to every parameter's Grad, and returns the log-probs. Token-level objectives (GRPO's clipped
// importance ratios, per-token KL) need it; with all of a sequence's coefficients equal it is
// LogProbsAndGradient.
func (tm *TrainModel) TokenLogProbsAndGradient(seqs []TrainSeq, coefFn func(logps [][]float64) ([][]float64, error)) ([][]float64, error) {
	if tm.full {
		return nil, fmt.Errorf("train gradient: %w: per-token coefficients need LoRA training", ggml.ErrInvalidArgument)
	}
	p, err := tm.plan(seqs)
	if err != nil {
		return nil, err
	}
	out := make([][]float64, len(seqs))
	_, err = tm.runStep(p, func(logp []float32) ([]float32, error) {
		if err := checkLogProbs(logp, "train forward"); err != nil {
			return nil, err
		}
		for r, v := range logp {
			out[p.seqOf[r]] = append(out[p.seqOf[r]], float64(v))
		}
		coef, err := coefFn(out)
		if err != nil {
			return nil, err
		}
		if len(coef) != len(seqs) {
			return nil, fmt.Errorf("train gradient: %w: coefficients for %d sequences, want %d", ggml.ErrInvalidArgument, len(coef), len(seqs))
		}
		w := make([]float32, 0, len(logp))
		for s, cs := range coef {
			if len(cs) != len(out[s]) {
				return nil, fmt.Errorf("train gradient: %w: sequence %d has %d coefficients for %d tokens", ggml.ErrInvalidArgument, s, len(cs), len(out[s]))
			}
			for i, c := range cs {
				if math.IsNaN(c) || math.IsInf(c, 0) {
					return nil, fmt.Errorf("train gradient: %w: coefficient %v for token %d of sequence %d", ErrNumerical, c, i, s)
				}
				w = append(w, float32(c))
			}
		}
		return w, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
