// Package peft converts LoRA adapters between bpo's GGUF layout (what llama.cpp and ollama load)
// and HuggingFace PEFT's folder layout (adapter_config.json + adapter_model.safetensors) for the
// llama and qwen2 architectures.
//
// Names: GGUF "blk.N.attn_q.weight" is PEFT "base_model.model.model.layers.N.self_attn.q_proj",
// with ".lora_A.weight" (r x n_in) and ".lora_B.weight" (n_out x r), the same row-major matrices
// as GGUF's lora_a and lora_b. llama.cpp's HF-to-GGUF converter permutes the rows of the llama
// architecture's Q and K projections (HF's rotate-half rope layout to GGUF's interleaved one), so
// lora_B of attn_q/attn_k is permuted the same way on the way in and back on the way out; qwen2
// keeps HF's layout in GGUF and needs no permutation.
package peft

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// File names inside a PEFT adapter folder.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"
)

// ErrUnsupported means a PEFT folder uses a feature a GGUF LoRA adapter cannot express, or
// names modules this package does not know.
var ErrUnsupported = errors.New("unsupported PEFT adapter")

// Architectures are the GGUF architectures whose PEFT names this package knows.
var Architectures = []string{"llama", "qwen2"}

// module pairs a GGUF projection with its module path inside a HuggingFace decoder layer.
type module struct{ gguf, hf string }

// modules lists the projections in canonical order.
var modules = []module{
	{"attn_q", "self_attn.q_proj"},
	{"attn_k", "self_attn.k_proj"},
	{"attn_v", "self_attn.v_proj"},
	{"attn_output", "self_attn.o_proj"},
	{"ffn_gate", "mlp.gate_proj"},
	{"ffn_up", "mlp.up_proj"},
	{"ffn_down", "mlp.down_proj"},
}

// layerPrefix starts every PEFT LoRA key of a causal LM's decoder layer (PeftModel wraps
// LoraModel wraps the *ForCausalLM, whose decoder is .model).
const layerPrefix = "base_model.model.model.layers."

// Config is adapter_config.json: the fields bpo writes and the ones it must check on import.
type Config struct {
	PeftType            string  `json:"peft_type"`
	TaskType            string  `json:"task_type"`
	BaseModelNameOrPath string  `json:"base_model_name_or_path"`
	Revision            *string `json:"revision"`
	R                   int     `json:"r"`
	LoraAlpha           float64 `json:"lora_alpha"`
	// TargetModules is a list of module names or, in PEFT, a regular expression string.
	TargetModules     any            `json:"target_modules"`
	LoraDropout       float64        `json:"lora_dropout"`
	Bias              string         `json:"bias"`
	FanInFanOut       bool           `json:"fan_in_fan_out"`
	UseRSLoRA         bool           `json:"use_rslora"`
	UseDoRA           bool           `json:"use_dora"`
	InferenceMode     bool           `json:"inference_mode"`
	InitLoraWeights   any            `json:"init_lora_weights"`
	ModulesToSave     []string       `json:"modules_to_save"`
	LayersToTransform any            `json:"layers_to_transform"`
	RankPattern       map[string]any `json:"rank_pattern"`
	AlphaPattern      map[string]any `json:"alpha_pattern"`
}

