package nn

import "math"

// gemma3Arch is Gemma 3 as the pinned llama.cpp defines it (src/models/gemma3.cpp,
// src/llama-model.cpp): token embeddings scaled by sqrt(embedding); per-head Q/K RMS norms before NeoX
// rope; RMS norms after attention and after the FFN as well as before; a GELU(tanh)-gated FFN. With
// attention.sliding_window > 0, layers l % 6 < 5 attend to the last sliding_window positions only and
// rope with base 10000 and scale 1; the others attend to everything with rope.freq_base and
// 1/rope.scaling.factor. Norm weights are used as stored (the converters fold HF Gemma's 1 + w into
// the file). llama.cpp computes GELU through an F16 table; the training graph uses the exact tanh
// form (differentiable), which moves log-probs by about 1e-3 (see TestTrainGraphMatchesLlamaCpp).
var gemma3Arch = architecture{
	name:           "gemma3",
	ropeMode:       2,
	qkNorm:         true,
	postNorms:      true,
	embedScale:     true,
	ffn:            gegluTanh,
	window:         &slidingWindow{pattern: 6, ropeBase: 10000, ropeScale: 1},
	attentionScale: gemma3AttentionScale,
	random: []randomRecipe{
		{
			name: "gemma3", summary: "QK-norm, post-norms, GELU, sliding-window layers",
			eps: 1e-6, ropeBase: 1000000, keyLength: true, slidingWindow: 512,
		},
	},
}

// gemma3AttentionScale is llama.cpp's f_attention_scale for gemma3: 1/sqrt(embedding/heads) for the
// 62-layer model (27B), 1/sqrt(key_length) otherwise.
func gemma3AttentionScale(hp hyper) float64 {
	if hp.nLayer == 62 {
		return 1 / math.Sqrt(float64(hp.nEmbd/hp.nHead))
	}
	return 1 / math.Sqrt(float64(hp.headDim))
}
