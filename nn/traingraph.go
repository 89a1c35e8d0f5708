package nn

import (
	"fmt"
	"math"

	"github.com/bpo-dev/bpo/ggml"
)

// batchPlan lays sequences out as a batch of B rows of L tokens (right-padded to the longest), all
// rows under the same causal mask, and lists the R hidden rows whose next-token prediction is
// scored. Padding only ever attends to earlier tokens of its own row and is never scored, so it does
// not change any scored log-prob; attention costs B*L^2 instead of (B*L)^2 for packed sequences.
type batchPlan struct {
	L, B    int
	tokens  []int32
	pos     []int32
	rows    []int32 // flat hidden row (b*L + i) predicting each scored token
	targets []int32 // scored token ids
	seqOf   []int   // scored row -> sequence
	counts  []int   // scored tokens per sequence
}

func (tm *TrainModel) plan(seqs []TrainSeq) (*batchPlan, error) {
	if len(seqs) == 0 {
		return nil, fmt.Errorf("train batch: %w: no sequences", ggml.ErrInvalidArgument)
	}
	p := &batchPlan{B: len(seqs), counts: make([]int, len(seqs))}
	for s, seq := range seqs {
		if seq.PromptLen < 1 || seq.PromptLen >= len(seq.Tokens) {
			return nil, fmt.Errorf("train batch: sequence %d: %w: prompt length %d of %d tokens (need >= 1 prompt token and >= 1 completion token)", s, ggml.ErrInvalidArgument, seq.PromptLen, len(seq.Tokens))
		}
		if tm.hp.nCtxTrain > 0 && len(seq.Tokens) > tm.hp.nCtxTrain {
			return nil, fmt.Errorf("train batch: sequence %d: %w: %d tokens, the model's context is %d", s, ggml.ErrContextOverflow, len(seq.Tokens), tm.hp.nCtxTrain)
		}
		for i, t := range seq.Tokens {
			if t < 0 || int(t) >= tm.hp.nVocab {
				return nil, fmt.Errorf("train batch: sequence %d: %w: token %d at position %d, vocabulary has %d", s, ggml.ErrTokenOutOfRange, t, i, tm.hp.nVocab)
			}
		}
		p.L = max(p.L, len(seq.Tokens))
	}
	L := p.L
	p.tokens = make([]int32, L*p.B)
	p.pos = make([]int32, L*p.B)
	for s, seq := range seqs {
		row := p.tokens[s*L : (s+1)*L]
		copy(row, seq.Tokens)
		for i := len(seq.Tokens); i < L; i++ {
			row[i] = seq.Tokens[len(seq.Tokens)-1] // padding: any valid id
		}
		for i := 0; i < L; i++ {
			p.pos[s*L+i] = int32(i)
		}
		for i := seq.PromptLen; i < len(seq.Tokens); i++ {
			p.rows = append(p.rows, int32(s*L+i-1))
			p.targets = append(p.targets, seq.Tokens[i])
			p.seqOf = append(p.seqOf, s)
			p.counts[s]++
		}
	}
	return p, nil
}

type graphMode int

// The graph below is built with ggml's automatic differentiation and serves full-parameter training of
// small F32 models (every weight trainable); LoRA training uses the hand-written step of trainstep.go.

const (
	modeCE       graphMode = iota // mean token cross-entropy over scored rows, with backward
	modeWeighted                  // sum_r w_r log p_r, with backward (needs each row's logit max)
)

// trainGraph is one built graph with its input and output nodes.
type trainGraph struct {
	ctx                     *ggml.GContext
	gr                      *ggml.Graph
	tokens, pos, mask, rows ggml.Tensor
	labels, seqWeight       ggml.Tensor
	seqCE                   []ggml.Tensor // modeWeighted: mean CE of each sequence
	weighted                ggml.Tensor   // modeWeighted: the first node that reads seqWeight
	logits, loss            ggml.Tensor
	grads                   []ggml.Tensor
}

// lin applies a projection with its LoRA pair, if any: W x + scale * B (A x).
func (tm *TrainModel) lin(g *ggml.GContext, name string, x ggml.Tensor) ggml.Tensor {
	y := g.MulMat(tm.weights[name], x)
	if ab, ok := tm.lora[name]; ok {
		y = g.Add(y, g.Scale(g.MulMat(ab[1], g.MulMat(ab[0], x)), tm.loraScale))
	}
	return y
}

