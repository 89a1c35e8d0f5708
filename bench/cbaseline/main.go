// Command cbaseline is the C baseline of the bridge benchmark: a plain C program (cbaseline.c) that
// calls llama.cpp directly to do the work of a bench work file (see bench/bridge/work.go) and prints
// one JSON measurement line. The Go main only passes its arguments to the C function; the blank import
// links the same llama.cpp/ggml build, with the same cgo flags, as the Go bridge.
//
//	cbaseline WORKFILE
package main

/*
#cgo CPPFLAGS: -I${SRCDIR}/../../third_party/include
#cgo CXXFLAGS: -std=c++17
#cgo LDFLAGS: -lm
#include <stdlib.h>
int bpo_cbaseline_main(int argc, char ** argv);
*/
import "C"

import (
	"os"
	"unsafe"

	_ "github.com/ollama/ollama/llama/llama.cpp/src"
)

func main() {
	argv := make([]*C.char, len(os.Args))
	for i, a := range os.Args {
		argv[i] = C.CString(a)
	}
	rc := C.bpo_cbaseline_main(C.int(len(argv)), (**C.char)(unsafe.Pointer(&argv[0])))
	os.Exit(int(rc))
}
