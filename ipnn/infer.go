package ipnn

import "fmt"

// ObsTable is the observation of one label set: numerator sums L×K and denominator K.
type ObsTable struct {
	Num []float32
	Den []float64
}

// Tables returns, per label set, the observation sums over the current window; they are
// what inference uses and what a saved model stores.
func (h *Head) Tables() []ObsTable {
	out := make([]ObsTable, len(h.sets))
	for i, st := range h.sets {
		num, den := st.win.sums()
		out[i] = ObsTable{Num: num, Den: den}
	}
	return out
}

// SetTables replaces the observation with saved sums (one table per label set).
func (h *Head) SetTables(t []ObsTable) error {
	if len(t) != len(h.sets) {
		return fmt.Errorf("observation: %d tables for %d label sets", len(t), len(h.sets))
	}
	for i, st := range h.sets {
		K, L := st.space.size, st.ls.Classes
		if len(t[i].Num) != L*K || len(t[i].Den) != K {
			return fmt.Errorf(
				"observation of label set %q: sizes %d/%d, want %d/%d",
				st.ls.Name,
				len(t[i].Num),
				len(t[i].Den),
				L*K,
				K,
			)
		}
		labels := make([]int32, L)
		index := make(map[int32]int, L)
		for y := range labels {
			labels[y] = int32(y)
			index[int32(y)] = y
		}
		st.win.entries = []obsEntry{
			{
				den:    append([]float64(nil), t[i].Den...),
				labels: labels,
				rows:   append([]float32(nil), t[i].Num...),
				index:  index,
			},
		}
		if st.win.refClamp {
			for j, v := range t[i].Num {
				st.win.sNum[j] = float64(v)
			}
			copy(st.win.sDen, t[i].Den)
		}
		st.pred = nil
	}
	return nil
}

func (st *setState) table(eps float64) []float32 {
	if st.pred == nil {
		num, den := st.win.sums()
		st.pred = condTable(num, den, st.ls.Classes, st.space.size, eps)
	}
	return st.pred
}

// Posterior returns P(y | x) = sum_joint P(y | joint) prod_j P(a^j | x) for label set s,
// as a batch×Classes matrix, using the observation of the last T training batches.
func (h *Head) Posterior(logits Mat, s int) Mat {
	st := h.sets[s]
	B, n, K, L := logits.Rows, h.split.Nodes(), st.space.size, st.ls.Classes
	probs := make([]float64, B*n)
	h.split.groupSoftmax(logits, probs)
	j := NewMat(B, K)
	tmp := make([]float64, K)
	for b := 0; b < B; b++ {
		st.space.forward(probs[b*n:(b+1)*n], tmp)
		for k, v := range tmp {
			j.Data[b*K+k] = float32(v)
		}
	}
	out := NewMat(B, L)
	gemm(false, true, 1, j, Mat{Rows: L, Cols: K, Data: st.table(h.cfg.Eps)}, 0, out)
	return out
}

// GroupProbs returns the per-group softmax probabilities P(A^j | x), batch×Nodes.
func (h *Head) GroupProbs(logits Mat) []float64 {
	p := make([]float64, logits.Rows*h.split.Nodes())
	h.split.groupSoftmax(logits, p)
	return p
}

// Predict returns the predicted class per sample. If label set 0 is the class itself it
// is the argmax of its posterior; otherwise (digit label sets only) the class is composed
// from each label set's argmax digit, so the joint label space is never enumerated.
func (h *Head) Predict(logits Mat) []int64 {
	B := logits.Rows
	pred := make([]int64, B)
	if h.sets[0].ls.Base == 0 {
		post := h.Posterior(logits, 0)
		for b := 0; b < B; b++ {
			pred[b] = int64(argmax(post.Row(b)))
		}
		return pred
	}
	for s, st := range h.sets {
		post := h.Posterior(logits, s)
		mul := int64(1)
		for i := 0; i < st.ls.Pos; i++ {
			mul *= st.ls.Base
		}
		for b := 0; b < B; b++ {
			pred[b] += int64(argmax(post.Row(b))) * mul
		}
	}
	return pred
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
