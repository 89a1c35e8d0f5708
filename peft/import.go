package peft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nlpodyssey/safetensors"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/lora"
)

// IsFolder reports whether path is a directory holding a PEFT adapter_config.json.
func IsFolder(path string) bool {
	st, err := os.Stat(filepath.Join(path, ConfigFile))
	return err == nil && !st.IsDir()
}

// Import reads the PEFT LoRA folder dir as a GGUF adapter for model: names mapped to GGUF,
// shapes checked against the model's weights (llama.ErrAdapterMismatch), llama's Q/K lora_B rows
// permuted to GGUF's order. Folders using what a GGUF LoRA cannot express (DoRA, per-module
// rank or alpha patterns, modules_to_save, biases, fan_in_fan_out) or naming unknown modules fail
// with ErrUnsupported.
func Import(dir string, model *ggml.GGUFFile) (*llama.AdapterFile, error) {
	cfgData, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("peft import: %s is not a PEFT adapter folder: %w", dir, err)
		}
		return nil, fmt.Errorf("peft import: %w", err)
	}
	cfgPath := filepath.Join(dir, ConfigFile)
	cfg, err := parseConfig(cfgData)
	if err != nil {
		return nil, fmt.Errorf("peft import: %s: %w", cfgPath, err)
	}
	if err := checkConfig(cfg); err != nil {
		return nil, fmt.Errorf("peft import: %s: %w", cfgPath, err)
	}
	arch := model.Arch()
	if !slices.Contains(Architectures, arch) {
		return nil, fmt.Errorf(
			"peft import: %w: model %s has architecture %q, want one of %s",
			ErrUnsupported,
			model.Path,
			arch,
			strings.Join(Architectures, ", "),
		)
	}
	heads, err := HeadsOf(model)
	if err != nil && arch == "llama" {
		return nil, fmt.Errorf("peft import: %w", err)
	}
	weightsPath := filepath.Join(dir, WeightsFile)
	raw, err := os.ReadFile(weightsPath)
	if err != nil {
		return nil, fmt.Errorf("peft import: %w (only safetensors weights are read, not adapter_model.bin)", err)
	}
	st, err := safetensors.Deserialize(raw)
	if err != nil {
		return nil, fmt.Errorf("peft import: %s: not a safetensors file: %w", weightsPath, err)
	}
	_, header, err := safetensors.ReadMetadata(raw)
	if err != nil {
		return nil, fmt.Errorf("peft import: %s: %w", weightsPath, err)
	}
	type pair struct {
		layer int
		mod   string
		a, b  *safetensors.NamedTensorView
	}
	pairs := map[string]*pair{}
	tensors := st.Tensors()
	for i := range tensors {
		nt := &tensors[i]
		layer, mod, which, err := parseKey(nt.Name)
		if err != nil {
			return nil, fmt.Errorf("peft import: %s: %w", weightsPath, err)
		}
		base := fmt.Sprintf("blk.%d.%s.weight", layer, mod)
		p := pairs[base]
		if p == nil {
			p = &pair{layer: layer, mod: mod}
			pairs[base] = p
		}
		if which == "A" {
			p.a = nt
		} else {
			p.b = nt
		}
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("peft import: %s: %w: no LoRA tensors", weightsPath, ErrUnsupported)
	}
	names := slices.Sorted(
		maps.Keys(pairs),
	) // the order training writes (nn.TrainModel.LoRATensors): round trips are byte-identical
	out := &llama.AdapterFile{Arch: arch, Meta: map[string]string{}}
	for _, base := range names {
		p := pairs[base]
		if p.a == nil || p.b == nil {
			return nil, fmt.Errorf(
				"peft import: %s: %w: %s has only one of lora_A and lora_B",
				weightsPath,
				llama.ErrAdapterMismatch,
				peftKey(p.layer, modules[moduleIndex(p.mod)], "A/B"),
			)
		}
		w, ok := model.Tensor(base)
		if !ok || len(w.Shape) != 2 {
			return nil, fmt.Errorf(
				"peft import: %w: %s: model %s has no 2-D weight %s",
				llama.ErrAdapterMismatch,
				p.a.Name,
				model.Path,
				base,
			)
		}
		nIn, nOut := int(w.Shape[0]), int(w.Shape[1])
		as, bs := p.a.TensorView.Shape(), p.b.TensorView.Shape()
		if len(as) != 2 || len(bs) != 2 || as[1] != uint64(nIn) || bs[0] != uint64(nOut) || as[0] != bs[1] {
			return nil, fmt.Errorf(
				"peft import: %w: %s: lora_A %v and lora_B %v do not fit %s of model %s (want [r %d] and [%d r])",
				llama.ErrAdapterMismatch,
				base,
				as,
				bs,
				base,
				model.Path,
				nIn,
				nOut,
			)
		}
		rank := int(as[0])
		if rank != cfg.R {
			return nil, fmt.Errorf(
				"peft import: %w: %s has rank %d but %s says r = %d",
				llama.ErrAdapterMismatch,
				base,
				rank,
				cfgPath,
				cfg.R,
			)
		}
		lt := lora.Tensor{Base: base, Rank: rank, NIn: nIn, NOut: nOut}
		if lt.A, err = decode(p.a); err != nil {
			return nil, fmt.Errorf("peft import: %s: %w", weightsPath, err)
		}
		if lt.B, err = decode(p.b); err != nil {
			return nil, fmt.Errorf("peft import: %s: %w", weightsPath, err)
		}
		if h := qkHeads(arch, p.mod, heads); h > 0 {
			if lt.B, err = hfToGGUFRows(lt.B, rank, h); err != nil {
				return nil, fmt.Errorf("peft import: %s: %w", base, err)
			}
		}
		out.Tensors = append(out.Tensors, lt)
	}
	alpha := cfg.LoraAlpha
	if cfg.UseRSLoRA { // rsLoRA scales by alpha/√r; GGUF's scale is alpha/r
		alpha *= math.Sqrt(float64(cfg.R))
	}
	out.Alpha = float32(alpha)
	for k, v := range header.Metadata() {
		if strings.HasPrefix(k, "bpo.") {
			out.Meta[k] = v
		}
	}
	if out.Meta[llama.KeyAdapterBaseModel] == "" && cfg.BaseModelNameOrPath != "" {
		out.Meta[llama.KeyAdapterBaseModel] = cfg.BaseModelNameOrPath
	}
	return out, nil
}

