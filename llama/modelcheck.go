package llama

/*
#include "ggml.h"
#include "ggml-cpu.h"

// bpo_weight_type_ok: ggml's CPU backend can multiply by (and decode) tensors of this type.
static int bpo_weight_type_ok(enum ggml_type t) {
	if (t == GGML_TYPE_F32 || t == GGML_TYPE_F16 || t == GGML_TYPE_BF16) return 1;
	if (!ggml_is_quantized(t)) return 0;
	const struct ggml_type_traits * tr = ggml_get_type_traits(t);
	const struct ggml_type_traits_cpu * cpu = ggml_get_type_traits_cpu(t);
	return tr != NULL && tr->to_float != NULL && cpu != NULL && cpu->vec_dot != NULL;
}
*/
import "C"

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/lora"
)

// Bounds on model hyper-parameters; files outside them are refused as corrupt before llama.cpp,
// which asserts or divides by zero on some of them, sees the file.
const (
	maxLayers    = 512 // LLAMA_MAX_LAYERS
	maxEmbedding = 1 << 20
	maxFFN       = 1 << 22
	maxContext   = 1 << 24
	maxExperts   = 512 // LLAMA_MAX_EXPERTS
)

// ropeScalingTypes are the rope.scaling.type values llama.cpp knows (others make it assert).
var ropeScalingTypes = []string{"none", "linear", "yarn", "longrope"}

// weightTypeOK reports whether ggml's CPU backend can compute with tensors of type t.
func weightTypeOK(t ggml.GGMLType) bool {
	return t.Valid() && C.bpo_weight_type_ok(C.enum_ggml_type(t)) != 0
}

// kvError names the metadata key, what it holds and what was expected of it.
func kvError(key string, v any, want string) error {
	return fmt.Errorf("%w: metadata %s is %s, want %s", ErrInvalidArgument, key, describeValue(v), want)
}

// describeValue describes a metadata value briefly: its type, and its value or length.
func describeValue(v any) string {
	if v == nil {
		return "missing"
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice:
		return fmt.Sprintf("an array of %d %s", rv.Len(), rv.Type().Elem())
	case reflect.String:
		s := rv.String()
		if len(s) > 40 {
			s = s[:37] + "..."
		}
		return fmt.Sprintf("the string %q", s)
	}
	return fmt.Sprintf("%v (%T)", v, v)
}

// checkStringKey requires key, when present (or always when required), to be a string.
func checkStringKey(f *ggml.GGUFFile, key string, required bool) error {
	v, ok := f.KV[key]
	if !ok && !required {
		return nil
	}
	if _, isStr := v.(string); !isStr {
		return kvError(key, v, "a string")
	}
	return nil
}

// checkUintKey requires key to be an unsigned 32-bit integer in [lo, hi] and returns it (0 when
// absent and not required).
func checkUintKey(f *ggml.GGUFFile, key string, required bool, lo, hi uint64) (uint64, error) {
	v, ok := f.KV[key]
	if !ok && !required {
		return 0, nil
	}
	u, isU32 := v.(uint32)
	if !isU32 || uint64(u) < lo || uint64(u) > hi {
		return 0, kvError(key, v, fmt.Sprintf("a uint32 in [%d, %d]", lo, hi))
	}
	return uint64(u), nil
}

// checkPerLayerKey requires key to be a uint32 or an array of layers uint32 values, each in [lo, hi],
// and returns the values (nil when absent and not required).
func checkPerLayerKey(f *ggml.GGUFFile, key string, required bool, layers int, lo, hi uint64) ([]uint64, error) {
	v, ok := f.KV[key]
	if !ok && !required {
		return nil, nil
	}
	want := fmt.Sprintf("a uint32 in [%d, %d] or an array of %d of them (one per layer)", lo, hi, layers)
	var vals []uint64
	switch x := v.(type) {
	case uint32:
		vals = []uint64{uint64(x)}
	case []uint32:
		if len(x) != layers {
			return nil, kvError(key, v, want)
		}
		for _, e := range x {
			vals = append(vals, uint64(e))
		}
	case []int32:
		if len(x) != layers {
			return nil, kvError(key, v, want)
		}
		for _, e := range x {
			if e < 0 {
				return nil, kvError(key, e, want)
			}
			vals = append(vals, uint64(e))
		}
	default:
		return nil, kvError(key, v, want)
	}
	for _, e := range vals {
		if e < lo || e > hi {
			return nil, kvError(key, e, want)
		}
	}
	return vals, nil
}

