package nn

// qwen3Arch is Qwen3 as the pinned llama.cpp defines it (src/models/qwen3.cpp, src/llama-model.cpp):
// Qwen2 without the QKV biases, plus an RMS norm over each head of Q and K (attn_q_norm, attn_k_norm)
// before rope; NeoX rope. The head size is attention.key_length, which real models set apart from
// embedding/heads (Qwen3-0.6B: 1024/16 = 64, heads of 128).
var qwen3Arch = architecture{
	name:     "qwen3",
	ropeMode: 2,
	qkNorm:   true,
	random: []randomRecipe{
		{name: "qwen3", summary: "per-head QK-norm", eps: 1e-6, ropeBase: 1000000, keyLength: true},
	},
}