func (tm *TrainModel) build(p *batchPlan, mode graphMode) *trainGraph {
	hp := tm.hp
	T, R := int64(len(p.tokens)), int64(len(p.rows))
	L, B := int64(p.L), int64(p.B)
	size := 3 * trainGraphSize(hp)
	// Room for the graph's tensors, the graph, and the rewritten graph plus its transposes (see
	// Graph.FastOuterProducts).
	g := ggml.NewGContext(2*size+64, 4*size, true)
	tg := &trainGraph{ctx: g}
	tg.tokens = g.NewTensor(ggml.TypeI32, T).SetName("tokens")
	tg.pos = g.NewTensor(ggml.TypeI32, T).SetName("positions")
	tg.mask = g.NewTensor(ggml.TypeF32, L, L).SetName("kq_mask")
	tg.rows = g.NewTensor(ggml.TypeI32, R).SetName("scored_rows")
	for _, t := range []ggml.Tensor{tg.tokens, tg.pos, tg.mask, tg.rows} {
		t.SetInput()
	}
	var freq ggml.Tensor
	if w, ok := tm.weights["rope_freqs.weight"]; ok {
		freq = w
	}
	hd, nh, nkv := int64(hp.headDim), int64(hp.nHead), int64(hp.nKV)
	kqScale := float32(1 / math.Sqrt(float64(hp.headDim)))
	cur := g.GetRows(tm.weights["token_embd.weight"], tg.tokens)
	for l := 0; l < hp.nLayer; l++ {
		w := func(n string) string { return fmt.Sprintf("blk.%d.%s", l, n) }
		inp := cur
		x := g.Mul(g.RMSNorm(cur, hp.eps), tm.weights[w("attn_norm.weight")])
		q := tm.lin(g, w("attn_q.weight"), x)
		k := tm.lin(g, w("attn_k.weight"), x)
		v := tm.lin(g, w("attn_v.weight"), x)
		if hp.arch.qkvBias {
			q = g.Add(q, tm.weights[w("attn_q.bias")])
			k = g.Add(k, tm.weights[w("attn_k.bias")])
			v = g.Add(v, tm.weights[w("attn_v.bias")])
		}
		q = g.Rope(g.Reshape3D(q, hd, nh, T), tg.pos, freq, hp.headDim, hp.ropeMode, hp.nCtxTrain, hp.ropeBase, hp.ropeScale)
		k = g.Rope(g.Reshape3D(k, hd, nkv, T), tg.pos, freq, hp.headDim, hp.ropeMode, hp.nCtxTrain, hp.ropeBase, hp.ropeScale)
		Q := g.Cont(g.Permute(g.Reshape4D(q, hd, nh, L, B), 0, 2, 1, 3))  // [hd, L, nh, B]
		K := g.Cont(g.Permute(g.Reshape4D(k, hd, nkv, L, B), 0, 2, 1, 3)) // [hd, L, nkv, B]
		V := g.Cont(g.Permute(g.Reshape4D(v, hd, nkv, L, B), 1, 2, 0, 3)) // [L, hd, nkv, B]
		if group := nh / nkv; group > 1 {
			// Give every query head its own copy of its KV head (head h reads KV head h/group):
			// ggml's mul_mat backward cannot broadcast heads when the batch dimension is > 1.
			K = g.Reshape4D(g.Repeat4D(g.Reshape4D(K, hd*L, 1, nkv*B, 1), hd*L, group, nkv*B, 1), hd, L, nh, B)
			V = g.Reshape4D(g.Repeat4D(g.Reshape4D(V, L*hd, 1, nkv*B, 1), L*hd, group, nkv*B, 1), L, hd, nh, B)
		}
		kq := g.SoftMaxExt(g.MulMat(K, Q), tg.mask, kqScale) // [L_k, L_q, nh, B]
		kqv := g.MulMat(V, kq)                               // [hd, L_q, nh, B]
		o := g.Reshape2D(g.Cont(g.Permute(kqv, 0, 2, 1, 3)), hd*nh, T)
		cur = g.Add(tm.lin(g, w("attn_output.weight"), o), inp)
		ffnIn := cur
		x = g.Mul(g.RMSNorm(cur, hp.eps), tm.weights[w("ffn_norm.weight")])
		h := g.SwigluSplit(tm.lin(g, w("ffn_gate.weight"), x), tm.lin(g, w("ffn_up.weight"), x))
		cur = g.Add(tm.lin(g, w("ffn_down.weight"), h), ffnIn)
	}
	cur = g.Mul(g.RMSNorm(cur, hp.eps), tm.weights["output_norm.weight"])
	sel := g.GetRows(cur, tg.rows) // [n_embd, R]
	out, ok := tm.weights["output.weight"]
	if !ok {
		out = tm.weights["token_embd.weight"]
	}
	tg.logits = g.MulMat(out, sel) // [n_vocab, R]
	tg.gr = g.NewGraph(size, true)
	switch mode {
	case modeCE:
		tg.labels = g.NewTensor(ggml.TypeF32, int64(hp.nVocab), R).SetName("labels")
		tg.labels.SetInput()
		tg.loss = g.CrossEntropyLoss(tg.logits, tg.labels)
	case modeWeighted:
		// loss = sum_s w_s * CE_s, CE_s the mean token cross-entropy of sequence s's scored rows
		// (ggml's stable log-softmax), w_s = -n_s * c_s: so loss = sum_s c_s * logp_s. Every CE is
		// added to the graph before the first node that reads the weights, which are set between
		// the forward and the backward part (see LogProbsAndGradient).
		V := int64(hp.nVocab)
		tg.labels = g.NewTensor(ggml.TypeF32, V, R).SetName("labels")
		tg.seqWeight = g.NewTensor(ggml.TypeF32, int64(len(p.counts))).SetName("sequence_weight")
		tg.labels.SetInput()
		tg.seqWeight.SetInput()
		nb1 := tg.logits.Nb(1)
		var seqs []int
		r0 := int64(0)
		for s, n := range p.counts {
			ce := g.CrossEntropyLoss(g.View2D(tg.logits, V, int64(n), nb1, r0*nb1), g.View2D(tg.labels, V, int64(n), nb1, r0*nb1))
			ce.SetOutput()
			tg.gr.Expand(ce)
			tg.seqCE = append(tg.seqCE, ce)
			seqs = append(seqs, s)
			r0 += int64(n)
		}
		for i, ce := range tg.seqCE {
			term := g.Mul(ce, g.View1D(tg.seqWeight, 1, int64(4*seqs[i])))
			if i == 0 {
				tg.weighted = term
				tg.loss = term
			} else {
				tg.loss = g.Add(tg.loss, term)
			}
		}
	}
	tg.loss.SetLoss()
	tg.loss.SetOutput()
	tg.gr.Expand(tg.loss)
	tg.gr.BuildBackward(g)
	tg.gr.FastOuterProducts(g, size)
	for _, p := range tm.params {
		gt := tg.gr.Grad(p.tensor)
		if !gt.Nil() {
			gt.SetOutput()
		}
		tg.grads = append(tg.grads, gt)
	}
	return tg
}

