package llama

/*
#include <stdlib.h>
#include "llama.h"

static void bpo_batch_add(struct llama_batch * b, llama_token tok, llama_pos pos, llama_seq_id seq, bool logits) {
	int i = b->n_tokens;
	b->token[i] = tok;
	b->pos[i] = pos;
	b->n_seq_id[i] = 1;
	b->seq_id[i][0] = seq;
	b->logits[i] = logits;
	b->n_tokens = i + 1;
}

// The abort flag is polled by ggml between graph nodes, so a cancelled decode stops within one node
// instead of running to the end of a (possibly long) batch.
static bool bpo_abort_cb(void * data) { return __atomic_load_n((int *) data, __ATOMIC_RELAXED) != 0; }
static int * bpo_abort_flag(struct llama_context * c) {
	int * f = (int *) calloc(1, sizeof(int));
	if (f) llama_set_abort_callback(c, bpo_abort_cb, f);
	return f;
}
static void bpo_abort_set(int * f, int v) { __atomic_store_n(f, v, __ATOMIC_RELAXED); }
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/bpo-dev/bpo/ggml"
)

// ContextOptions configure NewContext. Zero values pick defaults.
type ContextOptions struct {
	// NCtx is the number of KV-cache cells shared by all sequences (default min(4096, training context)).
	NCtx int
	// NBatch is the most tokens sent to one llama_decode call (default 512).
	NBatch int
	// NSeq is the most sequences decoded in parallel (default 8).
	NSeq int
	// Threads is the number of CPU threads (default: ggml.DefaultThreads()).
	Threads int
	// KVF16 stores the KV cache in F16 (half the memory) instead of F32 (exact log-probs). On a
	// device other than the CPU it also decides where attention runs: with KVF16 the cache and the
	// attention ops stay on the device (fast; K and Q are rounded to F16, as the CPU rounds them for
	// an F16 cache); without it they run on the host, because ggml-vulkan would round the F32 K and Q
	// to F16 (see NewContext).
	KVF16 bool

	// trace, when set, records every graph node's output (tests comparing backends; see nodeTrace).
	trace *nodeTrace
	// placement, when not 0, is the cgo.Handle of a *placementTrace that collects where the
	// scheduler put each node (Model.Placement).
	placement uintptr
}

// Context is a llama.cpp inference context: a KV cache and the state to decode batches. A Context is
// not safe for concurrent use; make one per goroutine.
type Context struct {
	c      *C.struct_llama_context
	model  *Model
	nCtx   int
	nBatch int
	nSeq   int
	batch  C.struct_llama_batch
	nVocab int
	abort  *C.int // set while a decode should stop (see abortOn)
}

// NewContext creates an inference context for model.
func NewContext(model *Model, opts ContextOptions) (*Context, error) {
	m, err := model.ptr()
	if err != nil {
		return nil, fmt.Errorf("new context: %w", err)
	}
	if model.info.Layers == 0 {
		return nil, fmt.Errorf("new context: %w: model %s was loaded vocab-only", ErrInvalidArgument, model.path)
	}
	if opts.NCtx < 0 || opts.NBatch < 0 || opts.NSeq < 0 || opts.Threads < 0 {
		return nil, fmt.Errorf("new context: %w: negative size in %+v", ErrInvalidArgument, opts)
	}
	if cpus := runtime.NumCPU(); opts.Threads > cpus {
		// ggml's workers spin-wait: more threads than CPUs only slow decoding down.
		return nil, fmt.Errorf("new context: %w: %d threads for %d logical CPUs", ErrInvalidArgument, opts.Threads, cpus)
	}
	if opts.NCtx == 0 {
		opts.NCtx = 4096
		if t := model.info.ContextLength; t > 0 && t < opts.NCtx {
			opts.NCtx = t
		}
	}
	if opts.NBatch == 0 {
		opts.NBatch = 512
	}
	if opts.NSeq == 0 {
		opts.NSeq = 8
	}
	if opts.NSeq > maxSequences {
		return nil, fmt.Errorf("new context: %w: %d parallel sequences, llama.cpp allows at most %d", ErrInvalidArgument, opts.NSeq, maxSequences)
	}
	if opts.Threads == 0 {
		opts.Threads = ggml.DefaultThreads()
	}
	p := C.llama_context_default_params()
	p.n_ctx = C.uint32_t(opts.NCtx)
	p.n_batch = C.uint32_t(opts.NBatch)
	p.n_ubatch = C.uint32_t(opts.NBatch)
	if model.device.Backend == "Vulkan" {
		p.n_ubatch = C.uint32_t(min(opts.NBatch, vulkanMaxUbatch(model.info.VocabSize, opts.NCtx, model.info.Heads, opts.KVF16)))
	}
	p.n_seq_max = C.uint32_t(opts.NSeq)
	p.n_threads = C.int32_t(opts.Threads)
	p.n_threads_batch = C.int32_t(opts.Threads)
	p.kv_unified = true
	p.no_perf = true
	p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_DISABLED
	if !opts.KVF16 {
		p.type_k = C.GGML_TYPE_F32
		p.type_v = C.GGML_TYPE_F32
		if !model.device.IsCPU() {
			// Exact log-probs: ggml-vulkan multiplies matrices whose rows are not contiguous in F16
			// (ggml_vk_mul_mat_q_f16 copies such an F32 operand to F16 first), and K·Q reads both K
			// (a view of the cache) and Q (permuted) that way in every layer of a batch of 2+ tokens:
			// 7e-3 in log-probs. With the cache and the attention ops on the host, the weights'
			// products stay on the device and the log-probs match the CPU's to 2e-5
			// (TestVulkanLogProbsMatchCPU, TestVulkanNodesMatchCPU).
			p.offload_kqv = false
		}
	}
	switch {
	case opts.trace != nil:
		opts.trace.attach(&p)
	case opts.placement != 0:
		attachPlacement(&p, opts.placement)
	}
	c := C.llama_init_from_model(m, p)
	if c == nil {
		return nil, fmt.Errorf("new context for %s: llama.cpp could not create it (n_ctx %d; out of memory?)", model.path, opts.NCtx)
	}
	ctx := &Context{
		c: c, model: model,
		nCtx: int(C.llama_n_ctx(c)), nBatch: int(C.llama_n_batch(c)), nSeq: opts.NSeq,
		batch:  C.llama_batch_init(C.int32_t(opts.NBatch), 0, 1),
		nVocab: model.info.VocabSize,
		abort:  C.bpo_abort_flag(c),
	}
	runtime.SetFinalizer(ctx, (*Context).Close)
	return ctx, nil
}

// Close frees the context. It is safe to call more than once.
func (c *Context) Close() error {
	if c.c != nil {
		C.llama_batch_free(c.batch)
		C.llama_free(c.c)
		C.free(unsafe.Pointer(c.abort))
		c.c, c.abort = nil, nil
		runtime.SetFinalizer(c, nil)
	}
	return nil
}

// Model returns the context's model.
func (c *Context) Model() *Model { return c.model }

// NCtx is the number of KV-cache cells.
func (c *Context) NCtx() int { return c.nCtx }

// NSeq is the most sequences decoded in parallel.
func (c *Context) NSeq() int { return c.nSeq }

// NBatch is the most tokens per decode call.
func (c *Context) NBatch() int { return c.nBatch }

// abortOn makes decodes stop early once ctx is done (Ctrl-C during a long decode); call the returned
// function when the work is over.
func (c *Context) abortOn(ctx context.Context) (stop func()) {
	if c.abort == nil {
		return func() {}
	}
	C.bpo_abort_set(c.abort, 0)
	if ctx.Done() == nil {
		return func() {}
	}
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-ctx.Done():
			C.bpo_abort_set(c.abort, 1)
		case <-done:
		}
	}()
	// Wait for the watcher, so that it cannot raise the flag during a later call.
	return func() { close(done); <-exited }
}

// errAborted is what decode returns when abortOn's context ended during it.
var errAborted = errors.New("decode: aborted")

// batchToken is one token of a decode batch.
type batchToken struct {
	tok    Token
	pos    int
	seq    int
	logits bool
}

// decode runs one llama_decode over toks (at most nBatch) and calls onLogits for each token that asked
// for logits, with its index in toks and the logits row (valid only during the call).
func (c *Context) decode(toks []batchToken, onLogits func(i int, row []float32)) error {
	if c.c == nil {
		return ErrClosed
	}
	if len(toks) > c.nBatch {
		return fmt.Errorf("decode: %w: %d tokens in one batch, max %d", ErrInvalidArgument, len(toks), c.nBatch)
	}
	c.batch.n_tokens = 0
	for _, t := range toks {
		C.bpo_batch_add(&c.batch, C.llama_token(t.tok), C.llama_pos(t.pos), C.llama_seq_id(t.seq), C.bool(t.logits))
	}
	rc := C.llama_decode(c.c, c.batch)
	switch {
	case rc == 1:
		return fmt.Errorf("decode: %w: no free KV-cache slot for %d tokens (n_ctx %d)", ErrContextOverflow, len(toks), c.nCtx)
	case rc == 2:
		return errAborted
	case rc != 0:
		return fmt.Errorf("decode: llama_decode failed with code %d (set BPO_LLAMA_LOG=1 for its log)", int(rc))
	}
	if onLogits == nil {
		return nil
	}
	for i, t := range toks {
		if !t.logits {
			continue
		}
		p := C.llama_get_logits_ith(c.c, C.int32_t(i))
		if p == nil {
			return fmt.Errorf("decode: no logits for batch row %d", i)
		}
		onLogits(i, unsafeFloats(p, c.nVocab))
	}
	return nil
}

// clearMemory empties the KV cache.
func (c *Context) clearMemory() {
	C.llama_memory_clear(C.llama_get_memory(c.c), true)
}

// removeSeq drops a sequence from the KV cache.
func (c *Context) removeSeq(seq int) {
	C.llama_memory_seq_rm(C.llama_get_memory(c.c), C.llama_seq_id(seq), -1, -1)
}

// copySeq makes the cells of seq src (positions [0, upTo)) also belong to seq dst.
func (c *Context) copySeq(src, dst, upTo int) {
	C.llama_memory_seq_cp(C.llama_get_memory(c.c), C.llama_seq_id(src), C.llama_seq_id(dst), 0, C.llama_pos(upTo))
}

// maxSequences is llama.cpp's LLAMA_MAX_SEQ (src/llama-cparams.h, not in the public header).
const maxSequences = 256

// vulkanStorageRange is the size a Vulkan device must let a shader address in one storage buffer
// (maxStorageBufferRange: at least 2^27 bytes by the Vulkan specification, exactly that on lavapipe).
// ggml-vulkan binds each tensor with at most that range, and a product whose result is larger comes
// out wrong without an error: the rows past 128 MiB of a batch's logits (221 rows of qwen2's 151,936
// F32 logits) were hundreds of nats off. ggml does not report a device's own limit, so the bound is
// the one every device meets.
const vulkanStorageRange = 1 << 27

// vulkanMaxUbatch is the most tokens per llama.cpp micro-batch on a Vulkan device such that the
// batch's logits (nVocab F32 values a token) and, with the attention on the device (an F16 cache),
// its K·Q scores (nCtx cells for each of nHeads heads a token) fit vulkanStorageRange.
func vulkanMaxUbatch(nVocab, nCtx, nHeads int, deviceAttention bool) int {
	perToken := 4 * nVocab
	if deviceAttention {
		perToken = max(perToken, 4*nCtx*nHeads)
	}
	return max(1, vulkanStorageRange/max(perToken, 1))
}
