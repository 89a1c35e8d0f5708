package llama

import (
	"fmt"
	"os"

	"github.com/bpo-dev/bpo/ggml"
)

// WriteModelWithTensors writes a copy of the GGUF model at basePath to path (atomically), replacing
// the data of the tensors named in values (written as F32; used after full-parameter training).
// Every other tensor and all metadata are copied unchanged.
func WriteModelWithTensors(basePath, path string, values map[string][]float32) error {
	f, err := ggml.ReadGGUF(basePath)
	if err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	for name := range values {
		if _, ok := f.Tensor(name); !ok {
			return fmt.Errorf("write model: %w: %s has no tensor %s", ErrInvalidArgument, basePath, name)
		}
	}
	fh, err := os.Open(basePath)
	if err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	defer fh.Close()
	w := ggml.NewGGUFWriter()
	defer w.Close()
	if err := w.CopyKV(basePath); err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	for _, t := range f.Tensors {
		if v, ok := values[t.Name]; ok {
			if err := w.AddFloat32Tensor(t.Name, ggml.TypeF32, t.Shape, v); err != nil {
				return fmt.Errorf("write model: %w", err)
			}
			continue
		}
		buf := make([]byte, t.Size)
		if _, err := fh.ReadAt(buf, t.Offset); err != nil {
			return fmt.Errorf("write model: read %s: %w", t.Name, err)
		}
		if err := w.AddTensor(t.Name, t.Type, t.Shape, buf); err != nil {
			return fmt.Errorf("write model: %w", err)
		}
	}
	return w.WriteFile(path)
}
