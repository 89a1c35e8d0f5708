package llama

import (
	"fmt"

	"github.com/bpo-dev/bpo/ggml"
)

// Qwen3 as the pinned llama.cpp defines it (src/models/qwen3.cpp, src/llama-model.cpp): Qwen2 without
// the QKV biases, plus an RMS norm over each head of Q and K (attn_q_norm / attn_k_norm, [head_dim])
// before rope; NeoX rope; attention.key_length may differ from embedding/heads.

// checkQwen3Keys checks what llm_build_qwen3 asserts (GGML_ASSERT aborts the process): one head size
// for K and V, rotated in full.
func checkQwen3Keys(f *ggml.GGUFFile) error {
	embd, _ := f.Uint("qwen3.embedding_length")
	heads, _ := f.Uint("qwen3.attention.head_count")
	if heads == 0 {
		return nil // a per-layer head_count array: llama.cpp reads element 0, checked elsewhere
	}
	keyLen, ok := f.Uint("qwen3.attention.key_length")
	if !ok {
		keyLen = embd / heads
	}
	for _, k := range []string{"qwen3.attention.value_length", "qwen3.rope.dimension_count"} {
		if v, ok := f.Uint(k); ok && v != keyLen {
			return kvError(k, f.KV[k], fmt.Sprintf("the head size %d (llama.cpp's qwen3 graph requires it)", keyLen))
		}
	}
	if _, ok := f.Uint("qwen3.attention.value_length"); !ok && embd/heads != keyLen {
		return kvError("qwen3.attention.value_length", nil, fmt.Sprintf("the key length %d (the default, embedding/heads, is %d)", keyLen, embd/heads))
	}
	return nil
}
