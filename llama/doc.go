// Package llama is the bridge to llama.cpp inference: model loading and validation, tokenization,
// chat templates, batched decoding, per-token log-probs, generation, LoRA adapters at inference,
// adapter files, merging adapters into models and quantization.
//
// It and package ggml (tensors, graphs and GGUF files, below it) are the only packages of the project
// that import "C". The training graphs are in package nn.
package llama
