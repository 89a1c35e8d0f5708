package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/bpo-dev/bpo/ggml"
)

// RandomModelSpec describes a small model with random weights and a real tokenizer, for tests and
// benchmarks of architectures we have no small real weights for.
type RandomModelSpec struct {
	// Arch names a recipe of an architecture file (llama.go, qwen2.go, ...), such as "llama" (Llama-2
	// style), "llama3" (llama architecture with Llama-3.1 rope frequency factors) or "qwen2" (QKV bias).
	Arch string
	// VocabFrom is a GGUF file whose tokenizer.* metadata is copied (e.g. ggml-vocab-qwen2.gguf).
	VocabFrom string
	// Vocab, when set instead of VocabFrom, is a tokenizer made by the caller.
	Vocab     *VocabSpec
	Layers    int
	Embedding int
	// FeedForward is the FFN hidden size.
	FeedForward int
	Heads       int
	HeadsKV     int
	// HeadDim is the size of one attention head (attention.key_length); 0 means Embedding/Heads. Only
	// recipes whose real models write key_length may set another size.
	HeadDim int
	// SlidingWindow is attention.sliding_window of an architecture with sliding-window layers
	// (0: the recipe's default).
	SlidingWindow int
	// ContextLength is the training context written to the metadata (default 2048).
	ContextLength int
	// Type is the type of the 2-D weights (F32, F16, Q8_0, Q4_0, Q4_K, Q6_K...). Rows whose length is not
	// a multiple of the type's block size fall back to Q8_0 (as llama.cpp's quantizer falls back).
	Type ggml.GGMLType
	// TiedOutput omits output.weight: the output projection reuses token_embd.weight.
	TiedOutput bool
	Seed       uint64
	// Name is general.name (default "bpo-random-<arch>").
	Name string
}

// Validate checks the spec before anything is written.
func (s RandomModelSpec) Validate() error {
	if _, _, err := randomRecipeByName(s.Arch); err != nil {
		return err
	}
	if s.Layers <= 0 || s.Embedding <= 0 || s.FeedForward <= 0 || s.Heads <= 0 || s.HeadsKV <= 0 {
		return fmt.Errorf("%w: layers, embedding, feed_forward, heads and heads_kv must be > 0 (got %d, %d, %d, %d, %d)", ggml.ErrInvalidArgument, s.Layers, s.Embedding, s.FeedForward, s.Heads, s.HeadsKV)
	}
	a, recipe, _ := randomRecipeByName(s.Arch)
	if s.HeadDim < 0 || s.SlidingWindow < 0 {
		return fmt.Errorf("%w: head_dim %d and sliding_window %d must be >= 0",
			ggml.ErrInvalidArgument, s.HeadDim, s.SlidingWindow)
	}
	if s.HeadDim != 0 && !recipe.keyLength {
		return fmt.Errorf("%w: head_dim is not for %s (whose head size is embedding/heads)",
			ggml.ErrInvalidArgument, s.Arch)
	}
	if s.SlidingWindow != 0 && a.window == nil {
		return fmt.Errorf("%w: sliding_window is not for %s (it has no sliding-window layers)",
			ggml.ErrInvalidArgument, s.Arch)
	}
	if a.window != nil && s.Layers < a.window.pattern {
		return fmt.Errorf("%w: %s needs at least %d layers (every %dth layer attends globally; llama.cpp aborts "+
			"on a model without one), got %d", ggml.ErrInvalidArgument, s.Arch, a.window.pattern, a.window.pattern, s.Layers)
	}
	if s.HeadDim == 0 && s.Embedding%s.Heads != 0 {
		return fmt.Errorf("%w: embedding %d is not a multiple of heads %d", ggml.ErrInvalidArgument, s.Embedding, s.Heads)
	}
	if s.Heads%s.HeadsKV != 0 {
		return fmt.Errorf("%w: heads %d is not a multiple of heads_kv %d", ggml.ErrInvalidArgument, s.Heads, s.HeadsKV)
	}
	if s.headDim()%2 != 0 {
		return fmt.Errorf("%w: head size %d must be even for rope", ggml.ErrInvalidArgument, s.headDim())
	}
	if (s.VocabFrom == "") == (s.Vocab == nil) {
		return fmt.Errorf("%w: set exactly one of VocabFrom (a GGUF file with a tokenizer) and Vocab", ggml.ErrInvalidArgument)
	}
	if s.Vocab != nil {
		return s.Vocab.Validate()
	}
	return nil
}

