package llama

/*
#cgo CPPFLAGS: -I${SRCDIR}/../third_party/include
#cgo CXXFLAGS: -std=c++17
#include "llama.h"

// bpo_llama_init hands llama.cpp the log callback package ggml installed, then initialises it.
static void bpo_llama_init(void) {
	ggml_log_callback cb;
	void * user_data;
	ggml_log_get(&cb, &user_data);
	llama_log_set(cb, user_data);
	llama_backend_init();
}
*/
import "C"

import (
	"sync"

	_ "github.com/ollama/ollama/llama/llama.cpp/src"

	"github.com/bpo-dev/bpo/ggml"
)

var backendOnce sync.Once

// initBackend initialises ggml (see ggml.Init: its log callback prints only errors unless
// BPO_LLAMA_LOG is set) and then llama.cpp, once per process; llama.cpp logs through the same
// callback.
func initBackend() {
	backendOnce.Do(func() {
		ggml.Init()
		C.bpo_llama_init()
	})
}