// prepare allocates the graph, sets its inputs (and the labels, when the graph has them) and, for a
// graph with a backward pass, seeds the loss gradient.
func (tm *TrainModel) prepare(tg *trainGraph, p *batchPlan) error {
	if err := tm.sched.Alloc(tg.gr); err != nil {
		return err
	}
	for _, err := range []error{tg.tokens.SetInt32(p.tokens), tg.pos.SetInt32(p.pos), tg.mask.SetFloat32(causalMask(p.L)), tg.rows.SetInt32(p.rows)} {
		if err != nil {
			return err
		}
	}
	if !tg.labels.Nil() {
		V := tm.hp.nVocab
		labels := make([]float32, V*len(p.rows))
		for r, t := range p.targets {
			labels[r*V+int(t)] = 1
		}
		if err := tg.labels.SetFloat32(labels); err != nil {
			return err
		}
	}
	if tg.gr.HasGrads() {
		tg.gr.Reset()
	}
	return nil
}

// LogProbs returns, for each sequence, log p(token | previous tokens) of its completion tokens (forward only).
func (tm *TrainModel) LogProbs(seqs []TrainSeq) ([][]float64, error) {
	p, err := tm.plan(seqs)
	if err != nil {
		return nil, err
	}
	logp, err := tm.runStep(p, nil)
	if err != nil {
		return nil, err
	}
	if err := checkLogProbs(logp, "train forward"); err != nil {
		return nil, err
	}
	out := make([][]float64, len(seqs))
	for r, v := range logp {
		out[p.seqOf[r]] = append(out[p.seqOf[r]], float64(v))
	}
	return out, nil
}

// causalMask is the L x L attention mask of the autodiff graph: key k hidden (-inf) from query q when k > q.
func causalMask(L int) []float32 {
	m := make([]float32, L*L)
	negInf := float32(math.Inf(-1))
	for q := 0; q < L; q++ {
		for k := q + 1; k < L; k++ {
			m[q*L+k] = negInf
		}
	}
	return m
}

// ErrNumerical means a NaN or Inf appeared in a loss, log-prob or gradient.
var ErrNumerical = fmt.Errorf("non-finite value")

// ZeroGrads clears every parameter's gradient.
func (tm *TrainModel) ZeroGrads() {
	for _, p := range tm.params {
		clear(p.Grad)
	}
}

// addGradTensors adds the gradient tensors (one per parameter, nil when it gets none) into the
// parameters' Grad, checking they are finite.
func (tm *TrainModel) addGradTensors(grads []ggml.Tensor) error {
	var tmp []float32
	for i, p := range tm.params {
		gt := grads[i]
		if gt.Nil() {
			continue
		}
		tmp = gt.Float32(tmp)
		for j, v := range tmp {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("gradient of %s: %w (%v at element %d)", p.Name, ErrNumerical, v, j)
			}
			p.Grad[j] += v
		}
	}
	return nil
}

