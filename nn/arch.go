package nn

import (
	"fmt"
	"strings"

	"github.com/bpo-dev/bpo/ggml"
)

// architecture is what the training graph and the random-model writer know about one GGUF
// general.architecture. Each has its own file (llama.go, qwen2.go); adding one means adding a file
// and a line to architectures. The graph builders read these fields and never compare names.
type architecture struct {
	// name is general.architecture, also the prefix of its hyper-parameter keys.
	name string
	// ropeMode is ggml's rope mode: 0 rotates adjacent pairs (Llama), 2 the halves (NeoX).
	ropeMode int
	// qkvBias means the q, k and v projections have biases (blk.N.attn_{q,k,v}.bias).
	qkvBias bool
	// random lists the recipes `bpo model random` offers for this architecture.
	random []randomRecipe
}

// randomRecipe is a named recipe for a random-weight model of an architecture: the metadata values a
// real model of that family carries.
type randomRecipe struct {
	// name is RandomModelSpec.Arch.
	name     string
	eps      float32
	ropeBase float32
	// vocabSize writes <arch>.vocab_size.
	vocabSize bool
	// llama31Rope adds rope_freqs.weight with Llama-3.1's frequency factors.
	llama31Rope bool
}

// architectures are the architectures the training graph supports, in the order error messages
// list them.
var architectures = []*architecture{&llamaArch, &qwen2Arch}

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

// joinWords writes "a", "a and b", "a, b and c" (with conj for "and").
func joinWords(words []string, conj string) string {
	if len(words) <= 1 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " " + conj + " " + words[len(words)-1]
}
