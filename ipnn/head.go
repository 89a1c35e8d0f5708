package ipnn

import (
	"fmt"
	"math"
)

// HeadConfig configures the IPNN output head.
type HeadConfig struct {
	Split     []int      `json:"split"`
	LabelSets []LabelSet `json:"label_sets"`
	// Forget is the forget number T: observations of the last T mini-batches count.
	Forget int `json:"forget"`
	// Eps is the stable number epsilon of P(y|joint) = max(num,eps)/max(den,eps).
	Eps float64 `json:"eps"`
	// Independence lists split groups whose mutual independence is encouraged by an
	// extra KL(P(joint) || prod P(A^j)) loss term (empty: off).
	Independence []int `json:"independence,omitempty"`
	// RefClamp reproduces the reference implementation's accumulators, which are stored
	// clamped at eps after every step instead of being exact sums of the last T batches.
	RefClamp bool `json:"ref_clamp,omitempty"`
}

// Head is the IPNN output layer: per-group softmax, observation and inference.
type Head struct {
	cfg    HeadConfig
	split  Split
	sets   []*setState
	indep  *indepTerm
	probs  []float64 // batch×Nodes group probabilities
	dprobs []float64
	works  []jointWork
}

// setState is the per-label-set observation state.
type setState struct {
	ls    LabelSet
	space jointSpace
	win   *window
	pred  []float32 // cached P(y|joint) L×K for inference; nil when stale
	// step buffers, reused
	j, dj, den, num, q, dq, dden, part []float64
}

// NewHead validates cfg and returns a head with empty observation windows.
func NewHead(cfg HeadConfig) (*Head, error) {
	s, err := NewSplit(cfg.Split)
	if err != nil {
		return nil, err
	}
	if cfg.Forget < 1 {
		return nil, fmt.Errorf("forget number must be >= 1, got %d", cfg.Forget)
	}
	if !(cfg.Eps > 0) {
		return nil, fmt.Errorf("eps must be > 0, got %v", cfg.Eps)
	}
	if len(cfg.LabelSets) == 0 {
		return nil, fmt.Errorf("ipnn head: no label sets")
	}
	h := &Head{cfg: cfg, split: s, works: make([]jointWork, maxWorkers())}
	for _, ls := range cfg.LabelSets {
		if err := ls.validate(s); err != nil {
			return nil, err
		}
		sp := newJointSpace(s, ls.Groups)
		win := newWindow(cfg.Forget, sp.size, ls.Classes)
		if cfg.RefClamp {
			win.setRefClamp(cfg.Eps)
		}
		h.sets = append(h.sets, &setState{ls: ls, space: sp, win: win})
	}
	if len(cfg.Independence) > 0 {
		it, err := newIndepTerm(s, cfg.Independence, cfg.Forget, cfg.Eps)
		if err != nil {
			return nil, err
		}
		h.indep = it
	}
	return h, nil
}

// Config returns the head configuration.
func (h *Head) Config() HeadConfig { return h.cfg }

// Split returns the output split.
func (h *Head) Split() Split { return h.split }

// Step observes a labelled mini-batch and returns the summed loss of all label sets
// (plus the independence term), writing dL/dlogits into dlogits (batch×Nodes).
// The current batch enters the observation differentiably; earlier batches are constants.
// The per-term losses are returned in parts (label sets in order, then independence).
func (h *Head) Step(logits Mat, y []int64, dlogits Mat) (loss float64, parts []float64) {
	return h.lossGrad(logits, y, dlogits, true)
}

// lossGrad is Step; with commit false the observation windows are left unchanged (used by
// the gradient check, which needs the same loss function at every probe).
func (h *Head) lossGrad(logits Mat, y []int64, dlogits Mat, commit bool) (loss float64, parts []float64) {
	B, n := logits.Rows, h.split.Nodes()
	h.probs = grow(h.probs, B*n)
	h.dprobs = grow(h.dprobs, B*n)
	clear(h.dprobs)
	h.split.groupSoftmax(logits, h.probs)
	for _, st := range h.sets {
		l := h.stepSet(st, B, y, commit)
		parts = append(parts, l)
		loss += l
	}
	if h.indep != nil {
		l := h.indep.step(h.probs, h.dprobs, B, n, commit)
		parts = append(parts, l)
		loss += l
	}
	h.split.groupSoftmaxBackward(h.probs, h.dprobs, dlogits)
	return loss, parts
}

