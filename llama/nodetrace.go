package llama

/*
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include "llama.h"
#include "ggml-backend.h"

// One graph node's output, copied from its backend buffer after the node was computed.
typedef struct {
	char name[GGML_MAX_NAME];
	char backend[32];
	int op;
	int type;
	int64_t ne[4];
	size_t nbytes;
	void * data;
} bpo_trace_node;

typedef struct {
	bpo_trace_node * nodes;
	int n, cap;
	int failed; // out of host memory: the trace is incomplete
} bpo_trace;

// bpo_trace_cb is llama.cpp's cb_eval: asked first whether a node is wanted (every node is), then
// called once the node has been computed.
static bool bpo_trace_cb(struct ggml_tensor * t, bool ask, void * user_data) {
	bpo_trace * tr = (bpo_trace *) user_data;
	if (ask) return true;
	if (tr->failed) return true;
	// ggml_backend_tensor_get aborts on a tensor without memory: skip one (none is expected here).
	if (!(t->view_src ? t->view_src->buffer : t->buffer) || !t->data) return true;
	if (tr->n == tr->cap) {
		int cap = tr->cap ? 2 * tr->cap : 256;
		bpo_trace_node * nodes = (bpo_trace_node *) realloc(tr->nodes, (size_t) cap * sizeof(bpo_trace_node));
		if (!nodes) { tr->failed = 1; return true; }
		tr->nodes = nodes;
		tr->cap = cap;
	}
	bpo_trace_node * n = &tr->nodes[tr->n];
	memset(n, 0, sizeof(*n));
	strncpy(n->name, ggml_get_name(t), sizeof(n->name) - 1);
	if (t->buffer) strncpy(n->backend, ggml_backend_buffer_name(t->buffer), sizeof(n->backend) - 1);
	n->op = (int) t->op;
	n->type = (int) t->type;
	for (int i = 0; i < 4; i++) n->ne[i] = t->ne[i];
	n->nbytes = ggml_nbytes(t);
	n->data = malloc(n->nbytes ? n->nbytes : 1);
	if (!n->data) { tr->failed = 1; return true; }
	ggml_backend_tensor_get(t, n->data, 0, n->nbytes);
	tr->n++;
	return true;
}

static bpo_trace * bpo_trace_new(void) { return (bpo_trace *) calloc(1, sizeof(bpo_trace)); }

static void bpo_trace_reset(bpo_trace * tr) {
	for (int i = 0; i < tr->n; i++) free(tr->nodes[i].data);
	tr->n = 0;
	tr->failed = 0;
}

static void bpo_trace_free(bpo_trace * tr) {
	if (!tr) return;
	bpo_trace_reset(tr);
	free(tr->nodes);
	free(tr);
}

static void bpo_trace_attach(struct llama_context_params * p, bpo_trace * tr) {
	p->cb_eval = bpo_trace_cb;
	p->cb_eval_user_data = tr;
}

// bpo_placement_cb is the cb_eval of a placement trace (placement.go): it hands every node to Go when
// asked about it and wants none, so the scheduler computes its splits whole, as without a callback.
extern void bpoPlacementNode(void * node, uintptr_t trace);
static bool bpo_placement_cb(struct ggml_tensor * t, bool ask, void * user_data) {
	if (ask) bpoPlacementNode(t, (uintptr_t) user_data);
	return false;
}

static void bpo_placement_attach(struct llama_context_params * p, uintptr_t trace) {
	p->cb_eval = bpo_placement_cb;
	p->cb_eval_user_data = (void *) trace;
}
*/
import "C"

import (
	"errors"
	"unsafe"

	"github.com/bpo-dev/bpo/ggml"
)

// nodeTrace records the output of every node of llama.cpp's graph as it is computed (llama.cpp's
// cb_eval). It makes ggml's scheduler compute one node at a time, so a traced decode is slow and
// unfused: it is for finding where two backends part ways, not for production.
type nodeTrace struct {
	tr *C.bpo_trace
}

// tracedNode is one computed graph node: its name (e.g. "attn_norm-0"), op, type, shape, the buffer
// that held it and its raw bytes.
type tracedNode struct {
	Name, Backend string
	Op            string
	Type          ggml.GGMLType
	Shape         [4]int64
	Data          []byte
}

func newNodeTrace() *nodeTrace { return &nodeTrace{tr: C.bpo_trace_new()} }

// attach makes p's context report to the trace.
func (n *nodeTrace) attach(p *C.struct_llama_context_params) { C.bpo_trace_attach(p, n.tr) }

// take returns the nodes recorded since the last take and forgets them.
func (n *nodeTrace) take() ([]tracedNode, error) {
	if n.tr == nil {
		return nil, errors.New("node trace: closed")
	}
	defer C.bpo_trace_reset(n.tr)
	if n.tr.failed != 0 {
		return nil, errors.New("node trace: out of host memory while copying node outputs")
	}
	raw := unsafe.Slice(n.tr.nodes, int(n.tr.n))
	out := make([]tracedNode, len(raw))
	for i := range raw {
		r := &raw[i]
		out[i] = tracedNode{
			Name:    C.GoString(&r.name[0]),
			Backend: C.GoString(&r.backend[0]),
			Op:      C.GoString(C.ggml_op_name(C.enum_ggml_op(r.op))),
			Type:    ggml.GGMLType(r._type),
			Shape:   [4]int64{int64(r.ne[0]), int64(r.ne[1]), int64(r.ne[2]), int64(r.ne[3])},
			Data:    C.GoBytes(r.data, C.int(r.nbytes)),
		}
	}
	return out, nil
}

// attachPlacement makes p's context hand its graph's nodes to the placement trace behind handle (a
// cgo.Handle of a *placementTrace; see Model.Placement).
func attachPlacement(p *C.struct_llama_context_params, handle uintptr) {
	C.bpo_placement_attach(p, C.uintptr_t(handle))
}

func (n *nodeTrace) close() {
	C.bpo_trace_free(n.tr)
	n.tr = nil
}
