package ipnn

import (
	"fmt"
	"math"
)

// indepTerm is the optional mutual-independence loss of the IPNN paper:
// KL(P(A^1..A^n) || prod_j P(A^j)) with both distributions estimated over the last T
// mini-batches (history detached, current batch differentiable), clamped below at eps.
type indepTerm struct {
	split  Split
	space  jointSpace
	T      int
	eps    float64
	hist   []indepEntry
	j, dj  []float64
	margin []float64 // Nodes-long vector holding the marginals at their group offsets
	works  []jointWork
}

type indepEntry struct {
	joint  []float64
	margin []float64
	count  int
}

func newIndepTerm(s Split, groups []int, T int, eps float64) (*indepTerm, error) {
	if len(groups) < 2 {
		return nil, fmt.Errorf("independence term needs >= 2 groups, got %v", groups)
	}
	seen := map[int]bool{}
	for _, g := range groups {
		if g < 0 || g >= len(s.Sizes) || seen[g] {
			return nil, fmt.Errorf(
				"independence term: group %d invalid or repeated (split has %d groups)",
				g,
				len(s.Sizes),
			)
		}
		seen[g] = true
	}
	sp := newJointSpace(s, groups)
	if sp.size > 1<<22 {
		return nil, fmt.Errorf("independence term: joint space of %d points is too large", sp.size)
	}
	return &indepTerm{split: s, space: sp, T: T, eps: eps, works: make([]jointWork, maxWorkers())}, nil
}

// step adds the term's gradient to dprobs and returns its value.
func (t *indepTerm) step(probs, dprobs []float64, B, n int, commit bool) float64 {
	K := t.space.size
	if extra := len(t.hist) - (t.T - 1); extra > 0 {
		t.hist = append(t.hist[:0], t.hist[extra:]...)
	}
	t.j = grow(t.j, B*K)
	t.dj = grow(t.dj, B*K)
	cur := indepEntry{joint: make([]float64, K), margin: make([]float64, n), count: B}
	for b := 0; b < B; b++ {
		t.space.forward(probs[b*n:(b+1)*n], t.j[b*K:(b+1)*K])
		for k, v := range t.j[b*K : (b+1)*K] {
			cur.joint[k] += v
		}
		for i, v := range probs[b*n : (b+1)*n] {
			cur.margin[i] += v
		}
	}
	joint := append([]float64(nil), cur.joint...)
	t.margin = grow(t.margin, n)
	copy(t.margin, cur.margin)
	count := B
	for _, e := range t.hist {
		for k, v := range e.joint {
			joint[k] += v
		}
		for i, v := range e.margin {
			t.margin[i] += v
		}
		count += e.count
	}
	inv := 1 / float64(count)
	for k := range joint {
		joint[k] *= inv
	}
	for i := range t.margin {
		t.margin[i] *= inv
	}
	prod := make([]float64, K)
	t.space.forward(t.margin, prod)
	loss := 0.0
	dJoint := make([]float64, K)
	dProd := make([]float64, K)
	for k := 0; k < K; k++ {
		pj, pm := math.Max(joint[k], t.eps), math.Max(prod[k], t.eps)
		loss += pj * math.Log(pj/pm)
		if joint[k] > t.eps {
			dJoint[k] = (math.Log(pj/pm) + 1) * inv
		}
		if prod[k] > t.eps {
			dProd[k] = -pj / pm
		}
	}
	// d/dmarginal (one vector), then spread over the batch: dmargin/dp_b = 1/count.
	dMargin := make([]float64, n)
	t.space.backward(t.margin, dProd, dMargin, &t.works[0])
	for b := 0; b < B; b++ {
		copy(t.dj[b*K:(b+1)*K], dJoint)
	}
	parallelRows(B, 8, func(worker, lo, hi int) {
		for b := lo; b < hi; b++ {
			t.space.backward(probs[b*n:(b+1)*n], t.dj[b*K:(b+1)*K], dprobs[b*n:(b+1)*n], &t.works[worker])
		}
	})
	for b := 0; b < B; b++ {
		row := dprobs[b*n : (b+1)*n]
		for _, g := range t.space.groups {
			o := t.split.Offset(g)
			for i := 0; i < t.split.Sizes[g]; i++ {
				row[o+i] += dMargin[o+i] * inv
			}
		}
	}
	if commit {
		t.hist = append(t.hist, cur)
	}
	return loss
}
