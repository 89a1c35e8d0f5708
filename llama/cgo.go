package llama

/*
#cgo CPPFLAGS: -I${SRCDIR}/../third_party/include
#cgo CXXFLAGS: -std=c++17
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"sync"

	_ "github.com/ollama/ollama/llama/llama.cpp/src"
)

var backendOnce sync.Once

// initBackend initialises llama.cpp's backends once per process.
func initBackend() {
	backendOnce.Do(func() {
		C.llama_backend_init()
	})
}
