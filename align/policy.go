package align

import "context"

// TokenizedPair is a preference pair ready for the model: the prompt (chat template applied, BOS
// included) and the two completions (EOS appended), as token ids.
type TokenizedPair struct {
	Line     int // source line, for messages
	Prompt   []int32
	Chosen   []int32
	Rejected []int32
}

// RefLogps are the reference model's log-prob sums of a pair's completions.
type RefLogps struct {
	Chosen   float64
	Rejected float64
	// ChosenShared and RejectedShared sum the first min(|y_w|, |y_l|) tokens of each completion; only
	// losses with length desensitization (LD-DPO) read them.
	ChosenShared, RejectedShared float64
}

// LossFunc turns the policy log-prob sums of a batch into per-pair gradient coefficients
// (dL/dlogp) and the loss; the trainer supplies it to Policy.ForwardBackward.
type LossFunc func(chosen, rejected []float64) (loss float64, grads []PairGrad, err error)

// Policy is the trainable model as the trainer sees it: the ggml training graph of package llama
// with LoRA tensors, or any model with exact log-prob gradients.
type Policy interface {
	// ParamShapes and Params list the trainable tensors, in a fixed order; the optimizer updates the
	// Params slices in place, so the next forward must read them.
	ParamShapes() []ParamShape
	Params() [][]float32
	// Forward returns the log-prob sums of each pair's chosen and rejected completion given its prompt.
	Forward(ctx context.Context, batch []TokenizedPair) (chosen, rejected []float64, err error)
	// ForwardBackward computes the log-prob sums, calls loss with them, and adds
	// Σ_pairs (g.Chosen·∇logp_chosen + g.Rejected·∇logp_rejected) into grads (ParamShapes order).
	ForwardBackward(ctx context.Context, batch []TokenizedPair, loss LossFunc, grads [][]float32) error
}

// AdapterFileName is the adapter's file name inside a checkpoint or run directory.
const AdapterFileName = "adapter.gguf"

// TokenSeq is a prompt and one completion, as token ids (for per-token objectives such as GRPO).
type TokenSeq struct {
	Prompt     []int32
	Completion []int32
}
