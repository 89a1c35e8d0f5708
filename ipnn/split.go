package ipnn

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Split describes how output nodes are split into groups; group j has Sizes[j] states and
// its softmax is the distribution P(A^j | x) of the j-th random variable.
type Split struct {
	Sizes   []int
	offsets []int
}

// NewSplit validates sizes (each >= 2) and returns the split.
func NewSplit(sizes []int) (Split, error) {
	if len(sizes) == 0 {
		return Split{}, fmt.Errorf("split: need at least one group")
	}
	s := Split{Sizes: append([]int(nil), sizes...)}
	off := 0
	for j, m := range sizes {
		if m < 2 {
			return Split{}, fmt.Errorf("split: group %d has %d states, need >= 2", j+1, m)
		}
		s.offsets = append(s.offsets, off)
		off += m
	}
	return s, nil
}

// ParseSplit parses a comma-separated list of group sizes such as "2,2,5".
func ParseSplit(text string) (Split, error) {
	var sizes []int
	for i, f := range strings.Split(text, ",") {
		f = strings.TrimSpace(f)
		n, err := strconv.Atoi(f)
		if err != nil {
			return Split{}, fmt.Errorf("split %q: field %d (%q) is not an integer", text, i+1, f)
		}
		sizes = append(sizes, n)
	}
	s, err := NewSplit(sizes)
	if err != nil {
		return Split{}, fmt.Errorf("split %q: %w", text, err)
	}
	return s, nil
}

// String returns the split as "2,2,5".
func (s Split) String() string {
	parts := make([]string, len(s.Sizes))
	for i, m := range s.Sizes {
		parts[i] = strconv.Itoa(m)
	}
	return strings.Join(parts, ",")
}

// Nodes is the number of output nodes (sum of group sizes).
func (s Split) Nodes() int { return s.offsets[len(s.offsets)-1] + s.Sizes[len(s.Sizes)-1] }

// Offset returns the index of group j's first node.
func (s Split) Offset(j int) int { return s.offsets[j] }

// groupSoftmax writes per-group softmax probabilities of logits (batch×Nodes) into p.
func (s Split) groupSoftmax(logits Mat, p []float64) {
	n := s.Nodes()
	for b := 0; b < logits.Rows; b++ {
		row := logits.Row(b)
		pr := p[b*n : (b+1)*n]
		for j, m := range s.Sizes {
			o := s.offsets[j]
			mx := math.Inf(-1)
			for k := 0; k < m; k++ {
				mx = math.Max(mx, float64(row[o+k]))
			}
			sum := 0.0
			for k := 0; k < m; k++ {
				e := math.Exp(float64(row[o+k]) - mx)
				pr[o+k] = e
				sum += e
			}
			for k := 0; k < m; k++ {
				pr[o+k] /= sum
			}
		}
	}
}

// groupSoftmaxBackward turns dL/dp into dL/dlogits (float32) for per-group softmax.
func (s Split) groupSoftmaxBackward(p, dp []float64, dlogits Mat) {
	n := s.Nodes()
	for b := 0; b < dlogits.Rows; b++ {
		pr, dr, out := p[b*n:(b+1)*n], dp[b*n:(b+1)*n], dlogits.Row(b)
		for j, m := range s.Sizes {
			o := s.offsets[j]
			dot := 0.0
			for k := 0; k < m; k++ {
				dot += pr[o+k] * dr[o+k]
			}
			for k := 0; k < m; k++ {
				out[o+k] = float32(pr[o+k] * (dr[o+k] - dot))
			}
		}
	}
}
