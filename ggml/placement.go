package ggml

/*
#include <ctype.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include "ggml.h"
#include "ggml-backend.h"

// bpo_is_custom reports whether a node is a custom op (a C function that only the CPU backend runs).
static int bpo_is_custom(const struct ggml_tensor * t) {
	switch (t->op) {
	case GGML_OP_CUSTOM:
	case GGML_OP_MAP_CUSTOM1:
	case GGML_OP_MAP_CUSTOM2:
	case GGML_OP_MAP_CUSTOM3:
		return 1;
	default:
		return 0;
	}
}

// bpo_pinned reports whether t (or the tensor it views) was allocated before scheduling, outside the
// scheduler's compute buffers, in host memory: weights, a KV cache, LoRA tensors held by the CPU.
static const struct ggml_tensor * bpo_pinned_host(const struct ggml_tensor * t) {
	const struct ggml_tensor * own = t->view_src ? t->view_src : t;
	if (own->buffer && ggml_backend_buffer_get_usage(own->buffer) != GGML_BACKEND_BUFFER_USAGE_COMPUTE &&
	    ggml_backend_buffer_is_host(own->buffer)) {
		return own;
	}
	return NULL;
}

// bpo_generic_name copies a tensor name with every run of digits replaced by N ("cache_k_l3" ->
// "cache_k_lN"), so that the same tensor of every layer gives one reason.
static void bpo_generic_name(const char * name, char * out, size_t n) {
	size_t j = 0;
	for (size_t i = 0; name[i] && j + 1 < n; i++) {
		if (isdigit((unsigned char) name[i])) {
			if (j == 0 || out[j - 1] != 'N') out[j++] = 'N';
			while (isdigit((unsigned char) name[i + 1])) i++;
		} else {
			out[j++] = name[i];
		}
	}
	out[j] = 0;
}

// bpo_cpu_reason writes why node runs on the CPU although dev (not the CPU) could take graphs: the
// first of: it is a custom op; dev does not support the op with these types; it is, views or reads a
// tensor pinned in host memory; it is a graph input; it views a tensor the scheduler put on the CPU;
// else the scheduler kept it with its CPU neighbours (its inputs or consumers are on the CPU).
static void bpo_cpu_reason(const struct ggml_tensor * node, ggml_backend_dev_t dev, char * out, size_t n) {
	char name[GGML_MAX_NAME];
	if (bpo_is_custom(node)) {
		snprintf(out, n, "custom CPU op");
		return;
	}
	if (!ggml_backend_dev_supports_op(dev, node)) {
		int k = snprintf(out, n, "%s does not support it (", ggml_backend_dev_name(dev));
		for (int i = 0, first = 1; i < GGML_MAX_SRC && k > 0 && (size_t) k < n; i++) {
			if (!node->src[i]) continue;
			k += snprintf(out + k, n - k, "%s%s", first ? "" : ", ", ggml_type_name(node->src[i]->type));
			first = 0;
		}
		if (k > 0 && (size_t) k < n) snprintf(out + k, n - k, " -> %s)", ggml_type_name(node->type));
		return;
	}
	const struct ggml_tensor * pinned = bpo_pinned_host(node);
	for (int i = 0; !pinned && i < GGML_MAX_SRC; i++) {
		if (node->src[i]) pinned = bpo_pinned_host(node->src[i]);
	}
	if (pinned) {
		bpo_generic_name(ggml_get_name(pinned), name, sizeof(name));
		snprintf(out, n, "reads %s, held in host memory", name[0] ? name : "an unnamed tensor");
		return;
	}
	if (node->flags & GGML_TENSOR_FLAG_INPUT) {
		snprintf(out, n, "graph input");
		return;
	}
	if (node->view_src) {
		snprintf(out, n, "a view: it goes where the tensor it views is");
		return;
	}
	snprintf(out, n, "supported; kept with its CPU neighbours");
}

// bpo_node_backend names the backend that computes node i of a scheduled graph ("" when the
// scheduler left it unassigned), and writes the CPU reason when that is the CPU and dev is not NULL.
static const char * bpo_sched_node(ggml_backend_sched_t s, struct ggml_cgraph * g, int i, ggml_backend_dev_t dev, char * reason, size_t n) {
	struct ggml_tensor * node = ggml_graph_node(g, i);
	ggml_backend_t b = ggml_backend_sched_get_tensor_backend(s, node);
	reason[0] = 0;
	if (!b) return "";
	if (dev && ggml_backend_dev_type(ggml_backend_get_device(b)) == GGML_BACKEND_DEVICE_TYPE_CPU) {
		bpo_cpu_reason(node, dev, reason, n);
	}
	return ggml_backend_name(b);
}
*/
import "C"

import (
	"cmp"
	"fmt"
	"slices"
	"unsafe"
)

