package llama

import "github.com/bpo-dev/bpo/ggml"

// Gemma 3 as the pinned llama.cpp defines it (src/models/gemma3.cpp, src/llama-model.cpp): token
// embeddings scaled by sqrt(n_embd); per-head Q/K RMS norms before rope; RMS norms after attention
// and after the FFN (attn_post_norm, ffn_post_norm) as well as before; GELU(tanh)-gated FFN; with
// attention.sliding_window set, layers il%6 != 5 attend to the last sliding_window positions only and
// rope with base 10000, the others attend causally to everything with rope.freq_base. The GGUF norm
// weights are used as stored (HF's Gemma (1 + w) is folded in by the converter), so random norms are
// drawn around 1 like the other architectures'.

// checkGemma3Keys checks the gemma3-only keys llama.cpp reads: the sliding window (a count of
// positions) and the final logit softcapping (a divisor when not 0).
func checkGemma3Keys(f *ggml.GGUFFile) error {
	// llama.cpp's gemma3 makes every sixth layer (5, 11, ...) attend globally and the others through a
	// sliding window; with fewer than 6 layers its KV cache has no global part and decoding aborts
	// (GGML_ASSERT(buffer)). Real Gemma 3 models have 26 layers or more.
	if n, _ := f.Uint("gemma3.block_count"); n < 6 {
		return kvError("gemma3.block_count", f.KV["gemma3.block_count"], "at least 6 layers (llama.cpp's gemma3 needs one global-attention layer, the sixth)")
	}
	if _, err := checkUintKey(f, "gemma3.attention.sliding_window", false, 0, maxContext); err != nil {
		return err
	}
	if v, ok := f.KV["gemma3.final_logit_softcapping"]; ok {
		if x, isF := v.(float32); !isF || x < 0 {
			return kvError("gemma3.final_logit_softcapping", v, "a float32 >= 0 (0: no softcapping)")
		}
	}
	return nil
}