// checkConfig rejects what a GGUF LoRA adapter cannot express and unknown target names.
func checkConfig(c Config) error {
	switch {
	case !strings.EqualFold(c.PeftType, "LORA"):
		return fmt.Errorf("%w: peft_type %q, want \"LORA\"", ErrUnsupported, c.PeftType)
	case c.R <= 0:
		return fmt.Errorf("%w: r = %d, want > 0", ErrUnsupported, c.R)
	case math.IsNaN(c.LoraAlpha) || math.IsInf(c.LoraAlpha, 0) || c.LoraAlpha <= 0:
		return fmt.Errorf("%w: lora_alpha = %v, want a finite number > 0", ErrUnsupported, c.LoraAlpha)
	case c.UseDoRA:
		return fmt.Errorf("%w: use_dora is true (DoRA magnitudes have no GGUF form)", ErrUnsupported)
	case c.FanInFanOut:
		return fmt.Errorf("%w: fan_in_fan_out is true (transposed Conv1D weights, not llama/qwen2)", ErrUnsupported)
	case c.Bias != "" && c.Bias != "none":
		return fmt.Errorf("%w: bias = %q, want \"none\"", ErrUnsupported, c.Bias)
	case len(c.ModulesToSave) > 0:
		return fmt.Errorf(
			"%w: modules_to_save %v (fully trained modules are not LoRA)",
			ErrUnsupported,
			c.ModulesToSave,
		)
	case len(c.RankPattern) > 0 || len(c.AlphaPattern) > 0:
		return fmt.Errorf(
			"%w: rank_pattern/alpha_pattern set (a GGUF adapter has one rank and one alpha)",
			ErrUnsupported,
		)
	}
	switch t := c.TargetModules.(type) {
	case nil, string: // absent, or a regular expression: the tensor names are checked instead
	case []any:
		var unknown []string
		for _, m := range t {
			s, ok := m.(string)
			if _, known := ggufModule(s); !ok || !known {
				unknown = append(unknown, fmt.Sprint(m))
			}
		}
		if len(unknown) > 0 {
			return fmt.Errorf("%w: unknown target_modules %q, want some of %s", ErrUnsupported, unknown, knownTargets())
		}
	default:
		return fmt.Errorf("%w: target_modules is a %T, want a list of names", ErrUnsupported, t)
	}
	return nil
}

// moduleIndex is the position of a GGUF projection in modules.
func moduleIndex(gguf string) int {
	return slices.IndexFunc(modules, func(m module) bool { return m.gguf == gguf })
}

// decode converts a safetensors F32, F16 or BF16 tensor to float32.
func decode(nt *safetensors.NamedTensorView) ([]float32, error) {
	v := nt.TensorView
	n := int64(1)
	for _, d := range v.Shape() {
		n *= int64(d)
	}
	data := v.Data()
	switch v.DType() {
	case safetensors.F32:
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		return out, nil
	case safetensors.F16:
		return ggml.ToFloat32(ggml.TypeF16, data, n)
	case safetensors.BF16:
		return ggml.ToFloat32(ggml.TypeBF16, data, n)
	}
	return nil, fmt.Errorf("%w: tensor %s has dtype %s, want F32, F16 or BF16", ErrUnsupported, nt.Name, v.DType())
}
