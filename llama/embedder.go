package llama

/*
#include <stdlib.h>
#include "llama.h"

static struct llama_model * bpo_embedder_load(const char * path) {
	struct llama_model_params p = llama_model_default_params();
	p.n_gpu_layers = 0;
	return llama_model_load_from_file(path, p);
}

static struct llama_context * bpo_embedder_context(struct llama_model * m, int n_ctx, int threads) {
	struct llama_context_params p = llama_context_default_params();
	p.n_ctx = n_ctx;
	p.n_batch = n_ctx;
	p.n_ubatch = n_ctx;
	p.n_seq_max = 1;
	p.embeddings = true;
	p.pooling_type = LLAMA_POOLING_TYPE_NONE;
	p.type_k = GGML_TYPE_F32;
	p.type_v = GGML_TYPE_F32;
	p.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED; // the CPU flash-attention path rounds through f16
	p.kv_unified = true;
	p.n_threads = threads;
	p.n_threads_batch = threads;
	return llama_init_from_model(m, p);
}

// bpo_embedder_decode decodes one sequence (positions 0..n-1), asking for outputs from position first on.
static int bpo_embedder_decode(struct llama_context * c, struct llama_batch * b, const llama_token * toks, int n, int first) {
	llama_memory_clear(llama_get_memory(c), true);
	b->n_tokens = n;
	for (int i = 0; i < n; i++) {
		b->token[i] = toks[i];
		b->pos[i] = i;
		b->n_seq_id[i] = 1;
		b->seq_id[i][0] = 0;
		b->logits[i] = i >= first;
	}
	return llama_decode(c, *b);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"unsafe"
)

// Embedder returns the last-layer hidden states (after the final norm, before the output head) of a
// GGUF model through llama.cpp. It is not safe for concurrent use.
type Embedder struct {
	m      *C.struct_llama_model
	c      *C.struct_llama_context
	batch  C.struct_llama_batch
	nCtx   int
	nEmbd  int
	nVocab int
	path   string
}

// NewEmbedder loads a model for sequences of at most maxTokens tokens.
func NewEmbedder(path string, maxTokens, threads int) (*Embedder, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("ches: %w", err)
	}
	if maxTokens < 2 || threads < 1 {
		return nil, fmt.Errorf("ches: need max tokens >= 2 and threads >= 1, got %d and %d", maxTokens, threads)
	}
	initBackend()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	m := C.bpo_embedder_load(cpath)
	if m == nil {
		return nil, fmt.Errorf("ches: llama.cpp could not load %s", path)
	}
	c := C.bpo_embedder_context(m, C.int(maxTokens), C.int(threads))
	if c == nil {
		C.llama_model_free(m)
		return nil, fmt.Errorf("ches: llama.cpp could not create a context of %d tokens for %s", maxTokens, path)
	}
	e := &Embedder{m: m, c: c, nCtx: maxTokens, path: path,
		nEmbd: int(C.llama_model_n_embd(m)), nVocab: int(C.llama_vocab_n_tokens(C.llama_model_get_vocab(m)))}
	e.batch = C.llama_batch_init(C.int32_t(maxTokens), 0, 1)
	return e, nil
}

// EmbeddingSize is the hidden size.
func (e *Embedder) EmbeddingSize() int { return e.nEmbd }

// Hidden returns the hidden states at the positions that predict each completion token (the last
// prompt token up to the completion's second-to-last token), one row per completion token.
func (e *Embedder) Hidden(prompt, completion []int32) ([][]float32, error) {
	if e.c == nil {
		return nil, errors.New("ches: embedder is closed")
	}
	n := len(prompt) + len(completion)
	switch {
	case len(prompt) == 0 || len(completion) == 0:
		return nil, fmt.Errorf(
			"ches: need a prompt and a completion of >= 1 token, got %d and %d",
			len(prompt),
			len(completion),
		)
	case n-1 > e.nCtx:
		return nil, fmt.Errorf("ches: %d tokens exceed the context of %d", n-1, e.nCtx)
	}
	toks := make([]C.llama_token, n)
	for i, t := range append(append([]int32(nil), prompt...), completion...) {
		if t < 0 || int(t) >= e.nVocab {
			return nil, fmt.Errorf("ches: token %d at position %d is outside the vocabulary of %d", t, i, e.nVocab)
		}
		toks[i] = C.llama_token(t)
	}
	first := len(prompt) - 1
	if rc := C.bpo_embedder_decode(e.c, &e.batch, &toks[0], C.int(n-1), C.int(first)); rc != 0 {
		return nil, fmt.Errorf("ches: llama_decode failed (%d)", int(rc))
	}
	rows := make([][]float32, 0, len(completion))
	for i := first; i < n-1; i++ {
		p := C.llama_get_embeddings_ith(e.c, C.int32_t(i))
		if p == nil {
			return nil, fmt.Errorf("ches: no hidden state at position %d", i)
		}
		rows = append(rows, append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(p)), e.nEmbd)...))
	}
	return rows, nil
}

// SumHidden returns Σ_k h(prompt, completion_<k), the sum of Hidden's rows.
func (e *Embedder) SumHidden(prompt, completion []int32) ([]float64, error) {
	rows, err := e.Hidden(prompt, completion)
	if err != nil {
		return nil, err
	}
	sum := make([]float64, e.nEmbd)
	for _, row := range rows {
		for j, v := range row {
			sum[j] += float64(v)
		}
	}
	return sum, nil
}

// Close frees the model and context.
func (e *Embedder) Close() error {
	if e.c != nil {
		C.llama_batch_free(e.batch)
		C.llama_free(e.c)
		C.llama_model_free(e.m)
		e.c, e.m = nil, nil
	}
	return nil
}
