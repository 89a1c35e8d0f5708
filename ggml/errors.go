package ggml

import "errors"

// Errors returned (wrapped with details) by the ggml layer and the layers above it (package llama
// re-exports them). Test with errors.Is.
var (
	// ErrNotGGUF means a file is not a readable GGUF file.
	ErrNotGGUF = errors.New("not a GGUF file")
	// ErrUnsupportedArch means the model's general.architecture is not one the bridge supports.
	ErrUnsupportedArch = errors.New("unsupported model architecture")
	// ErrTokenOutOfRange means a token id is negative or not below the vocabulary size.
	ErrTokenOutOfRange = errors.New("token id out of range")
	// ErrContextOverflow means a sequence does not fit in the context window.
	ErrContextOverflow = errors.New("context overflow")
	// ErrAdapterMismatch means a LoRA adapter was made for another architecture or shape.
	ErrAdapterMismatch = errors.New("adapter does not match the model")
	// ErrNotAdapter means a GGUF file is not a LoRA adapter.
	ErrNotAdapter = errors.New("not a LoRA adapter")
	// ErrClosed means a model or context was used after Close.
	ErrClosed = errors.New("use of closed model or context")
	// ErrNotFinite means the model computed NaN or infinite values (corrupt weights or adapter).
	ErrNotFinite = errors.New("non-finite model output")
	// ErrInvalidArgument means an option or input is out of its valid range.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrDevice means a device problem: an unknown device name, a backend library that is missing or
	// from another build, or a device that cannot hold or run the work.
	ErrDevice = errors.New("device error")
)
