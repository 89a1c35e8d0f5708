package llama

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/lora"
)

// AdapterInfo describes a GGUF LoRA adapter from its metadata; no tensor data is read.
type AdapterInfo struct {
	Path string `json:"path"`
	Arch string `json:"arch"`
	// Alpha is adapter.lora.alpha (0: absent, llama.cpp then applies B·A unscaled).
	Alpha float32 `json:"alpha"`
	// Rank is the LoRA rank, or -1 when the pairs have different ranks (see Ranks).
	Rank  int   `json:"rank"`
	Ranks []int `json:"ranks"`
	// Scale is alpha/rank, the factor llama.cpp applies to B·A at scale 1.
	Scale float64 `json:"scale"`
	// Targets are the adapted projections in canonical order, e.g. attn_q, ffn_down.
	Targets []string `json:"targets"`
	// Layers are the block numbers that have at least one adapted weight.
	Layers []int `json:"layers"`
	// Pairs is the number of lora_a/lora_b pairs and Params their number of values.
	Pairs  int   `json:"pairs"`
	Params int64 `json:"params"`
	// Types are the tensor types of the LoRA tensors (f32 for adapters bpo writes).
	Types []string `json:"types"`
	// BaseModel is the model the adapter was trained on, as the adapter records it (bpo.base_model,
	// or general.base_model.0.name for adapters made by llama.cpp's converter); "" if unrecorded.
	BaseModel string `json:"base_model"`
	// BaseFingerprint is bpo.base_model_fingerprint (see align.FileFingerprint), if recorded.
	BaseFingerprint string `json:"base_model_fingerprint,omitempty"`
	// Meta holds every other string-valued key (training provenance such as bpo.loss).
	Meta map[string]string `json:"meta"`
}

// Adapter provenance keys written by bpo.
const (
	// KeyAdapterBaseModel is the file name (or hub name, for imported adapters) of the base model.
	KeyAdapterBaseModel = "bpo.base_model"
	// KeyAdapterBaseFingerprint is the base model's align.FileFingerprint at training time.
	KeyAdapterBaseFingerprint = "bpo.base_model_fingerprint"
)

// ReadAdapterInfo reads a GGUF LoRA adapter's description (ErrNotAdapter for other files).
func ReadAdapterInfo(path string) (AdapterInfo, error) {
	f, err := ggml.ReadGGUF(path)
	if err != nil {
		return AdapterInfo{}, fmt.Errorf("adapter info: %w", err)
	}
	if f.String("general.type") != "adapter" || f.String("adapter.type") != "lora" {
		return AdapterInfo{}, fmt.Errorf("adapter info %s: %w: general.type = %q, adapter.type = %q", path, ErrNotAdapter, f.String("general.type"), f.String("adapter.type"))
	}
	alpha, _ := f.Float(lora.KeyAlpha)
	info := AdapterInfo{Path: path, Arch: f.Arch(), Alpha: float32(alpha), Meta: map[string]string{}}
	for k, v := range f.KV {
		if s, ok := v.(string); ok && !strings.HasPrefix(k, "general.") && !strings.HasPrefix(k, "adapter.") {
			info.Meta[k] = s
		}
	}
	info.BaseModel = info.Meta[KeyAdapterBaseModel]
	if info.BaseModel == "" {
		info.BaseModel = f.String("general.base_model.0.name")
	}
	info.BaseFingerprint = info.Meta[KeyAdapterBaseFingerprint]
	delete(info.Meta, KeyAdapterBaseModel)
	delete(info.Meta, KeyAdapterBaseFingerprint)
	var others []string
	for _, ta := range f.Tensors {
		base, ok := strings.CutSuffix(ta.Name, lora.SuffixA)
		if !ok {
			continue
		}
		tb, ok := f.Tensor(base + lora.SuffixB)
		if !ok || len(ta.Shape) != 2 || len(tb.Shape) != 2 {
			return AdapterInfo{}, fmt.Errorf("adapter info %s: %w: %s has no matching 2-D lora_b", path, ErrAdapterMismatch, base)
		}
		info.Pairs++
		info.Params += ta.Elements() + tb.Elements()
		if r := int(ta.Shape[1]); !slices.Contains(info.Ranks, r) {
			info.Ranks = append(info.Ranks, r)
		}
		for _, t := range []ggml.GGUFTensor{ta, tb} {
			if s := t.Type.String(); !slices.Contains(info.Types, s) {
				info.Types = append(info.Types, s)
			}
		}
		layer, module, ok := lora.ParseBase(base)
		switch {
		case !ok:
			module = strings.TrimSuffix(base, ".weight")
			if !slices.Contains(others, module) {
				others = append(others, module)
			}
		case !slices.Contains(info.Targets, module):
			info.Targets = append(info.Targets, module)
		}
		if ok && !slices.Contains(info.Layers, layer) {
			info.Layers = append(info.Layers, layer)
		}
	}
	if info.Pairs == 0 {
		return AdapterInfo{}, fmt.Errorf("adapter info %s: %w: no .lora_a/.lora_b tensors", path, ErrNotAdapter)
	}
	slices.SortFunc(info.Targets, func(a, b string) int { return targetRank(a) - targetRank(b) })
	slices.Sort(others)
	info.Targets = append(info.Targets, others...)
	slices.Sort(info.Layers)
	slices.Sort(info.Ranks)
	info.Rank = info.Ranks[0]
	if len(info.Ranks) > 1 {
		info.Rank = -1
	}
	if info.Rank > 0 && info.Alpha != 0 {
		info.Scale = float64(info.Alpha) / float64(info.Rank)
	} else if info.Alpha == 0 {
		info.Scale = 1
	}
	return info, nil
}

// targetRank orders projections canonically; unknown modules go last, by name.
func targetRank(module string) int {
	if i := lora.TargetIndex(module); i >= 0 {
		return i
	}
	return len(lora.Targets())
}

// CheckAdapterFits checks that the GGUF file at adapterPath is a LoRA adapter (ErrNotAdapter) for
// base's architecture whose every pair fits a weight of base (ErrAdapterMismatch), without
// loading either into llama.cpp.
func CheckAdapterFits(adapterPath string, base *ggml.GGUFFile) error {
	_, err := checkAdapterFits(adapterPath, base)
	return err
}

// checkAdapterFits is CheckAdapterFits returning the adapter's rank (-1 when ranks differ).
func checkAdapterFits(adapterPath string, base *ggml.GGUFFile) (int, error) {
	f, err := ggml.ReadGGUF(adapterPath)
	if err != nil {
		return 0, err
	}
	if f.String("general.type") != "adapter" || f.String("adapter.type") != "lora" {
		return 0, fmt.Errorf("%s: %w: general.type = %q, adapter.type = %q, want \"adapter\" and \"lora\"", adapterPath, ErrNotAdapter, f.String("general.type"), f.String("adapter.type"))
	}
	if a, m := f.Arch(), base.Arch(); a != m {
		return 0, fmt.Errorf("%w: adapter %s is for architecture %q, model %s is %q", ErrAdapterMismatch, adapterPath, a, base.Path, m)
	}
	rank, err := checkAdapterShapes(f, base)
	if err != nil {
		return 0, fmt.Errorf("adapter %s vs model %s: %w", adapterPath, base.Path, err)
	}
	return rank, nil
}
