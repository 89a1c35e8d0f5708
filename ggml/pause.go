package ggml

/*
#include <stdbool.h>
#include <stdint.h>
#include "ggml.h"
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// pauseState is what the scheduler's eval callback of ComputePaused sees: the node to stop after, the
// caller's function and its outcome.
type pauseState struct {
	at    *C.struct_ggml_tensor
	fn    func() error
	err   error
	fired bool
}

// bpoPauseCallback is ggml's scheduler eval callback for ComputePaused. Asked whether it needs a node's
// data, it answers yes only for the pause node, so the scheduler computes each split in one piece up
// to that node, synchronizes, and calls back with the data ready; then the caller's function runs
// before any later node is computed.
//
//export bpoPauseCallback
func bpoPauseCallback(t *C.struct_ggml_tensor, ask C.bool, userData unsafe.Pointer) C.bool {
	st := cgo.Handle(*(*C.uintptr_t)(userData)).Value().(*pauseState)
	if t != st.at {
		return C.bool(false)
	}
	if bool(ask) {
		return C.bool(true)
	}
	if !st.fired {
		st.fired = true
		st.err = st.fn()
	}
	return C.bool(true)
}
