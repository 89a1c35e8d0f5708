package nn

import (
	"fmt"

	"github.com/bpo-dev/bpo/ggml"
)

// StepPlacement builds the graph of one training step over seqs, the forward pass and, with
// withGrad, the backward pass of the trainable tensors (LoRA or all weights), allocates it on the
// model's scheduler (its device, then the CPU) and reports where ggml placed each node: which ops the
// device runs and which stay on the CPU and why. Nothing is computed, so it works where a step with
// gradients is refused (a device, see runStepOnDevice).
func (tm *TrainModel) StepPlacement(seqs []TrainSeq, withGrad bool) (ggml.Placement, error) {
	p, err := tm.plan(seqs)
	if err != nil {
		return ggml.Placement{}, fmt.Errorf("step placement: %w", err)
	}
	sg, err := tm.buildStep(p, withGrad)
	if err != nil {
		return ggml.Placement{}, fmt.Errorf("step placement: %w", err)
	}
	defer sg.ctx.Free()
	if err := tm.sched.Alloc(sg.gr); err != nil {
		return ggml.Placement{}, fmt.Errorf("step placement: %w", err)
	}
	pl, err := tm.sched.Placement(sg.gr)
	if err != nil {
		return ggml.Placement{}, fmt.Errorf("step placement: %w", err)
	}
	return pl, nil
}
