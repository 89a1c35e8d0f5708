package nn

// qwen2Arch is Qwen2 (and Qwen2.5): Llama's blocks with biases on the q, k and v projections and
// NeoX rope.
var qwen2Arch = architecture{
	name:     "qwen2",
	ropeMode: 2,
	qkvBias:  true,
	random: []randomRecipe{
		{name: "qwen2", summary: "QKV bias", eps: 1e-6, ropeBase: 1000000},
	},
}
