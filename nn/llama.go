package nn

// llamaArch is Llama (2 and 3): RMS norm, rope on adjacent pairs, SwiGLU, no biases; Llama-3.1's
// rope frequency factors come as the optional rope_freqs.weight tensor.
var llamaArch = architecture{
	name:     "llama",
	ropeMode: 0,
	random: []randomRecipe{
		{name: "llama", summary: "Llama-2 style", eps: 1e-5, ropeBase: 10000},
		{name: "llama3", summary: "Llama-3.1 rope scaling", eps: 1e-5, ropeBase: 500000, vocabSize: true, llama31Rope: true},
	},
}
