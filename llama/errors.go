package llama

import "github.com/bpo-dev/bpo/ggml"

// Errors returned (wrapped with details) by the bridge. Test with errors.Is. They are the ggml
// package's values, so errors from every layer match the same sentinel.
var (
	// ErrNotGGUF means a file is not a readable GGUF file.
	ErrNotGGUF = ggml.ErrNotGGUF
	// ErrUnsupportedArch means the model's general.architecture is not one the bridge supports.
	ErrUnsupportedArch = ggml.ErrUnsupportedArch
	// ErrTokenOutOfRange means a token id is negative or not below the vocabulary size.
	ErrTokenOutOfRange = ggml.ErrTokenOutOfRange
	// ErrContextOverflow means a sequence does not fit in the context window.
	ErrContextOverflow = ggml.ErrContextOverflow
	// ErrAdapterMismatch means a LoRA adapter was made for another architecture or shape.
	ErrAdapterMismatch = ggml.ErrAdapterMismatch
	// ErrNotAdapter means a GGUF file is not a LoRA adapter.
	ErrNotAdapter = ggml.ErrNotAdapter
	// ErrClosed means a model or context was used after Close.
	ErrClosed = ggml.ErrClosed
	// ErrNotFinite means the model computed NaN or infinite values (corrupt weights or adapter).
	ErrNotFinite = ggml.ErrNotFinite
	// ErrInvalidArgument means an option or input is out of its valid range.
	ErrInvalidArgument = ggml.ErrInvalidArgument
	// ErrDevice means a device problem: an unknown device name, a backend library that is missing or
	// from another build, or a device that cannot hold or run the work.
	ErrDevice = ggml.ErrDevice
)