// checkFiniteScalars refuses NaN and infinite float metadata: llama.cpp would compute with them
// silently (uniform or NaN log-probs).
func checkFiniteScalars(f *ggml.GGUFFile) error {
	keys := make([]string, 0, len(f.KV))
	for k := range f.KV {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var x float64
		switch v := f.KV[k].(type) {
		case float32:
			x = float64(v)
		case float64:
			x = v
		default:
			continue
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return kvError(k, f.KV[k], "a finite number")
		}
	}
	return nil
}

// checkVocab checks the tokenizer arrays llama.cpp indexes without bounds or type checks.
func checkVocab(f *ggml.GGUFFile) error {
	tokens, ok := f.KV["tokenizer.ggml.tokens"].([]string)
	if !ok || len(tokens) == 0 {
		return kvError("tokenizer.ggml.tokens", f.KV["tokenizer.ggml.tokens"], "a non-empty array of strings")
	}
	n := len(tokens)
	if v, ok := f.KV["tokenizer.ggml.scores"]; ok {
		if s, isF := v.([]float32); !isF || len(s) != n {
			return kvError("tokenizer.ggml.scores", v, fmt.Sprintf("an array of %d float32 (one per token)", n))
		}
	}
	if v, ok := f.KV["tokenizer.ggml.token_type"]; ok {
		if s, isI := v.([]int32); !isI || len(s) != n {
			return kvError("tokenizer.ggml.token_type", v, fmt.Sprintf("an array of %d int32 (one per token)", n))
		}
	}
	if err := checkStringKey(f, "tokenizer.ggml.model", false); err != nil {
		return err
	}
	if err := checkStringKey(f, "tokenizer.ggml.pre", false); err != nil {
		return err
	}
	if err := checkStringKey(f, "tokenizer.chat_template", false); err != nil {
		return err
	}
	if v, ok := f.KV["tokenizer.ggml.merges"]; ok || f.String("tokenizer.ggml.model") == "gpt2" {
		if _, isStrs := v.([]string); !isStrs {
			return kvError("tokenizer.ggml.merges", v, "an array of strings (BPE merges)")
		}
	}
	if v, ok := f.KV["tokenizer.ggml.precompiled_charsmap"]; ok {
		if _, isBytes := v.([]uint8); !isBytes {
			return kvError("tokenizer.ggml.precompiled_charsmap", v, "an array of bytes")
		}
	}
	return nil
}

