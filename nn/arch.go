package nn

import (
	"fmt"
	"strings"

	"github.com/bpo-dev/bpo/ggml"
)

// architecture is what the training graph and the random-model writer know about one GGUF
// general.architecture. Each has its own file (llama.go, qwen2.go, ...); adding one means adding a
// file and a line to architectures. The graph builders and the random-model writer read these typed
// choices (which blocks, which norms, which activation, which layers slide) and never compare names.
type architecture struct {
	// name is general.architecture, also the prefix of its hyper-parameter keys.
	name string
	// ropeMode is ggml's rope mode: 0 rotates adjacent pairs (Llama), 2 the halves (NeoX).
	ropeMode int
	// qkvBias means the q, k and v projections have biases (blk.N.attn_{q,k,v}.bias).
	qkvBias bool
	// qkNorm RMS-normalises each head of Q and K before rope, times blk.N.attn_q_norm.weight and
	// attn_k_norm.weight ([head size], frozen).
	qkNorm bool
	// postNorms RMS-normalises the attention output and the FFN output before each residual add, times
	// blk.N.post_attention_norm.weight and post_ffw_norm.weight ([embedding], frozen).
	postNorms bool
	// embedScale multiplies the token embeddings by sqrt(embedding) (float32) before the first block.
	embedScale bool
	// ffn is the gated activation of the feed-forward block.
	ffn gatedActivation
	// window, when not nil, is how the architecture uses <arch>.attention.sliding_window.
	window *slidingWindow
	// attentionScale, when not nil, replaces the softmax scale 1/sqrt(head size).
	attentionScale func(hp hyper) float64
	// random lists the recipes `bpo model random` offers for this architecture.
	random []randomRecipe
}

// gatedActivation is the activation of a gated feed-forward block, act(W_gate x) * (W_up x).
type gatedActivation int

const (
	// swiGLU is silu (Llama, Qwen).
	swiGLU gatedActivation = iota
	// gegluTanh is GELU in its tanh form (Gemma), computed exactly (see ggml.GegluTanh).
	gegluTanh
)

// slidingWindow describes the layers that attend to the last <arch>.attention.sliding_window positions
// only (when that key is set and > 0; otherwise every layer attends causally to everything).
type slidingWindow struct {
	// pattern: layer l uses the window when l % pattern < pattern-1 (llama.cpp's set_swa_pattern).
	pattern int
	// ropeBase and ropeScale replace rope.freq_base and 1/rope.scaling.factor on window layers.
	ropeBase, ropeScale float32
}

// fullParamsUnsupported names the first block feature the full-parameter graph (traingraph.go, ggml's
// automatic differentiation) does not build, or is "" when it builds the architecture.
func (a *architecture) fullParamsUnsupported() string {
	switch {
	case a.qkNorm:
		return "per-head Q/K norms"
	case a.postNorms:
		return "post-norms"
	case a.embedScale:
		return "embedding scaling"
	case a.ffn != swiGLU:
		return "a GELU-gated FFN"
	case a.window != nil:
		return "sliding-window layers"
	case a.attentionScale != nil:
		return "its attention scale"
	}
	return ""
}

// randomRecipe is a named recipe for a random-weight model of an architecture: the metadata values a
// real model of that family carries.
type randomRecipe struct {
	// name is RandomModelSpec.Arch.
	name string
	// summary says in a few words what the recipe's models have, for `bpo model random --help`.
	summary  string
	eps      float32
	ropeBase float32
	// vocabSize writes <arch>.vocab_size.
	vocabSize bool
	// llama31Rope adds rope_freqs.weight with Llama-3.1's frequency factors.
	llama31Rope bool
	// keyLength writes attention.key_length and value_length (the head size), and lets
	// RandomModelSpec.HeadDim differ from embedding/heads, as real models of the family do.
	keyLength bool
	// slidingWindow is the default attention.sliding_window of an architecture with a window.
	slidingWindow int
}

// architectures are the architectures the training graph supports, in the order error messages
// list them.
var architectures = []*architecture{
	&llamaArch,
	&qwen2Arch,
	&qwen3Arch,
	&gemma3Arch,
}

// archByName returns the architecture of general.architecture name.
func archByName(name string) (*architecture, error) {
	var names []string
	for _, a := range architectures {
		if a.name == name {
			return a, nil
		}
		names = append(names, a.name)
	}
	return nil, fmt.Errorf("%w: training graphs exist for %s, not %q", ggml.ErrUnsupportedArch, joinWords(names, "and"), name)
}

// randomRecipeByName returns the random-model recipe name and its architecture.
func randomRecipeByName(name string) (*architecture, randomRecipe, error) {
	var names []string
	for _, a := range architectures {
		for _, r := range a.random {
			if r.name == name {
				return a, r, nil
			}
			names = append(names, r.name)
		}
	}
	return nil, randomRecipe{}, fmt.Errorf("%w: random model arch %q, want %s", ggml.ErrUnsupportedArch, name, joinWords(names, "or"))
}

// RandomModelArchs lists the random-model recipes with a few words on each, for help texts:
// "llama (Llama-2 style), ... or qwen2 (QKV bias)".
func RandomModelArchs() string {
	var items []string
	for _, a := range architectures {
		for _, r := range a.random {
			items = append(items, r.name+" ("+r.summary+")")
		}
	}
	return joinWords(items, "or")
}

// joinWords writes "a", "a and b", "a, b and c" (with conj for "and").
func joinWords(words []string, conj string) string {
	if len(words) <= 1 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " " + conj + " " + words[len(words)-1]
}
