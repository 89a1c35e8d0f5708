package align

import (
	"errors"
	"fmt"
)

// GradAccumulator averages gradients over micro-batches (gradient accumulation). Each micro-batch
// gradient is the gradient of that micro-batch's mean loss; Average weights them by their pair
// counts, giving the gradient of the mean loss over all accumulated pairs.
type GradAccumulator struct {
	shapes []ParamShape
	sum    [][]float32
	pairs  int
	micro  int
}

// NewGradAccumulator returns an empty accumulator for the given tensors.
func NewGradAccumulator(shapes []ParamShape) (*GradAccumulator, error) {
	if err := checkShapes(shapes); err != nil {
		return nil, fmt.Errorf("grad accumulator: %w", err)
	}
	a := &GradAccumulator{shapes: append([]ParamShape(nil), shapes...), sum: make([][]float32, len(shapes))}
	for i, s := range shapes {
		a.sum[i] = make([]float32, s.Size)
	}
	return a, nil
}

// Add accumulates the gradient of a micro-batch of `pairs` pairs.
func (a *GradAccumulator) Add(grads [][]float32, pairs int) error {
	if pairs <= 0 {
		return fmt.Errorf("grad accumulator: pairs must be > 0, got %d", pairs)
	}
	if len(grads) != len(a.shapes) {
		return fmt.Errorf("grad accumulator: got %d tensors, want %d", len(grads), len(a.shapes))
	}
	for i, s := range a.shapes {
		if len(grads[i]) != s.Size {
			return fmt.Errorf("grad accumulator: tensor %q has %d values, want %d", s.Name, len(grads[i]), s.Size)
		}
	}
	w := float32(pairs)
	for i, g := range grads {
		dst := a.sum[i]
		for j, x := range g {
			dst[j] += w * x
		}
	}
	a.pairs += pairs
	a.micro++
	return nil
}

// Pairs returns the number of pairs accumulated since the last Reset.
func (a *GradAccumulator) Pairs() int { return a.pairs }

// MicroBatches returns the number of Add calls since the last Reset.
func (a *GradAccumulator) MicroBatches() int { return a.micro }

// Average writes the pair-weighted mean gradient into dst (same shapes) and returns it; a nil dst
// allocates.
func (a *GradAccumulator) Average(dst [][]float32) ([][]float32, error) {
	if a.pairs == 0 {
		return nil, errors.New("grad accumulator: nothing accumulated")
	}
	if dst == nil {
		dst = make([][]float32, len(a.shapes))
		for i, s := range a.shapes {
			dst[i] = make([]float32, s.Size)
		}
	}
	if len(dst) != len(a.shapes) {
		return nil, fmt.Errorf("grad accumulator: destination has %d tensors, want %d", len(dst), len(a.shapes))
	}
	inv := 1 / float32(a.pairs)
	for i, s := range a.sum {
		if len(dst[i]) != len(s) {
			return nil, fmt.Errorf(
				"grad accumulator: destination tensor %q has %d values, want %d",
				a.shapes[i].Name,
				len(dst[i]),
				len(s),
			)
		}
		for j, x := range s {
			dst[i][j] = x * inv
		}
	}
	return dst, nil
}

// Reset clears the accumulated gradients.
func (a *GradAccumulator) Reset() {
	for _, s := range a.sum {
		clear(s)
	}
	a.pairs, a.micro = 0, 0
}
