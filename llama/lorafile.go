package llama

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/lora"
)

// WriteAdapterFile writes a LoRA adapter in the GGUF layout llama.cpp's llama_adapter_lora_init and
// ollama's ADAPTER accept (general.type = adapter, adapter.type = lora), atomically. extra holds
// additional string metadata (e.g. training provenance under "bpo.").
func WriteAdapterFile(path, arch string, alpha float32, tensors []lora.Tensor, extra map[string]string) error {
	if arch == "" {
		return fmt.Errorf("write adapter: %w: empty architecture", ErrInvalidArgument)
	}
	if len(tensors) == 0 {
		return fmt.Errorf("write adapter: %w: no LoRA tensors", ErrInvalidArgument)
	}
	w := ggml.NewGGUFWriter()
	defer w.Close()
	w.SetString("general.architecture", arch)
	w.SetString("general.type", "adapter")
	w.SetString("adapter.type", "lora")
	w.SetFloat32(lora.KeyAlpha, alpha)
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w.SetString(k, extra[k])
	}
	for _, t := range tensors {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("write adapter: %w: %w", ErrInvalidArgument, err)
		}
		if err := w.AddFloat32Tensor(t.Base+lora.SuffixA, ggml.TypeF32, []int64{int64(t.NIn), int64(t.Rank)}, t.A); err != nil {
			return fmt.Errorf("write adapter: %w", err)
		}
		if err := w.AddFloat32Tensor(t.Base+lora.SuffixB, ggml.TypeF32, []int64{int64(t.Rank), int64(t.NOut)}, t.B); err != nil {
			return fmt.Errorf("write adapter: %w", err)
		}
	}
	return w.WriteFile(path)
}

// AdapterFile is the content of a LoRA adapter file.
type AdapterFile struct {
	Arch    string
	Alpha   float32
	Tensors []lora.Tensor
	// Meta holds every string-valued key of the file.
	Meta map[string]string
}

// ReadAdapterFile reads a GGUF LoRA adapter (F32, F16 or quantized tensors, decoded to float32).
func ReadAdapterFile(path string) (*AdapterFile, error) {
	f, err := ggml.ReadGGUF(path)
	if err != nil {
		return nil, fmt.Errorf("read adapter: %w", err)
	}
	if f.String("general.type") != "adapter" || f.String("adapter.type") != "lora" {
		return nil, fmt.Errorf("read adapter %s: %w: general.type = %q, adapter.type = %q", path, ErrNotAdapter, f.String("general.type"), f.String("adapter.type"))
	}
	if err := validateAdapterFile(f); err != nil {
		return nil, fmt.Errorf("read adapter %s: %w", path, err)
	}
	if err := checkAdapterValues(path, f); err != nil {
		return nil, fmt.Errorf("read adapter: %w", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read adapter: %w", err)
	}
	alpha, _ := f.Float(lora.KeyAlpha)
	out := &AdapterFile{Arch: f.Arch(), Alpha: float32(alpha), Meta: map[string]string{}}
	for k, v := range f.KV {
		if s, ok := v.(string); ok {
			out.Meta[k] = s
		}
	}
	decode := func(t ggml.GGUFTensor) ([]float32, error) {
		if t.Offset < 0 || t.Offset+t.Size > int64(len(raw)) {
			return nil, fmt.Errorf("read adapter %s: %w: tensor %s data outside the file", path, ErrNotGGUF, t.Name)
		}
		return ggml.ToFloat32(t.Type, raw[t.Offset:t.Offset+t.Size], t.Elements())
	}
	for _, ta := range f.Tensors {
		base, ok := strings.CutSuffix(ta.Name, lora.SuffixA)
		if !ok {
			continue
		}
		tb, ok := f.Tensor(base + lora.SuffixB)
		if !ok || len(ta.Shape) != 2 || len(tb.Shape) != 2 || ta.Shape[1] != tb.Shape[0] {
			return nil, fmt.Errorf("read adapter %s: %w: %s has no matching 2-D lora_b", path, ErrAdapterMismatch, base)
		}
		lt := lora.Tensor{Base: base, Rank: int(ta.Shape[1]), NIn: int(ta.Shape[0]), NOut: int(tb.Shape[1])}
		if lt.A, err = decode(ta); err != nil {
			return nil, err
		}
		if lt.B, err = decode(tb); err != nil {
			return nil, err
		}
		out.Tensors = append(out.Tensors, lt)
	}
	if len(out.Tensors) == 0 {
		return nil, fmt.Errorf("read adapter %s: %w: no lora tensors", path, ErrNotAdapter)
	}
	return out, nil
}