// headDim is the size of one attention head.
func (s RandomModelSpec) headDim() int {
	if s.HeadDim != 0 {
		return s.HeadDim
	}
	return s.Embedding / s.Heads
}

// WriteRandomModel writes a random-weight GGUF model described by spec to path (atomically).
func WriteRandomModel(path string, spec RandomModelSpec) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("random model: %w", err)
	}
	var nVocab int64
	if spec.Vocab != nil {
		nVocab = int64(len(spec.Vocab.Tokens))
	} else {
		vocab, err := ggml.ReadGGUF(spec.VocabFrom)
		if err != nil {
			return fmt.Errorf("random model: vocabulary: %w", err)
		}
		tokens, ok := vocab.KV["tokenizer.ggml.tokens"].([]string)
		if !ok || len(tokens) == 0 {
			return fmt.Errorf("random model: %s has no tokenizer.ggml.tokens", spec.VocabFrom)
		}
		nVocab = int64(len(tokens))
	}
	if spec.ContextLength == 0 {
		spec.ContextLength = 2048
	}
	a, recipe, err := randomRecipeByName(spec.Arch)
	if err != nil {
		return fmt.Errorf("random model: %w", err)
	}
	arch := a.name
	if spec.Name == "" {
		spec.Name = "bpo-random-" + spec.Arch
	}
	w := ggml.NewGGUFWriter()
	defer w.Close()
	w.SetString("general.architecture", arch)
	w.SetString("general.name", spec.Name)
	w.SetUint32("general.file_type", ggml.FileTypeFor(spec.Type))
	w.SetUint32(arch+".context_length", uint32(spec.ContextLength))
	w.SetUint32(arch+".embedding_length", uint32(spec.Embedding))
	w.SetUint32(arch+".block_count", uint32(spec.Layers))
	w.SetUint32(arch+".feed_forward_length", uint32(spec.FeedForward))
	w.SetUint32(arch+".attention.head_count", uint32(spec.Heads))
	w.SetUint32(arch+".attention.head_count_kv", uint32(spec.HeadsKV))
	headDim := spec.headDim()
	w.SetUint32(arch+".rope.dimension_count", uint32(headDim))
	if recipe.keyLength {
		w.SetUint32(arch+".attention.key_length", uint32(headDim))
		w.SetUint32(arch+".attention.value_length", uint32(headDim))
	}
	if a.window != nil {
		window := spec.SlidingWindow
		if window == 0 {
			window = recipe.slidingWindow
		}
		w.SetUint32(arch+".attention.sliding_window", uint32(window))
	}
	w.SetFloat32(arch+".attention.layer_norm_rms_epsilon", recipe.eps)
	w.SetFloat32(arch+".rope.freq_base", recipe.ropeBase)
	if recipe.vocabSize {
		w.SetUint32(arch+".vocab_size", uint32(nVocab))
	}
	if spec.Vocab != nil {
		spec.Vocab.write(w)
	} else if err := w.CopyKV(spec.VocabFrom, "tokenizer."); err != nil {
		return fmt.Errorf("random model: %w", err)
	}

	rng := rand.New(rand.NewPCG(spec.Seed, 0x5eed))
	add := func(name string, ne []int64, typ ggml.GGMLType, fill func([]float32)) error {
		n := int64(1)
		for _, d := range ne {
			n *= d
		}
		v := make([]float32, n)
		fill(v)
		if len(ne) == 1 {
			typ = ggml.TypeF32
		} else if ne[0]%typ.BlockSize() != 0 {
			typ = ggml.TypeQ8_0
			if ne[0]%typ.BlockSize() != 0 {
				typ = ggml.TypeF32
			}
		}
		return w.AddFloat32Tensor(name, typ, ne, v)
	}
	uniform := func(std float64) func([]float32) {
		a := float32(std * math.Sqrt(3))
		return func(v []float32) {
			for i := range v {
				v[i] = (2*rng.Float32() - 1) * a
			}
		}
	}
	around := func(center, spread float32) func([]float32) {
		return func(v []float32) {
			for i := range v {
				v[i] = center + (2*rng.Float32()-1)*spread
			}
		}
	}
	e, ff := int64(spec.Embedding), int64(spec.FeedForward)
	hd := int64(headDim)
	qDim, kvDim := int64(spec.Heads)*hd, int64(spec.HeadsKV)*hd
	if err := add("token_embd.weight", []int64{e, nVocab}, spec.Type, uniform(1)); err != nil {
		return fmt.Errorf("random model: %w", err)
	}
	if err := add("output_norm.weight", []int64{e}, ggml.TypeF32, around(1, 0.1)); err != nil {
		return fmt.Errorf("random model: %w", err)
	}
	if !spec.TiedOutput {
		if err := add("output.weight", []int64{e, nVocab}, spec.Type, uniform(1/math.Sqrt(float64(e)))); err != nil {
			return fmt.Errorf("random model: %w", err)
		}
	}
	if recipe.llama31Rope {
		// Llama-3.1 rope scaling: factor 8, low/high frequency factors 1 and 4, original context 8192.
		if err := add("rope_freqs.weight", []int64{int64(headDim / 2)}, ggml.TypeF32, func(v []float32) { llama31FreqFactors(v, float64(recipe.ropeBase), headDim) }); err != nil {
			return fmt.Errorf("random model: %w", err)
		}
	}
	for l := 0; l < spec.Layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		tensors := []randomTensor{
			{"attn_norm.weight", []int64{e}, around(1, 0.1)},
			{"attn_q.weight", []int64{e, qDim}, uniform(1 / math.Sqrt(float64(e)))},
			{"attn_k.weight", []int64{e, kvDim}, uniform(1 / math.Sqrt(float64(e)))},
			{"attn_v.weight", []int64{e, kvDim}, uniform(1 / math.Sqrt(float64(e)))},
			{"attn_output.weight", []int64{qDim, e}, uniform(1 / math.Sqrt(float64(qDim)))},
			{"ffn_norm.weight", []int64{e}, around(1, 0.1)},
			{"ffn_gate.weight", []int64{e, ff}, uniform(1 / math.Sqrt(float64(e)))},
			{"ffn_up.weight", []int64{e, ff}, uniform(1 / math.Sqrt(float64(e)))},
			{"ffn_down.weight", []int64{ff, e}, uniform(1 / math.Sqrt(float64(ff)))},
		}
		if a.qkvBias {
			tensors = append(tensors,
				randomTensor{"attn_q.bias", []int64{qDim}, uniform(0.1)},
				randomTensor{"attn_k.bias", []int64{kvDim}, uniform(0.1)},
				randomTensor{"attn_v.bias", []int64{kvDim}, uniform(0.1)})
		}
		if a.qkNorm {
			tensors = append(tensors,
				randomTensor{"attn_q_norm.weight", []int64{hd}, around(1, 0.1)},
				randomTensor{"attn_k_norm.weight", []int64{hd}, around(1, 0.1)})
		}
		if a.postNorms {
			tensors = append(tensors,
				randomTensor{"post_attention_norm.weight", []int64{e}, around(1, 0.1)},
				randomTensor{"post_ffw_norm.weight", []int64{e}, around(1, 0.1)})
		}
		for _, t := range tensors {
			if err := add(p+t.name, t.ne, spec.Type, t.fill); err != nil {
				return fmt.Errorf("random model: %w", err)
			}
		}
	}
	if err := w.WriteFile(path); err != nil {
		return fmt.Errorf("random model: %w", err)
	}
	return nil
}

// randomTensor is one tensor of a random model: its name (without the blk.<l>. prefix for layers),
// shape and how its values are drawn.
type randomTensor struct {
	name string
	ne   []int64
	fill func([]float32)
}

// llama31FreqFactors fills the rope frequency factors of Llama-3.1's "llama3" rope scaling
// (factor 8, low_freq_factor 1, high_freq_factor 4, original context 8192).
func llama31FreqFactors(v []float32, base float64, headDim int) {
	const factor, lowFreq, highFreq, origCtx = 8.0, 1.0, 4.0, 8192.0
	lowWavelen := origCtx / lowFreq
	highWavelen := origCtx / highFreq
	for i := range v {
		freq := 1 / math.Pow(base, float64(2*i)/float64(headDim))
		wavelen := 2 * math.Pi / freq
		switch {
		case wavelen < highWavelen:
			v[i] = 1
		case wavelen > lowWavelen:
			v[i] = factor
		default:
			smooth := (origCtx/wavelen - lowFreq) / (highFreq - lowFreq)
			v[i] = float32(1 / ((1-smooth)/factor + smooth))
		}
	}
}
