package llama

/*
#include <stdint.h>
#include "llama.h"
#include "ggml-backend.h"
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
	"unsafe"

	"github.com/bpo-dev/bpo/ggml"
)

// placementTrace collects where ggml's scheduler put each node of llama.cpp's graph, from the
// buffers the nodes were allocated in (a node lives in a buffer of the backend that computes it; host
// buffers belong to the CPU).
type placementTrace struct {
	device string // the model's ggml device name, e.g. "Vulkan0" ("CPU" for the CPU)
	nodes  []ggml.PlacedNode
	err    error
}

//export bpoPlacementNode
func bpoPlacementNode(node unsafe.Pointer, trace C.uintptr_t) {
	pt := cgo.Handle(trace).Value().(*placementTrace)
	t := (*C.struct_ggml_tensor)(node)
	buf := t.buffer
	if buf == nil && t.view_src != nil {
		buf = t.view_src.buffer
	}
	n := ggml.PlacedNode{Op: C.GoString(C.ggml_op_name(t.op))}
	switch {
	case buf == nil:
		if pt.err == nil {
			pt.err = fmt.Errorf("placement: node %s (%s) has no buffer", C.GoString(&t.name[0]), n.Op)
		}
		return
	case bool(C.ggml_backend_buffer_is_host(buf)):
		n.Backend = "CPU"
	default:
		if dev := C.ggml_backend_buft_get_device(C.ggml_backend_buffer_get_type(buf)); dev != nil {
			n.Backend = C.GoString(C.ggml_backend_dev_name(dev))
		} else {
			n.Backend = C.GoString(C.ggml_backend_buffer_name(buf))
		}
	}
	if n.Backend == "CPU" && pt.device != "CPU" {
		r, err := ggml.CPUReason(node, pt.device)
		if err != nil && pt.err == nil {
			pt.err = err
		}
		n.Reason = r
	}
	pt.nodes = append(pt.nodes, n)
}

// Placement decodes toks (at least 2, one batch) in a new context made with opts and reports where
// ggml's scheduler put each node of llama.cpp's graph: which ops the model's device runs and which
// stay on the CPU, and why (ggml.CPUReason). The placement depends on the batch: ggml offloads the ops
// of weights held by the CPU only for batches of 32 tokens or more.
func (m *Model) Placement(toks []Token, opts ContextOptions) (ggml.Placement, error) {
	if len(toks) < 2 {
		return ggml.Placement{}, fmt.Errorf("placement: %w: need at least 2 tokens, got %d", ErrInvalidArgument, len(toks))
	}
	if err := m.checkTokens(toks); err != nil {
		return ggml.Placement{}, fmt.Errorf("placement: %w", err)
	}
	if opts.NBatch == 0 {
		opts.NBatch = max(512, len(toks))
	}
	if opts.NCtx == 0 {
		opts.NCtx = (len(toks) + 255) / 256 * 256
	}
	if len(toks) > opts.NBatch || len(toks) > opts.NCtx {
		return ggml.Placement{}, fmt.Errorf("placement: %w: %d tokens for a batch of %d and %d KV cells", ErrInvalidArgument, len(toks), opts.NBatch, opts.NCtx)
	}
	pt := &placementTrace{device: m.device.Name}
	if m.device.IsCPU() {
		pt.device = "CPU"
	}
	h := cgo.NewHandle(pt)
	defer h.Delete()
	opts.placement = uintptr(h)
	ctx, err := NewContext(m, opts)
	if err != nil {
		return ggml.Placement{}, fmt.Errorf("placement: %w", err)
	}
	defer ctx.Close()
	batch := make([]batchToken, len(toks))
	for i, tok := range toks {
		batch[i] = batchToken{tok: tok, pos: i, logits: i == len(toks)-1}
	}
	if err := ctx.decode(batch, nil); err != nil {
		return ggml.Placement{}, fmt.Errorf("placement: %w", err)
	}
	if pt.err != nil {
		return ggml.Placement{}, pt.err
	}
	if len(pt.nodes) == 0 {
		return ggml.Placement{}, fmt.Errorf("placement: llama.cpp's scheduler reported no node for %s", m.path)
	}
	return ggml.NewPlacement(pt.device, pt.nodes), nil
}
