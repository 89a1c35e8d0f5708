// Package llama is the bridge to llama.cpp and ggml: model loading, tokenization, chat templates,
// batched decoding, per-token log-probs, generation, LoRA adapters at inference, GGUF writing, a thin
// ggml tensor/graph API and the differentiable forward graphs used for training.
//
// It is the only package of the project that imports "C".
package llama