// LogProbsAndGradient computes each sequence's completion log-prob sum, asks coefFn for the
// coefficients c_s = dLoss/dlogp_s (its loss is any function of those sums), then adds the exact
// gradient of sum_s c_s * logp_s to every parameter's Grad, and returns the sums. One graph does it
// all: its forward part runs, the coefficients are set as an input, then its backward part runs.
func (tm *TrainModel) LogProbsAndGradient(seqs []TrainSeq, coefFn func(sums []float64) ([]float64, error)) ([]float64, error) {
	p, err := tm.plan(seqs)
	if err != nil {
		return nil, err
	}
	if !tm.full {
		sums := make([]float64, len(seqs))
		_, err := tm.runStep(p, func(logp []float32) ([]float32, error) {
			if err := checkLogProbs(logp, "train forward"); err != nil {
				return nil, err
			}
			for r, v := range logp {
				sums[p.seqOf[r]] += float64(v)
			}
			coef, err := coefFn(sums)
			if err != nil {
				return nil, err
			}
			if len(coef) != len(seqs) {
				return nil, fmt.Errorf("train gradient: %w: %d coefficients for %d sequences", ggml.ErrInvalidArgument, len(coef), len(seqs))
			}
			for s, c := range coef {
				if math.IsNaN(c) || math.IsInf(c, 0) {
					return nil, fmt.Errorf("train gradient: %w: coefficient %v for sequence %d", ErrNumerical, c, s)
				}
			}
			w := make([]float32, len(logp))
			for r := range w {
				w[r] = float32(coef[p.seqOf[r]])
			}
			return w, nil
		})
		if err != nil {
			return nil, err
		}
		return sums, nil
	}
	tg := tm.build(p, modeWeighted)
	defer tg.ctx.Free()
	forward, backward, err := tg.gr.SplitAt(tg.ctx, tg.weighted)
	if err != nil {
		return nil, err
	}
	if err := tm.prepare(tg, p); err != nil {
		return nil, err
	}
	if err := tm.sched.ComputePart(forward); err != nil {
		return nil, err
	}
	sums := make([]float64, len(seqs))
	for s, ce := range tg.seqCE {
		sums[s] = -float64(ce.Float32(nil)[0]) * float64(p.counts[s])
		if math.IsNaN(sums[s]) || math.IsInf(sums[s], 0) {
			return nil, fmt.Errorf("train forward: %w: log-prob %v of sequence %d", ErrNumerical, sums[s], s)
		}
	}
	coef, err := coefFn(sums)
	if err != nil {
		return nil, err
	}
	if len(coef) != len(seqs) {
		return nil, fmt.Errorf("train gradient: %w: %d coefficients for %d sequences", ggml.ErrInvalidArgument, len(coef), len(seqs))
	}
	weights := make([]float32, len(seqs))
	for s, c := range coef {
		if math.IsNaN(c) || math.IsInf(c, 0) {
			return nil, fmt.Errorf("train gradient: %w: coefficient %v for sequence %d", ErrNumerical, c, s)
		}
		weights[s] = float32(-c * float64(p.counts[s]))
	}
	if err := tg.seqWeight.SetFloat32(weights); err != nil {
		return nil, err
	}
	if err := tm.sched.ComputePart(backward); err != nil {
		return nil, err
	}
	if l := tg.loss.Float32(nil)[0]; math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) {
		return nil, fmt.Errorf("train gradient: %w: weighted log-prob %v", ErrNumerical, l)
	}
	return sums, tm.addGradTensors(tg.grads)
}

// NLLGradient adds the gradient of the mean negative log-likelihood of all completion tokens of the
// batch to every parameter's Grad (supervised fine-tuning) and returns that mean NLL.
func (tm *TrainModel) NLLGradient(seqs []TrainSeq) (float64, error) {
	p, err := tm.plan(seqs)
	if err != nil {
		return 0, err
	}
	if !tm.full {
		var nll float64
		_, err := tm.runStep(p, func(logp []float32) ([]float32, error) {
			if err := checkLogProbs(logp, "sft"); err != nil {
				return nil, err
			}
			w := make([]float32, len(logp))
			for r, v := range logp {
				nll -= float64(v)
				w[r] = -1 / float32(len(logp))
			}
			nll /= float64(len(logp))
			return w, nil
		})
		return nll, err
	}
	tg := tm.build(p, modeCE)
	defer tg.ctx.Free()
	if err := tm.prepare(tg, p); err != nil {
		return 0, err
	}
	if err := tm.sched.Compute(tg.gr); err != nil {
		return 0, err
	}
	loss := float64(tg.loss.Float32(nil)[0])
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, fmt.Errorf("sft: %w: loss %v", ErrNumerical, loss)
	}
	return loss, tm.addGradTensors(tg.grads)
}
