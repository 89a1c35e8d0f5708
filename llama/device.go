package llama

/*
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/bpo-dev/bpo/ggml"
)

// modelDevice resolves ModelOptions.Device for a model file (see ggml.ResolveDevice) and returns the
// NULL-terminated device list for llama_model_params (C memory; the caller frees it; nil for a
// vocab-only load). For the CPU the list is empty: without a list llama.cpp would take every GPU of the
// loaded backend libraries and offload large batches of a CPU model's ops to them. For another device
// it first checks that the weights fit the device's free memory (a clear error instead of a failed
// allocation deep in C).
func modelDevice(f *ggml.GGUFFile, opts ModelOptions) (ggml.DeviceInfo, *C.ggml_backend_dev_t, error) {
	dev, err := ggml.ResolveDevice(opts.Device)
	if err != nil || opts.VocabOnly {
		return dev, nil, err
	}
	var h C.ggml_backend_dev_t
	if !dev.IsCPU() {
		var weights uint64
		for _, t := range f.Tensors {
			weights += uint64(t.Size)
		}
		if err := ggml.CheckDeviceMemory(dev, weights); err != nil {
			return dev, nil, err
		}
		cname := C.CString(dev.Name)
		defer C.free(unsafe.Pointer(cname))
		if h = C.ggml_backend_dev_by_name(cname); h == nil {
			return dev, nil, fmt.Errorf("%w: device %s disappeared from ggml's registry", ErrDevice, dev.Name)
		}
	}
	list := (*C.ggml_backend_dev_t)(C.calloc(2, C.size_t(unsafe.Sizeof(h))))
	if list == nil {
		return dev, nil, fmt.Errorf("%w: out of host memory", ErrDevice)
	}
	unsafe.Slice(list, 2)[0] = h
	return dev, list, nil
}

// deviceLoadError is the error of a model that llama.cpp could not load onto a device.
func deviceLoadError(path string, dev ggml.DeviceInfo) error {
	return fmt.Errorf("load model %s: %w: llama.cpp could not load it onto %s (%s; out of device memory? set BPO_LLAMA_LOG=1 for its log)",
		path, ErrDevice, strings.ToLower(dev.Name), dev.Description)
}

// Device is the device that holds the model's weights and runs its inference.
func (m *Model) Device() ggml.DeviceInfo { return m.device }
