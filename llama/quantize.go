package llama

/*
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"unsafe"

	"github.com/bpo-dev/bpo/ggml"
)

// QuantizeModel re-encodes a GGUF model with llama.cpp's quantizer (llama_model_quantize) as typ
// (F16, Q8_0, Q4_0, Q4_K (Q4_K_M), Q6_K), writing out atomically.
func QuantizeModel(in, out string, typ ggml.GGMLType, threads int) error {
	if err := CheckModelFile(in); err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	ftype := ggml.FileTypeFor(typ)
	if ftype == 0 && typ != ggml.TypeF32 {
		return fmt.Errorf("quantize: %w: no llama.cpp file type for %s", ErrInvalidArgument, typ)
	}
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp*")
	if err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName)
	initBackend()
	p := C.llama_model_quantize_default_params()
	p.nthread = C.int32_t(threads)
	p.ftype = C.enum_llama_ftype(ftype)
	p.allow_requantize = true
	cin, cout := C.CString(in), C.CString(tmpName)
	defer C.free(unsafe.Pointer(cin))
	defer C.free(unsafe.Pointer(cout))
	if rc := C.llama_model_quantize(cin, cout, &p); rc != 0 {
		return fmt.Errorf("quantize %s to %s: llama.cpp failed (code %d; set BPO_LLAMA_LOG=1 for its log)", in, typ, uint32(rc))
	}
	if err := ggml.SyncFile(tmpName); err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	return os.Rename(tmpName, out)
}
