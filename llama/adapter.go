package llama

/*
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"unsafe"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/lora"
)

// Adapter is a LoRA adapter loaded for a model. It is freed with its model or by Close.
type Adapter struct {
	a     *C.struct_llama_adapter_lora
	model *Model
	path  string
	Alpha float32
	Rank  int
}

// AdapterScale is an adapter applied with a scale (1 = as trained).
type AdapterScale struct {
	Adapter *Adapter
	Scale   float32
}

// LoadAdapter loads a GGUF LoRA adapter for model after checking that it is an adapter
// (ErrNotAdapter) made for the model's architecture and tensor shapes (ErrAdapterMismatch).
func LoadAdapter(model *Model, path string) (*Adapter, error) {
	m, err := model.ptr()
	if err != nil {
		return nil, fmt.Errorf("load adapter: %w", err)
	}
	f, err := ggml.ReadGGUF(path)
	if err != nil {
		return nil, fmt.Errorf("load adapter: %w", err)
	}
	if f.String("general.type") != "adapter" || f.String("adapter.type") != "lora" {
		return nil, fmt.Errorf("load adapter %s: %w: general.type = %q, adapter.type = %q, want \"adapter\" and \"lora\"", path, ErrNotAdapter, f.String("general.type"), f.String("adapter.type"))
	}
	if err := validateAdapterFile(f); err != nil {
		return nil, fmt.Errorf("load adapter %s: %w", path, err)
	}
	if arch := f.Arch(); arch != model.info.Arch {
		return nil, fmt.Errorf("load adapter %s: %w: adapter is for architecture %q, model %s is %q", path, ErrAdapterMismatch, arch, model.path, model.info.Arch)
	}
	rank, err := checkAdapterShapes(f, model.file)
	if err != nil {
		return nil, fmt.Errorf("load adapter %s: %w", path, err)
	}
	if err := checkAdapterValues(path, f); err != nil {
		return nil, fmt.Errorf("load adapter: %w", err)
	}
	alpha, _ := f.Float(lora.KeyAlpha)
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	a := C.llama_adapter_lora_init(m, cpath)
	if a == nil {
		return nil, fmt.Errorf("load adapter %s: llama.cpp rejected it (set BPO_LLAMA_LOG=1 for its log)", path)
	}
	ad := &Adapter{a: a, model: model, path: path, Alpha: float32(alpha), Rank: rank}
	return ad, nil
}

// checkAdapterShapes verifies every lora_a/lora_b pair against its base tensor and returns the rank.
func checkAdapterShapes(adapter, base *ggml.GGUFFile) (int, error) {
	rank := 0
	pairs := 0
	for _, t := range adapter.Tensors {
		name, isA := strings.CutSuffix(t.Name, lora.SuffixA)
		if !isA {
			if _, isB := strings.CutSuffix(t.Name, lora.SuffixB); !isB {
				return 0, fmt.Errorf("%w: tensor %q is neither .lora_a nor .lora_b", ErrAdapterMismatch, t.Name)
			}
			continue
		}
		b, ok := adapter.Tensor(name + lora.SuffixB)
		if !ok {
			return 0, fmt.Errorf("%w: %s.lora_a has no matching .lora_b", ErrAdapterMismatch, name)
		}
		w, ok := base.Tensor(name)
		if !ok {
			return 0, fmt.Errorf("%w: base model has no tensor %q", ErrAdapterMismatch, name)
		}
		if len(t.Shape) != 2 || len(b.Shape) != 2 || len(w.Shape) != 2 {
			return 0, fmt.Errorf("%w: %s: lora tensors and base weight must be 2-D", ErrAdapterMismatch, name)
		}
		nIn, nOut := w.Shape[0], w.Shape[1]
		if name == "token_embd.weight" {
			nIn, nOut = nOut, nIn
		}
		r := t.Shape[1]
		if t.Shape[0] != nIn || b.Shape[0] != r || b.Shape[1] != nOut {
			return 0, fmt.Errorf("%w: %s: lora_a %v and lora_b %v do not fit base weight %v (want [%d r] and [r %d])", ErrAdapterMismatch, name, t.Shape, b.Shape, w.Shape, nIn, nOut)
		}
		if rank != 0 && int(r) != rank {
			rank = -1
		} else if rank == 0 {
			rank = int(r)
		}
		pairs++
	}
	if pairs == 0 {
		return 0, fmt.Errorf("%w: no .lora_a/.lora_b tensors", ErrNotAdapter)
	}
	return rank, nil
}

// Path returns the adapter's file.
func (a *Adapter) Path() string { return a.path }

// Close frees the adapter; contexts must not use it afterwards. Safe to call more than once.
func (a *Adapter) Close() error {
	if a.a != nil && a.model.m != nil {
		C.llama_adapter_lora_free(a.a)
	}
	a.a = nil
	runtime.KeepAlive(a.model)
	return nil
}

// SetAdapters replaces the adapters applied by the context (none: the base model).
func (c *Context) SetAdapters(adapters ...AdapterScale) error {
	if c.c == nil {
		return ErrClosed
	}
	for i, as := range adapters {
		if as.Adapter == nil || as.Adapter.a == nil {
			return fmt.Errorf("set adapters: %w: adapter %d is nil or closed", ErrInvalidArgument, i)
		}
		if as.Adapter.model != c.model {
			return fmt.Errorf("set adapters: %w: adapter %s was loaded for another model", ErrAdapterMismatch, as.Adapter.path)
		}
	}
	C.llama_clear_adapter_lora(c.c)
	for _, as := range adapters {
		if rc := C.llama_set_adapter_lora(c.c, as.Adapter.a, C.float(as.Scale)); rc != 0 {
			C.llama_clear_adapter_lora(c.c)
			return fmt.Errorf("set adapters: llama.cpp refused %s (code %d)", as.Adapter.path, int(rc))
		}
	}
	return nil
}

// checkAdapterValues decodes every tensor of the adapter and refuses NaN or infinite values, which
// would make every log-prob NaN.
func checkAdapterValues(path string, f *ggml.GGUFFile) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	for _, t := range f.Tensors {
		raw := make([]byte, t.Size)
		if _, err := fh.ReadAt(raw, t.Offset); err != nil {
			return fmt.Errorf("%s: tensor %s: %w", path, t.Name, err)
		}
		vals, err := ggml.ToFloat32(t.Type, raw, t.Elements())
		if err != nil {
			return fmt.Errorf("%s: tensor %s: %w", path, t.Name, err)
		}
		if i := slices.IndexFunc(vals, func(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }); i >= 0 {
			return fmt.Errorf("%s: %w: tensor %s element %d is %v, want finite values", path, ErrInvalidArgument, t.Name, i, vals[i])
		}
	}
	return nil
}
