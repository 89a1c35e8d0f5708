package peft

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nlpodyssey/safetensors"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/atomicfile"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/lora"
)

// ExportOptions completes what a GGUF adapter does not record itself.
type ExportOptions struct {
	// BaseModel is adapter_config.json's base_model_name_or_path (e.g. a hub name such as
	// "Qwen/Qwen2.5-Math-7B"); default: the adapter's bpo.base_model.
	BaseModel string
	// Heads are the base model's head counts; required for the llama architecture (Q/K permutation).
	Heads Heads
}

// HeadsOf reads the attention head counts of a GGUF model.
func HeadsOf(model *ggml.GGUFFile) (Heads, error) {
	arch := model.Arch()
	q, ok := model.Uint(arch + ".attention.head_count")
	if !ok || q == 0 {
		return Heads{}, fmt.Errorf("%s: no %s.attention.head_count", model.Path, arch)
	}
	kv, ok := model.Uint(arch + ".attention.head_count_kv")
	if !ok || kv == 0 {
		kv = q
	}
	return Heads{Q: int(q), KV: int(kv)}, nil
}

// Export writes a GGUF LoRA adapter as a PEFT folder dir: adapter_config.json and
// adapter_model.safetensors (F32, PEFT's names and shapes, HF's row order). The adapter's bpo.*
// metadata travels in the safetensors header so that Import restores the adapter bit for bit.
func Export(ad *llama.AdapterFile, dir string, opts ExportOptions) error {
	if !slices.Contains(Architectures, ad.Arch) {
		return fmt.Errorf(
			"peft export: %w: architecture %q, want one of %s",
			ErrUnsupported,
			ad.Arch,
			strings.Join(Architectures, ", "),
		)
	}
	if ad.Arch == "llama" && (opts.Heads.Q <= 0 || opts.Heads.KV <= 0) {
		return fmt.Errorf(
			"peft export: %w: llama adapters need the base model's head counts for the Q/K permutation",
			llama.ErrInvalidArgument,
		)
	}
	if len(ad.Tensors) == 0 {
		return fmt.Errorf("peft export: %w: no LoRA tensors", llama.ErrInvalidArgument)
	}
	rank := ad.Tensors[0].Rank
	views := map[string]safetensors.TensorView{}
	present := map[string]bool{}
	for _, lt := range ad.Tensors {
		if err := lt.Validate(); err != nil {
			return fmt.Errorf("peft export: %w: %w", llama.ErrInvalidArgument, err)
		}
		if lt.Rank != rank {
			return fmt.Errorf(
				"peft export: %w: %s has rank %d, others %d (PEFT's rank_pattern is not written)",
				ErrUnsupported,
				lt.Base,
				lt.Rank,
				rank,
			)
		}
		layer, mod, ok := splitBlockName(lt.Base)
		if !ok {
			return fmt.Errorf(
				"peft export: %w: tensor %s is not a blk.N.<projection>.weight of %s",
				ErrUnsupported,
				lt.Base,
				knownGGUF(),
			)
		}
		b := lt.B
		if heads := qkHeads(ad.Arch, mod.gguf, opts.Heads); heads > 0 {
			var err error
			if b, err = ggufToHFRows(lt.B, lt.Rank, heads); err != nil {
				return fmt.Errorf("peft export: %s: %w", lt.Base, err)
			}
		}
		for _, m := range []struct {
			which string
			shape []uint64
			data  []float32
		}{
			{"A", []uint64{uint64(lt.Rank), uint64(lt.NIn)}, lt.A},
			{"B", []uint64{uint64(lt.NOut), uint64(lt.Rank)}, b},
		} {
			v, err := safetensors.NewTensorView(safetensors.F32, m.shape, float32Bytes(m.data))
			if err != nil {
				return fmt.Errorf("peft export: %s: %w", lt.Base, err)
			}
			key := peftKey(layer, mod, m.which)
			if _, dup := views[key]; dup {
				return fmt.Errorf("peft export: %w: %s appears twice", llama.ErrInvalidArgument, lt.Base)
			}
			views[key] = v
		}
		present[mod.gguf] = true
	}
	var targets []string // canonical order, whatever the tensor order
	for _, m := range modules {
		if present[m.gguf] {
			_, short, _ := strings.Cut(m.hf, ".")
			targets = append(targets, short)
		}
	}
	meta := map[string]string{"format": "pt"}
	for k, v := range ad.Meta {
		if strings.HasPrefix(k, "bpo.") {
			meta[k] = v
		}
	}
	base := opts.BaseModel
	if base == "" {
		base = ad.Meta[llama.KeyAdapterBaseModel]
	}
	alpha := float64(ad.Alpha)
	if alpha == 0 { // llama.cpp applies B·A unscaled when alpha is absent: scale 1 = alpha/r with alpha = r
		alpha = float64(rank)
	}
	cfg := Config{
		PeftType: "LORA", TaskType: "CAUSAL_LM", BaseModelNameOrPath: base,
		R: rank, LoraAlpha: alpha, TargetModules: targets, Bias: "none", InferenceMode: true, InitLoraWeights: true,
		RankPattern: map[string]any{}, AlphaPattern: map[string]any{},
	}
	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("peft export: %w", err)
	}
	weights, err := safetensors.Serialize(views, meta)
	if err != nil {
		return fmt.Errorf("peft export: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("peft export: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, WeightsFile), weights); err != nil {
		return fmt.Errorf("peft export: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, ConfigFile), append(cfgJSON, '\n')); err != nil {
		return fmt.Errorf("peft export: %w", err)
	}
	return nil
}

// splitBlockName splits "blk.<layer>.<projection>.weight" into layer and projection.
func splitBlockName(name string) (int, module, bool) {
	layer, gguf, ok := lora.ParseBase(name)
	if i := moduleIndex(gguf); ok && i >= 0 {
		return layer, modules[i], true
	}
	return 0, module{}, false
}

func knownGGUF() string {
	var s []string
	for _, m := range modules {
		s = append(s, m.gguf)
	}
	return strings.Join(s, ", ")
}

// float32Bytes encodes v little-endian, as safetensors stores F32.
func float32Bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}
