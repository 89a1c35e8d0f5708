// Package align holds the pure-Go side of preference optimization: preference losses (BPO and the
// DPO family) with exact gradients with respect to per-sequence log-probs, LoRA parameters, the AdamW
// optimizer with learning-rate schedules and gradient clipping, trainer state checkpoints, preference
// data loading and per-step metrics with their plots.
//
// Nothing here talks to llama.cpp: the training graph (package nn) turns the per-sequence gradients
// computed here into gradients of the LoRA tensors, and package align/llamaalign connects the two
// (tokenization, reference log-probs through llama.cpp, the Policy over nn.TrainModel).
package align
