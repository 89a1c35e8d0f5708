package ipnn

// obsEntry is one mini-batch's detached contribution to the observation of a label set:
// den[k] = sum_b P(joint=k | x_b) and, per label y present in the batch,
// num[y, k] = sum_{b: y_b = y} P(joint=k | x_b).
type obsEntry struct {
	den    []float64
	labels []int32
	rows   []float32 // len(labels)*K
	index  map[int32]int
}

// window keeps the contributions of the last T mini-batches (forget number T).
//
// In reference-clamp mode it reproduces the authors' code: running sums are stored
// clamped below at eps after every step (s = max(s - oldest + current, eps)), so the
// history is the clamped running sum rather than the exact sum of the last T batches.
type window struct {
	T, K, L int
	entries []obsEntry // oldest first

	refClamp   bool
	eps        float64
	sNum, sDen []float64 // reference mode: running sums (L×K, K)
}

func newWindow(T, K, L int) *window { return &window{T: T, K: K, L: L} }

func (w *window) setRefClamp(eps float64) {
	w.refClamp, w.eps = true, eps
	w.sNum = make([]float64, w.L*w.K)
	w.sDen = make([]float64, w.K)
}

// trimForStep drops entries so that, with the current batch added, at most T batches count.
func (w *window) trimForStep() {
	extra := len(w.entries) - (w.T - 1)
	if extra <= 0 {
		return
	}
	if w.refClamp {
		for _, e := range w.entries[:extra] {
			for k, v := range e.den {
				w.sDen[k] -= v
			}
			for i, y := range e.labels {
				dst := w.sNum[int(y)*w.K : (int(y)+1)*w.K]
				for k, v := range e.rows[i*w.K : (i+1)*w.K] {
					dst[k] -= float64(v)
				}
			}
		}
	}
	w.entries = append(w.entries[:0], w.entries[extra:]...)
}

// push appends the current batch's detached contribution.
func (w *window) push(e obsEntry) {
	w.entries = append(w.entries, e)
	if !w.refClamp {
		return
	}
	for k, v := range e.den {
		w.sDen[k] += v
	}
	for i, y := range e.labels {
		dst := w.sNum[int(y)*w.K : (int(y)+1)*w.K]
		for k, v := range e.rows[i*w.K : (i+1)*w.K] {
			dst[k] += float64(v)
		}
	}
	for i, v := range w.sNum {
		w.sNum[i] = max(v, w.eps)
	}
	for i, v := range w.sDen {
		w.sDen[i] = max(v, w.eps)
	}
}

// addDen adds the history denominator to dst (length K).
func (w *window) addDen(dst []float64) {
	for _, e := range w.entries {
		for k, v := range e.den {
			dst[k] += v
		}
	}
}

// addDenRange adds the history denominator for joint points [lo,hi) to dst.
func (w *window) addDenRange(dst []float64, lo, hi int) {
	if w.refClamp {
		for k := lo; k < hi; k++ {
			dst[k] += w.sDen[k]
		}
		return
	}
	for _, e := range w.entries {
		for k := lo; k < hi; k++ {
			dst[k] += e.den[k]
		}
	}
}

// addNumRange adds the history numerator of label y for joint points [lo,hi) to dst
// (a full row of length K).
func (w *window) addNumRange(y int32, dst []float64, lo, hi int) {
	if w.refClamp {
		row := w.sNum[int(y)*w.K : (int(y)+1)*w.K]
		for k := lo; k < hi; k++ {
			dst[k] += row[k]
		}
		return
	}
	for _, e := range w.entries {
		i, ok := e.index[y]
		if !ok {
			continue
		}
		row := e.rows[i*w.K : (i+1)*w.K]
		for k := lo; k < hi; k++ {
			dst[k] += float64(row[k])
		}
	}
}

// sums returns the dense numerator (L×K) and denominator (K) over all stored batches.
func (w *window) sums() (num []float32, den []float64) {
	num = make([]float32, w.L*w.K)
	den = make([]float64, w.K)
	if w.refClamp {
		for i, v := range w.sNum {
			num[i] = float32(v)
		}
		copy(den, w.sDen)
		return num, den
	}
	w.addDen(den)
	for _, e := range w.entries {
		for i, y := range e.labels {
			dst := num[int(y)*w.K : (int(y)+1)*w.K]
			for k, v := range e.rows[i*w.K : (i+1)*w.K] {
				dst[k] += v
			}
		}
	}
	return num, den
}

// condTable turns observation sums into P(y | joint) = clip(max(num,eps)/max(den,eps), 0, 1),
// laid out L×K.
func condTable(num []float32, den []float64, L, K int, eps float64) []float32 {
	q := make([]float32, L*K)
	for y := 0; y < L; y++ {
		for k := 0; k < K; k++ {
			r := max(float64(num[y*K+k]), eps) / max(den[k], eps)
			q[y*K+k] = float32(min(r, 1))
		}
	}
	return q
}