// parseConfig reads adapter_config.json with PEFT's defaults (r 8, lora_alpha 8) for absent fields.
func parseConfig(data []byte) (Config, error) {
	c := Config{R: 8, LoraAlpha: 8, Bias: "none"}
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ggufModule returns the GGUF projection of a PEFT target-module name: "q_proj",
// "self_attn.q_proj" or a longer path ending in one of the known module paths.
func ggufModule(name string) (string, bool) {
	for _, m := range modules {
		_, short, _ := strings.Cut(m.hf, ".")
		if name == short || name == m.hf || strings.HasSuffix(name, "."+m.hf) {
			return m.gguf, true
		}
	}
	return "", false
}

// knownTargets lists the accepted target names for error messages.
func knownTargets() string {
	var s []string
	for _, m := range modules {
		_, short, _ := strings.Cut(m.hf, ".")
		s = append(s, short)
	}
	return strings.Join(s, ", ")
}

// peftKey is the PEFT key of one LoRA matrix ("A" or "B") of GGUF tensor blk.<layer>.<mod>.weight.
func peftKey(layer int, mod module, which string) string {
	return layerPrefix + strconv.Itoa(layer) + "." + mod.hf + ".lora_" + which + ".weight"
}

// parseKey splits a PEFT key into layer, GGUF projection and "A"/"B".
func parseKey(key string) (layer int, gguf, which string, err error) {
	rest, ok := strings.CutPrefix(key, layerPrefix)
	if !ok {
		return 0, "", "", fmt.Errorf(
			"%w: tensor %q: want names %s<N>.<module>.lora_A.weight / .lora_B.weight with module one of self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj",
			ErrUnsupported,
			key,
			layerPrefix,
		)
	}
	num, rest, _ := strings.Cut(rest, ".")
	layer, convErr := strconv.Atoi(num)
	if convErr != nil || layer < 0 {
		return 0, "", "", fmt.Errorf("%w: tensor %q: layer %q is not a number", ErrUnsupported, key, num)
	}
	for _, w := range []string{"A", "B"} {
		if path, ok := strings.CutSuffix(rest, ".lora_"+w+".weight"); ok {
			i := slices.IndexFunc(modules, func(m module) bool { return m.hf == path })
			if i < 0 {
				return 0, "", "", fmt.Errorf(
					"%w: tensor %q: unknown target module %q, want one of self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj",
					ErrUnsupported,
					key,
					path,
				)
			}
			return layer, modules[i].gguf, w, nil
		}
	}
	return 0, "", "", fmt.Errorf(
		"%w: tensor %q is not a .lora_A.weight or .lora_B.weight (DoRA magnitudes, embeddings and biases are not supported)",
		ErrUnsupported,
		key,
	)
}

// permutation maps the rows of a Q or K projection between layouts: for heads heads of headDim
// rows, HF row h·headDim + j·headDim/2 + i (rotate-half pairs i and i + headDim/2) is GGUF row
// h·headDim + 2i + j (interleaved pairs), as llama.cpp's converter reorders llama's Q and K.
// perm[hfRow] = ggufRow.
func permutation(rows, heads int) ([]int, error) {
	if heads <= 0 || rows%heads != 0 || (rows/heads)%2 != 0 {
		return nil, fmt.Errorf("%d rows do not split into %d heads of even size", rows, heads)
	}
	hd := rows / heads
	perm := make([]int, rows)
	for h := 0; h < heads; h++ {
		for j := 0; j < 2; j++ {
			for i := 0; i < hd/2; i++ {
				perm[h*hd+j*hd/2+i] = h*hd + 2*i + j
			}
		}
	}
	return perm, nil
}

// hfToGGUFRows reorders the rows (of cols values each) of an HF-layout Q/K matrix to GGUF's layout.
func hfToGGUFRows(m []float32, cols, heads int) ([]float32, error) {
	perm, err := permutation(len(m)/cols, heads)
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(m))
	for hf, gg := range perm {
		copy(out[gg*cols:(gg+1)*cols], m[hf*cols:(hf+1)*cols])
	}
	return out, nil
}

// ggufToHFRows is the inverse of hfToGGUFRows.
func ggufToHFRows(m []float32, cols, heads int) ([]float32, error) {
	perm, err := permutation(len(m)/cols, heads)
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(m))
	for hf, gg := range perm {
		copy(out[hf*cols:(hf+1)*cols], m[gg*cols:(gg+1)*cols])
	}
	return out, nil
}

// Heads are the attention head counts that the llama architecture's Q/K permutation needs.
type Heads struct {
	Q, KV int
}

// qkHeads returns the head count that the rows of projection mod are grouped by on arch, or 0
// when its rows keep HF's order (every projection but llama's attn_q and attn_k).
func qkHeads(arch, mod string, h Heads) int {
	if arch != "llama" {
		return 0
	}
	switch mod {
	case "attn_q":
		return h.Q
	case "attn_k":
		return h.KV
	}
	return 0
}