// CheckModelFile reads the GGUF model at path and checks it as LoadModel does (format, architecture,
// hyper-parameters, tokenizer, tensor types) without loading it: for code that hands the file to
// llama.cpp or ggml by another route (quantizing, the training graph).
func CheckModelFile(path string) error {
	f, err := ggml.ReadGGUF(path)
	if err != nil {
		return err
	}
	if !archSupported(f.Arch()) {
		return fmt.Errorf("%s: %w: general.architecture = %q, supported: %s", path, ErrUnsupportedArch, f.Arch(), strings.Join(supportedArchitectures, ", "))
	}
	if err := validateModelFile(f, len(f.Tensors) == 0); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// validateModelFile checks everything in a model's metadata and tensor table that llama.cpp would
// otherwise assert on, divide by, allocate from or silently compute with: key types, hyper-parameter
// ranges, finiteness, tokenizer array lengths and tensor types.
func validateModelFile(f *ggml.GGUFFile, vocabOnly bool) error {
	for _, k := range []string{"general.architecture", "general.name", "general.type"} {
		if err := checkStringKey(f, k, k == "general.architecture"); err != nil {
			return err
		}
	}
	if _, err := checkUintKey(f, "split.count", false, 0, 1); err != nil {
		return fmt.Errorf("%w (split models are not supported)", err)
	}
	if err := checkFiniteScalars(f); err != nil {
		return err
	}
	if err := checkVocab(f); err != nil {
		return err
	}
	if vocabOnly {
		return nil
	}
	return checkHyperParams(f)
}

// checkHyperParams checks the architecture's hyper-parameters and the tensor types.
func checkHyperParams(f *ggml.GGUFFile) error {
	arch := f.Arch()
	key := func(k string) string { return arch + "." + k }
	if _, err := checkUintKey(f, key("context_length"), true, 1, maxContext); err != nil {
		return err
	}
	embd, err := checkUintKey(f, key("embedding_length"), true, 1, maxEmbedding)
	if err != nil {
		return err
	}
	layers, err := checkUintKey(f, key("block_count"), true, 1, maxLayers)
	if err != nil {
		return err
	}
	if _, err := checkPerLayerKey(f, key("feed_forward_length"), false, int(layers), 0, maxFFN); err != nil {
		return err
	}
	heads, err := checkPerLayerKey(f, key("attention.head_count"), true, int(layers), 1, embd)
	if err != nil {
		return err
	}
	headsKV, err := checkPerLayerKey(f, key("attention.head_count_kv"), false, int(layers), 1, embd)
	if err != nil {
		return err
	}
	keyLen, err := checkUintKey(f, key("attention.key_length"), false, 1, maxEmbedding)
	if err != nil {
		return err
	}
	if _, err := checkUintKey(f, key("attention.value_length"), false, 1, maxEmbedding); err != nil {
		return err
	}
	for i, h := range heads {
		if keyLen == 0 && embd%h != 0 {
			return kvError(key("attention.head_count"), h, fmt.Sprintf("a divisor of embedding_length %d", embd))
		}
		if len(headsKV) > 0 {
			kv := headsKV[min(i, len(headsKV)-1)]
			if h%kv != 0 {
				return kvError(key("attention.head_count_kv"), kv, fmt.Sprintf("a divisor of head_count %d", h))
			}
		}
	}
	if _, err := checkUintKey(f, key("rope.dimension_count"), false, 1, maxEmbedding); err != nil {
		return err
	}
	if _, err := checkUintKey(f, key("vocab_size"), false, 1, 1<<31-1); err != nil {
		return err
	}
	experts, err := checkUintKey(f, key("expert_count"), false, 0, maxExperts)
	if err != nil {
		return err
	}
	used, err := checkUintKey(f, key("expert_used_count"), false, 0, experts)
	if err != nil {
		return err
	}
	if (experts > 0) != (used > 0) {
		return kvError(key("expert_used_count"), used, fmt.Sprintf("between 1 and expert_count %d when there are experts, else 0", experts))
	}
	if _, err := checkUintKey(f, key("expert_group_count"), false, 0, 0); err != nil {
		return err
	}
	eps, ok := f.KV[key("attention.layer_norm_rms_epsilon")].(float32)
	if !ok || !(eps > 0 && eps <= 1) {
		return kvError(key("attention.layer_norm_rms_epsilon"), f.KV[key("attention.layer_norm_rms_epsilon")], "a float32 in (0, 1]")
	}
	for _, k := range []string{"rope.freq_base", "rope.scaling.factor", "rope.scale_linear", "rope.scaling.attn_factor", "rope.freq_scale"} {
		v, ok := f.KV[key(k)]
		if !ok {
			continue
		}
		if x, isF := v.(float32); !isF || !(x > 0) {
			return kvError(key(k), v, "a positive float32")
		}
	}
	if v, ok := f.KV[key("rope.scaling.type")]; ok {
		if s, isStr := v.(string); !isStr || !slices.Contains(ropeScalingTypes, s) {
			return kvError(key("rope.scaling.type"), v, "one of "+strings.Join(ropeScalingTypes, ", "))
		}
	}
	switch arch {
	case "qwen3":
		err = checkQwen3Keys(f)
	case "gemma3":
		err = checkGemma3Keys(f)
	}
	if err != nil {
		return err
	}
	return checkTensorTypes(f.Tensors)
}

// checkTensorTypes requires matrices of a type ggml's CPU backend multiplies and F32 vectors (norms).
func checkTensorTypes(tensors []ggml.GGUFTensor) error {
	for _, t := range tensors {
		if len(t.Shape) == 1 && t.Type != ggml.TypeF32 {
			return fmt.Errorf("%w: tensor %s is a vector of type %s, want f32", ErrInvalidArgument, t.Name, t.Type)
		}
		if !weightTypeOK(t.Type) {
			return fmt.Errorf("%w: tensor %s has type %s, which ggml's CPU backend cannot compute with", ErrInvalidArgument, t.Name, t.Type)
		}
	}
	return nil
}

// validateAdapterFile checks a LoRA adapter's metadata (types llama.cpp reads without checking, a
// finite alpha) and tensor types.
func validateAdapterFile(f *ggml.GGUFFile) error {
	for _, k := range []string{"general.type", "general.architecture", "adapter.type"} {
		if err := checkStringKey(f, k, true); err != nil {
			return fmt.Errorf("%w (%w)", err, ErrNotAdapter)
		}
	}
	if err := checkFiniteScalars(f); err != nil {
		return err
	}
	if v, ok := f.KV[lora.KeyAlpha]; ok {
		if a, isF := v.(float32); !isF || !(a >= 0) {
			return kvError(lora.KeyAlpha, v, "a finite float32 >= 0")
		}
	}
	if v, ok := f.KV["adapter.alora.invocation_tokens"]; ok {
		if _, isU := v.([]uint32); !isU {
			return kvError("adapter.alora.invocation_tokens", v, "an array of uint32")
		}
	}
	return checkTensorTypes(f.Tensors)
}
