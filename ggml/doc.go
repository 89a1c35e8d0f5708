// Package ggml is the cgo layer over ggml: a thin tensor/graph API with the project's custom CPU ops,
// the CPU backend and scheduler, compute-thread selection, tensor type conversion, and GGUF reading
// (pure Go) and writing (ggml's gguf writer).
//
// It and package llama are the only packages of the project that import "C".
package ggml