// PlacedNode is one node of a graph as ggml's scheduler placed it.
type PlacedNode struct {
	// Op is ggml's op name ("MUL_MAT", "VIEW", "CUSTOM").
	Op string `json:"op"`
	// Backend computes the node: "CPU", "Vulkan0", ...
	Backend string `json:"backend"`
	// Reason says why a node is on the CPU while a device is scheduled (empty otherwise).
	Reason string `json:"reason,omitempty"`
}

// PlacementRow counts the nodes of one op placed on one backend for one reason.
type PlacementRow struct {
	PlacedNode
	Nodes int `json:"nodes"`
}

// Placement is where ggml's scheduler puts the nodes of one graph, grouped by op, backend and reason.
type Placement struct {
	// Device is the device scheduled besides the CPU ("Vulkan0"), or "CPU" when there is none.
	Device string `json:"device"`
	// Rows are sorted by backend (the device first), then by op.
	Rows []PlacementRow `json:"rows"`
}

// NewPlacement groups nodes scheduled on device (besides the CPU; "CPU" for none) into a Placement.
func NewPlacement(device string, nodes []PlacedNode) Placement {
	count := map[PlacedNode]int{}
	for _, n := range nodes {
		count[n]++
	}
	p := Placement{Device: device}
	for n, c := range count {
		p.Rows = append(p.Rows, PlacementRow{PlacedNode: n, Nodes: c})
	}
	slices.SortFunc(p.Rows, func(a, b PlacementRow) int {
		return cmp.Or(
			cmp.Compare(backendRank(a.Backend, device), backendRank(b.Backend, device)),
			cmp.Compare(a.Op, b.Op), cmp.Compare(a.Backend, b.Backend), cmp.Compare(a.Reason, b.Reason))
	})
	return p
}

// backendRank sorts the device before the CPU and both before anything else.
func backendRank(backend, device string) int {
	switch backend {
	case device:
		return 0
	case "CPU":
		return 1
	}
	return 2
}

// Nodes is the number of nodes placed on backend ("" counts all).
func (p Placement) Nodes(backend string) int {
	n := 0
	for _, r := range p.Rows {
		if backend == "" || r.Backend == backend {
			n += r.Nodes
		}
	}
	return n
}

// CPUReason says why node, a *ggml_tensor of a graph that a scheduler over device (a ggml device
// name such as "Vulkan0") and the CPU placed on the CPU, is there: "custom CPU op", "Vulkan0 does not
// support it (f32, i32 -> f32)", "reads cache_k_lN, held in host memory", "graph input", "a view: it
// goes where the tensor it views is", or "supported; kept with its CPU neighbours". It is for packages that hold C tensors of their own (package llama's
// graph callback); node must stay valid during the call.
func CPUReason(node unsafe.Pointer, device string) (string, error) {
	dev, err := deviceHandle(device)
	if err != nil {
		return "", err
	}
	var buf [160]C.char
	C.bpo_cpu_reason((*C.struct_ggml_tensor)(node), dev, &buf[0], C.size_t(len(buf)))
	return C.GoString(&buf[0]), nil
}

func deviceHandle(name string) (C.ggml_backend_dev_t, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	dev := C.ggml_backend_dev_by_name(cname)
	if dev == nil {
		return nil, fmt.Errorf("placement: %w: no device %q in ggml's registry", ErrDevice, name)
	}
	return dev, nil
}

// Placement reports where the scheduler put each node of gr, which Alloc must have allocated last.
func (s *Scheduler) Placement(gr *Graph) (Placement, error) {
	if s.s == nil {
		return Placement{}, fmt.Errorf("placement: %w: scheduler freed", ErrInvalidArgument)
	}
	device, dev := "CPU", C.ggml_backend_dev_t(nil)
	for _, b := range s.backends {
		if d := C.ggml_backend_get_device(b); C.ggml_backend_dev_type(d) != C.GGML_BACKEND_DEVICE_TYPE_CPU {
			device, dev = C.GoString(C.ggml_backend_dev_name(d)), d
			break
		}
	}
	g := gr.run()
	n := int(C.ggml_graph_n_nodes(g))
	nodes := make([]PlacedNode, 0, n)
	var reason [160]C.char
	for i := range n {
		backend := C.GoString(C.bpo_sched_node(s.s, g, C.int(i), dev, &reason[0], C.size_t(len(reason))))
		if backend == "" {
			return Placement{}, fmt.Errorf("placement: node %d (%s) has no backend: allocate the graph first (Scheduler.Alloc)", i, Tensor{C.ggml_graph_node(g, C.int(i))}.Name())
		}
		nodes = append(nodes, PlacedNode{
			Op:      C.GoString(C.ggml_op_name(C.ggml_graph_node(g, C.int(i)).op)),
			Backend: backend,
			Reason:  C.GoString(&reason[0]),
		})
	}
	return NewPlacement(device, nodes), nil
}
