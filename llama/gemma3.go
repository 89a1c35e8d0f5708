package llama

// Gemma 3 as the pinned llama.cpp defines it (src/models/gemma3.cpp, src/llama-model.cpp): token
// embeddings scaled by sqrt(n_embd); per-head Q/K RMS norms before rope; RMS norms after attention
// and after the FFN (attn_post_norm, ffn_post_norm) as well as before; GELU(tanh)-gated FFN; with
// attention.sliding_window set, layers il%6 != 5 attend to the last sliding_window positions only and
// rope with base 10000, the others attend causally to everything with rope.freq_base. The GGUF norm
// weights are used as stored (HF's Gemma (1 + w) is folded in by the converter), so random norms are
// drawn around 1 like the other architectures'.

// gemma3DefaultWindow is the sliding window of Gemma 3 1B.
const gemma3DefaultWindow = 512

// writeGemma3KV writes the gemma3.* hyperparameters that are not common to all random models.
func writeGemma3KV(w *GGUFWriter, spec RandomModelSpec) {
	window := spec.SlidingWindow
	if window == 0 {
		window = gemma3DefaultWindow
	}
	w.SetFloat32("gemma3.attention.layer_norm_rms_epsilon", 1e-6)
	w.SetFloat32("gemma3.rope.freq_base", 1000000)
	w.SetUint32("gemma3.attention.key_length", uint32(spec.headDim()))
	w.SetUint32("gemma3.attention.value_length", uint32(spec.headDim()))
	w.SetUint32("gemma3.attention.sliding_window", uint32(window))
}

// gemma3LayerTensors are the per-layer tensors gemma3 adds to the llama ones: the per-head Q and K
// norms and the norms after attention and after the FFN.
func gemma3LayerTensors(spec RandomModelSpec, around func(center, spread float32) func([]float32)) []randomTensor {
	hd, e := int64(spec.headDim()), int64(spec.Embedding)
	return []randomTensor{
		{"attn_q_norm.weight", []int64{hd}, around(1, 0.1)},
		{"attn_k_norm.weight", []int64{hd}, around(1, 0.1)},
		{"post_attention_norm.weight", []int64{e}, around(1, 0.1)},
		{"post_ffw_norm.weight", []int64{e}, around(1, 0.1)},
	}
}

// checkGemma3Keys checks the gemma3-only keys llama.cpp reads: the sliding window (a count of
// positions) and the final logit softcapping (a divisor when not 0).
func checkGemma3Keys(f *GGUFFile) error {
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
