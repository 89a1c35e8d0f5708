package ggml

/*
#cgo CPPFLAGS: -I${SRCDIR}/../third_party/include
#cgo CXXFLAGS: -std=c++17
#include <stdio.h>
#include "ggml.h"

// bpo_ggml_log_verbose is written once at start-up from Go (see Init).
static int bpo_ggml_log_verbose = 0;

static void bpo_ggml_log(enum ggml_log_level level, const char * text, void * user_data) {
	(void) user_data;
	if (bpo_ggml_log_verbose || level == GGML_LOG_LEVEL_ERROR) {
		fputs(text, stderr);
	}
}

// bpo_ggml_init sets the log callback and initialises ggml's timer and f16 tables (what
// llama_backend_init does, without llama.cpp).
static void bpo_ggml_init(int verbose) {
	bpo_ggml_log_verbose = verbose;
	ggml_log_set(bpo_ggml_log, NULL);
	ggml_time_init();
	struct ggml_init_params params = { 0, NULL, false };
	struct ggml_context * ctx = ggml_init(params);
	ggml_free(ctx);
}
*/
import "C"

import (
	"os"
	"sync"

	// The ggml library itself (built with llama.cpp by the pinned ollama module).
	_ "github.com/ollama/ollama/llama/llama.cpp/src"
)

var backendOnce sync.Once

// Init initialises ggml once per process (package llama calls it before llama.cpp starts; everything
// in this package calls it itself). ggml, and llama.cpp through the same callback, log only errors
// unless the environment variable BPO_LLAMA_LOG is set to a non-empty value.
func Init() {
	backendOnce.Do(func() {
		verbose := 0
		if os.Getenv("BPO_LLAMA_LOG") != "" {
			verbose = 1
		}
		C.bpo_ggml_init(C.int(verbose))
	})
}
