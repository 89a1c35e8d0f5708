package llama

/*
#cgo CPPFLAGS: -I${SRCDIR}/../third_party/include
#cgo CXXFLAGS: -std=c++17
#include <stdio.h>
#include <stdlib.h>
#include "llama.h"

// bpo_log_verbose is written once at start-up from Go (see initBackend) before any model loads.
static int bpo_log_verbose = 0;

static void bpo_log(enum ggml_log_level level, const char * text, void * user_data) {
	(void) user_data;
	if (bpo_log_verbose || level == GGML_LOG_LEVEL_ERROR) {
		fputs(text, stderr);
	}
}

static void bpo_log_init(int verbose) {
	bpo_log_verbose = verbose;
	llama_log_set(bpo_log, NULL);
}
*/
import "C"

import (
	"os"
	"sync"

	_ "github.com/ollama/ollama/llama/llama.cpp/src"
)

var backendOnce sync.Once

// initBackend initialises llama.cpp's backends once per process. llama.cpp and ggml log only errors unless
// the environment variable BPO_LLAMA_LOG is set to a non-empty value.
func initBackend() {
	backendOnce.Do(func() {
		verbose := 0
		if os.Getenv("BPO_LLAMA_LOG") != "" {
			verbose = 1
		}
		C.bpo_log_init(C.int(verbose))
		C.llama_backend_init()
	})
}
