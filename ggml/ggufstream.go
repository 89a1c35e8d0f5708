package ggml

/*
#include <stdlib.h>
#include "ggml.h"
#include "gguf.h"
*/
import "C"

import (
	"fmt"
	"io"
	"unsafe"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// StreamTensor is a tensor whose description goes into the GGUF header and whose data a
// producer hands over only while the file is written, so that a multi-GB model never has
// to sit in memory as a whole.
type StreamTensor struct {
	Name string
	Type GGMLType
	NE   []int64
}

// size is the tensor's data size in bytes.
func (t StreamTensor) size() int64 {
	rows := int64(1)
	for _, d := range t.NE[1:] {
		rows *= d
	}
	return t.Type.RowSize(t.NE[0]) * rows
}

// AddTensorInfo declares a tensor (name, type, ggml shape) without data; WriteStreaming then
// asks for the data in declaration order.
func (w *GGUFWriter) AddTensorInfo(t StreamTensor) error {
	if w.closed {
		return fmt.Errorf("gguf: %w", ErrClosed)
	}
	if w.names[t.Name] {
		return fmt.Errorf("gguf: %w: duplicate tensor %q", ErrInvalidArgument, t.Name)
	}
	if len(t.NE) == 0 || len(t.NE) > 4 {
		return fmt.Errorf("gguf: %w: tensor %q has %d dimensions, want 1..4", ErrInvalidArgument, t.Name, len(t.NE))
	}
	if len(t.Name) >= C.GGML_MAX_NAME {
		return fmt.Errorf("gguf: %w: tensor name %q longer than %d bytes", ErrInvalidArgument, t.Name, C.GGML_MAX_NAME-1)
	}
	if t.Type.BlockSize() <= 0 || t.NE[0]%t.Type.BlockSize() != 0 {
		return fmt.Errorf("gguf: %w: tensor %q row length %d is not a multiple of %s's block size %d", ErrInvalidArgument, t.Name, t.NE[0], t.Type, t.Type.BlockSize())
	}
	meta := C.ggml_init(C.struct_ggml_init_params{mem_size: C.ggml_tensor_overhead(), no_alloc: true})
	w.metas = append(w.metas, meta)
	var cne [4]C.int64_t
	for i, d := range t.NE {
		cne[i] = C.int64_t(d)
	}
	ct := C.ggml_new_tensor(meta, C.enum_ggml_type(t.Type), C.int(len(t.NE)), &cne[0])
	cname := C.CString(t.Name)
	defer C.free(unsafe.Pointer(cname))
	C.ggml_set_name(ct, cname)
	C.gguf_add_tensor(w.g, ct)
	w.names[t.Name] = true
	return nil
}

// WriteStreaming writes the header (metadata and the tensors declared with AddTensorInfo) and
// then each tensor's data as data(i) returns it, each padded to the file's alignment (as ggml's
// own writer does), atomically.
// data must return exactly the declared size of tensor i.
func (w *GGUFWriter) WriteStreaming(path string, tensors []StreamTensor, data func(i int) ([]byte, error)) error {
	if w.closed {
		return fmt.Errorf("gguf: %w", ErrClosed)
	}
	if n := int(C.gguf_get_n_tensors(w.g)); n != len(tensors) {
		return fmt.Errorf("write GGUF %s: %w: %d tensors declared, %d described", path, ErrInvalidArgument, n, len(tensors))
	}
	metaSize := C.gguf_get_meta_size(w.g)
	meta := make([]byte, int(metaSize))
	C.gguf_get_meta_data(w.g, unsafe.Pointer(unsafe.SliceData(meta)))
	align := int64(C.gguf_get_alignment(w.g))
	return atomicfile.WriteFunc(path, func(out io.Writer) error {
		if _, err := out.Write(meta); err != nil {
			return err
		}
		pad := make([]byte, align)
		for i, t := range tensors {
			b, err := data(i)
			if err != nil {
				return err
			}
			if want := t.size(); int64(len(b)) != want {
				return fmt.Errorf("tensor %s: %d bytes of data, want %d", t.Name, len(b), want)
			}
			if _, err := out.Write(b); err != nil {
				return err
			}
			if r := int64(len(b)) % align; r != 0 {
				if _, err := out.Write(pad[:align-r]); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
