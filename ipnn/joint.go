package ipnn

// jointSpace is a sub-joint sample space: the Cartesian product of the states of some
// split groups. Joint index k enumerates the product row-major, last group fastest.
type jointSpace struct {
	groups  []int // split group indices
	sizes   []int // their state counts
	offsets []int // node offsets of the groups
	size    int   // product of sizes
}

func newJointSpace(s Split, groups []int) jointSpace {
	js := jointSpace{groups: append([]int(nil), groups...), size: 1}
	for _, g := range groups {
		js.sizes = append(js.sizes, s.Sizes[g])
		js.offsets = append(js.offsets, s.Offset(g))
		js.size *= s.Sizes[g]
	}
	return js
}

// jointWork holds scratch buffers for one goroutine.
type jointWork struct {
	a, b []float64
	own  [][]float64 // owned scratch for the suffix contractions
	suf  [][]float64 // views: own[t] for t < n-1, the caller's dJ for t = n-1
}

// forward writes P(a^{g1},...,a^{gn} | x) = prod_j P(a^{gj} | x) for one sample into out
// (length js.size) from the sample's group probabilities p (length Split.Nodes()).
func (js *jointSpace) forward(p []float64, out []float64) {
	out[0] = 1
	n := 1
	for t, m := range js.sizes {
		pj := p[js.offsets[t] : js.offsets[t]+m]
		// expand in place from the back so reads precede writes.
		for k := n - 1; k >= 0; k-- {
			v := out[k]
			base := k * m
			for s := m - 1; s >= 0; s-- {
				out[base+s] = v * pj[s]
			}
		}
		n *= m
	}
}

// backward adds dL/dp to dp given dL/dJ (dj, length js.size) and the sample's group
// probabilities p. It contracts dJ with every other group's distribution, exactly and
// without dividing by probabilities, in O(size) work.
func (js *jointSpace) backward(p, dj, dp []float64, w *jointWork) {
	n := len(js.sizes)
	for len(w.own) < n {
		w.own = append(w.own, nil)
	}
	if cap(w.suf) < n {
		w.suf = make([][]float64, n)
	}
	w.suf = w.suf[:n]
	// suf[t] = dJ contracted over groups t+1..n-1: a tensor over groups 0..t.
	w.suf[n-1] = dj
	sz := js.size
	for t := n - 1; t > 0; t-- {
		m := js.sizes[t]
		pj := p[js.offsets[t] : js.offsets[t]+m]
		src := w.suf[t]
		sz /= m
		w.own[t-1] = grow(w.own[t-1], sz)
		dst := w.own[t-1]
		for k := 0; k < sz; k++ {
			row := src[k*m : (k+1)*m]
			s := 0.0
			for i, v := range row {
				s += v * pj[i]
			}
			dst[k] = s
		}
		w.suf[t-1] = dst
	}
	// For each t contract suf[t] over groups 0..t-1 (leading axes).
	lead := 1
	for t := 0; t < n; t++ {
		m := js.sizes[t]
		cur := w.suf[t] // shape lead×m
		// contract leading axes one by one.
		size := lead * m
		buf := cur[:size]
		for a := 0; a < t; a++ {
			ma := js.sizes[a]
			pa := p[js.offsets[a] : js.offsets[a]+ma]
			rest := size / ma
			var dst []float64
			if a%2 == 0 {
				w.a = grow(w.a, rest)
				dst = w.a
			} else {
				w.b = grow(w.b, rest)
				dst = w.b
			}
			clear(dst)
			for i := 0; i < ma; i++ {
				pi := pa[i]
				src := buf[i*rest : (i+1)*rest]
				for r, v := range src {
					dst[r] += pi * v
				}
			}
			buf = dst
			size = rest
		}
		o := js.offsets[t]
		for i := 0; i < m; i++ {
			dp[o+i] += buf[i]
		}
		lead *= m
	}
}

func grow(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n)
	}
	return b[:n]
}