func (h *Head) stepSet(st *setState, B int, y []int64, commit bool) float64 {
	K, n, eps := st.space.size, h.split.Nodes(), h.cfg.Eps
	st.j = grow(st.j, B*K)
	st.dj = grow(st.dj, B*K)
	parallelRows(B, 8, func(_, lo, hi int) {
		for b := lo; b < hi; b++ {
			st.space.forward(h.probs[b*n:(b+1)*n], st.j[b*K:(b+1)*K])
		}
	})
	// distinct labels of the batch; ub[b] is sample b's label index.
	idx := map[int32]int{}
	var labels []int32
	ub := make([]int, B)
	for b := 0; b < B; b++ {
		lb := st.ls.Label(y[b])
		u, ok := idx[lb]
		if !ok {
			u = len(labels)
			idx[lb] = u
			labels = append(labels, lb)
		}
		ub[b] = u
	}
	U := len(labels)
	st.win.trimForStep()
	curDen := make([]float64, K)
	rows := make([]float32, U*K) // current batch numerator, kept for the window
	st.den = grow(st.den, K)
	st.num = grow(st.num, U*K)
	st.q = grow(st.q, U*K)
	st.dq = grow(st.dq, U*K)
	st.dden = grow(st.dden, K)
	st.part = grow(st.part, 2*B) // per-worker partial sums (at most 2 workers)
	den, num, q, dq, dden := st.den, st.num, st.q, st.dq, st.dden
	clear(st.part)
	// Phase 1, partitioned over joint points k: observation sums (current batch
	// differentiable + detached history), P(y|joint) and partial P(y_b|x_b).
	parallelRows(K, 64, func(w, lo, hi int) {
		part := st.part[w*B : (w+1)*B]
		clear(num[lo:hi])
		for u := 1; u < U; u++ {
			clear(num[u*K+lo : u*K+hi])
		}
		for k := lo; k < hi; k++ {
			curDen[k] = 0
		}
		for b := 0; b < B; b++ {
			jr := st.j[b*K+lo : b*K+hi]
			nr := num[ub[b]*K+lo : ub[b]*K+hi]
			cd := curDen[lo:hi]
			for i, v := range jr {
				cd[i] += v
				nr[i] += v
			}
		}
		for u := 0; u < U; u++ {
			for k := lo; k < hi; k++ {
				rows[u*K+k] = float32(num[u*K+k])
			}
		}
		copy(den[lo:hi], curDen[lo:hi])
		st.win.addDenRange(den, lo, hi)
		for u, lb := range labels {
			st.win.addNumRange(lb, num[u*K:(u+1)*K], lo, hi)
		}
		for u := 0; u < U; u++ {
			for k := lo; k < hi; k++ {
				nn, dd := num[u*K+k], den[k]
				if nn < eps {
					nn = eps
				}
				if dd < eps {
					dd = eps
				}
				r := nn / dd
				if r > 1 {
					r = 1
				}
				q[u*K+k] = r
			}
		}
		for b := 0; b < B; b++ {
			jr, qr := st.j[b*K+lo:b*K+hi], q[ub[b]*K+lo:ub[b]*K+hi]
			p := 0.0
			for i, v := range jr {
				p += qr[i] * v
			}
			part[b] = p
		}
	})
	g := make([]float64, B)
	loss := 0.0
	for b := 0; b < B; b++ {
		p := st.part[b] + st.part[B+b]
		if p < 1e-300 {
			p = 1e-300
		}
		loss -= math.Log(p)
		g[b] = -1 / (float64(B) * p)
	}
	loss /= float64(B)
	// Phase 2: gradients, again partitioned over k.
	parallelRows(K, 64, func(_, lo, hi int) {
		for u := 0; u < U; u++ {
			clear(dq[u*K+lo : u*K+hi])
		}
		for b := 0; b < B; b++ {
			jr, dr := st.j[b*K+lo:b*K+hi], dq[ub[b]*K+lo:ub[b]*K+hi]
			gb := g[b]
			for i, v := range jr {
				dr[i] += gb * v
			}
		}
		// back through clip(max(num,eps)/max(den,eps), 0, 1); dq becomes dL/dnum.
		for k := lo; k < hi; k++ {
			dden[k] = 0
		}
		for u := 0; u < U; u++ {
			for k := lo; k < hi; k++ {
				i := u*K + k
				nn, dd := max(num[i], eps), max(den[k], eps)
				if nn/dd > 1 {
					dq[i] = 0 // clipped at 1: no gradient
					continue
				}
				if den[k] > eps {
					dden[k] -= dq[i] * nn / (dd * dd)
				}
				if num[i] > eps {
					dq[i] /= dd
				} else {
					dq[i] = 0
				}
			}
		}
		// dL/dJ: direct inference term plus the observation terms of the current batch.
		for b := 0; b < B; b++ {
			jr, qr := st.dj[b*K+lo:b*K+hi], q[ub[b]*K+lo:ub[b]*K+hi]
			nr := dq[ub[b]*K+lo : ub[b]*K+hi]
			gb := g[b]
			for i := range jr {
				jr[i] = gb*qr[i] + nr[i] + dden[lo+i]
			}
		}
	})
	h.backJoint(&st.space, B, st.dj)
	if commit {
		st.win.push(obsEntry{den: curDen, labels: labels, rows: rows, index: idx})
		st.pred = nil
	}
	return loss
}

// backJoint accumulates dL/dprobs from dL/dJ over a sub-joint space, in parallel.
func (h *Head) backJoint(sp *jointSpace, B int, dj []float64) {
	n, K := h.split.Nodes(), sp.size
	parallelRows(B, 8, func(worker, lo, hi int) {
		w := &h.works[worker]
		for b := lo; b < hi; b++ {
			sp.backward(h.probs[b*n:(b+1)*n], dj[b*K:(b+1)*K], h.dprobs[b*n:(b+1)*n], w)
		}
	})
}
