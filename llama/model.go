package llama

/*
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/bpo-dev/bpo/ggml"
)

// SupportedArchitectures are the general.architecture values the bridge loads.
var supportedArchitectures = []string{"llama", "qwen2", "qwen3", "gemma3"}

// SupportedArchitectures returns the architectures the bridge loads.
func SupportedArchitectures() []string { return append([]string(nil), supportedArchitectures...) }

func archSupported(arch string) bool {
	for _, a := range supportedArchitectures {
		if a == arch {
			return true
		}
	}
	return false
}

// ModelOptions configure LoadModel. The zero value memory-maps the whole model.
type ModelOptions struct {
	// VocabOnly loads only the tokenizer (works on vocab-only GGUF files).
	VocabOnly bool
	// NoMmap reads the weights into memory instead of memory-mapping the file.
	NoMmap bool
	// Device is the ggml device that holds the weights and runs inference, as ggml.ResolveDevice names
	// it ("vulkan0", "auto"); "" or "cpu" is the CPU. Its backend library must be loaded first
	// (ggml.LoadBackends). A model's weights on another device are used by inference only: the training
	// graphs (package nn) read the model file themselves.
	Device string
}

// Model is a loaded GGUF model. It is safe for concurrent use by several Contexts; Close it when done.
type Model struct {
	mu    sync.RWMutex
	m     *C.struct_llama_model
	vocab *C.struct_llama_vocab
	path  string
	info  ModelInfo
	file  *ggml.GGUFFile
	// device holds the weights (the CPU unless ModelOptions.Device named another).
	device ggml.DeviceInfo
}

// ModelInfo is the metadata of a model.
type ModelInfo struct {
	Path          string  `json:"path"`
	Arch          string  `json:"arch"`
	Name          string  `json:"name,omitempty"`
	Description   string  `json:"description"`
	Layers        int     `json:"layers"`
	Embedding     int     `json:"embedding"`
	FeedForward   int     `json:"feed_forward"`
	Heads         int     `json:"heads"`
	HeadsKV       int     `json:"heads_kv"`
	VocabSize     int     `json:"vocab_size"`
	VocabType     string  `json:"vocab_type"`
	ContextLength int     `json:"context_length"`
	RopeFreqBase  float64 `json:"rope_freq_base"`
	RopeScaling   string  `json:"rope_scaling,omitempty"`
	RmsNormEps    float64 `json:"rms_norm_eps"`
	FileType      string  `json:"file_type"`
	Params        uint64  `json:"params"`
	SizeBytes     uint64  `json:"size_bytes"`
	TiedOutput    bool    `json:"tied_output"`
	BOS           int32   `json:"bos"`
	EOS           int32   `json:"eos"`
	EOT           int32   `json:"eot"`
	AddBOS        bool    `json:"add_bos"`
	ChatTemplate  string  `json:"chat_template,omitempty"`
}

// LoadModel loads a GGUF model. Errors name the problem: a missing file (os.ErrNotExist), ErrNotGGUF,
// ErrUnsupportedArch.
func LoadModel(path string, opts ModelOptions) (*Model, error) {
	f, err := ggml.ReadGGUF(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	arch := f.Arch()
	if f.String("general.type") == "adapter" {
		return nil, fmt.Errorf("load model %s: %w: it is a LoRA adapter (general.type = adapter); pass it as an adapter", path, ErrUnsupportedArch)
	}
	if !archSupported(arch) {
		return nil, fmt.Errorf("load model %s: %w: general.architecture = %q, supported: %s", path, ErrUnsupportedArch, arch, strings.Join(supportedArchitectures, ", "))
	}
	if !opts.VocabOnly && len(f.Tensors) == 0 {
		return nil, fmt.Errorf("load model %s: %w: file has no tensors (vocab-only file? use VocabOnly)", path, ErrInvalidArgument)
	}
	if err := validateModelFile(f, opts.VocabOnly); err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	initBackend()
	p := C.llama_model_default_params()
	p.n_gpu_layers = 0
	device, devices, err := modelDevice(f, opts)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	if devices != nil {
		defer C.free(unsafe.Pointer(devices))
		p.devices = devices
	}
	if !device.IsCPU() {
		p.n_gpu_layers = 999 // every layer and the output (llama.cpp caps it at the layer count + 1)
	}
	p.vocab_only = C.bool(opts.VocabOnly)
	p.use_mmap = C.bool(!opts.NoMmap)
	// Plain CPU buffers: repacked buffers only support mul_mat, and the training graph reads these weights.
	p.use_extra_bufts = false
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	m := C.llama_model_load_from_file(cpath, p)
	if m == nil {
		if !device.IsCPU() {
			return nil, deviceLoadError(path, device)
		}
		return nil, fmt.Errorf("load model %s: llama.cpp could not load it (set BPO_LLAMA_LOG=1 for its log)", path)
	}
	model := &Model{m: m, vocab: C.llama_model_get_vocab(m), path: path, file: f, device: device}
	model.info = model.readInfo(opts.VocabOnly)
	runtime.SetFinalizer(model, (*Model).Close)
	return model, nil
}

// readInfo collects the metadata; hyper-parameters only when weights were loaded (llama.cpp asserts otherwise).
func (m *Model) readInfo(vocabOnly bool) ModelInfo {
	f := m.file
	arch := f.Arch()
	info := ModelInfo{
		Path:        m.path,
		Arch:        arch,
		Name:        f.String("general.name"),
		VocabSize:   int(C.llama_vocab_n_tokens(m.vocab)),
		BOS:         int32(C.llama_vocab_bos(m.vocab)),
		EOS:         int32(C.llama_vocab_eos(m.vocab)),
		EOT:         int32(C.llama_vocab_eot(m.vocab)),
		AddBOS:      bool(C.llama_vocab_get_add_bos(m.vocab)),
		RopeScaling: f.String(arch + ".rope.scaling.type"),
	}
	if !vocabOnly {
		info.Layers = int(C.llama_model_n_layer(m.m))
		info.Embedding = int(C.llama_model_n_embd(m.m))
		info.Heads = int(C.llama_model_n_head(m.m))
		info.HeadsKV = int(C.llama_model_n_head_kv(m.m))
		info.ContextLength = int(C.llama_model_n_ctx_train(m.m))
		info.Params = uint64(C.llama_model_n_params(m.m))
		info.SizeBytes = uint64(C.llama_model_size(m.m))
	}
	if v, ok := f.Uint(arch + ".feed_forward_length"); ok {
		info.FeedForward = int(v)
	}
	info.RopeFreqBase = 10000
	if v, ok := f.Float(arch + ".rope.freq_base"); ok {
		info.RopeFreqBase = v
	}
	if v, ok := f.Float(arch + ".attention.layer_norm_rms_epsilon"); ok {
		info.RmsNormEps = v
	}
	switch C.llama_vocab_type(m.vocab) {
	case C.LLAMA_VOCAB_TYPE_SPM:
		info.VocabType = "spm"
	case C.LLAMA_VOCAB_TYPE_BPE:
		info.VocabType = "bpe"
	case C.LLAMA_VOCAB_TYPE_WPM:
		info.VocabType = "wpm"
	case C.LLAMA_VOCAB_TYPE_UGM:
		info.VocabType = "ugm"
	case C.LLAMA_VOCAB_TYPE_RWKV:
		info.VocabType = "rwkv"
	default:
		info.VocabType = "none"
	}
	if len(f.Tensors) > 0 {
		_, hasOutput := f.Tensor("output.weight")
		info.TiedOutput = !hasOutput
	}
	buf := make([]byte, 256)
	n := C.int32_t(0)
	if !vocabOnly {
		n = C.llama_model_desc(m.m, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	}
	if n > 0 {
		info.Description = string(buf[:min(int(n), len(buf)-1)])
	}
	info.FileType = fileTypeName(f)
	if t := C.llama_model_chat_template(m.m, nil); t != nil {
		info.ChatTemplate = C.GoString(t)
	}
	return info
}

// fileTypeName describes the dominant tensor type of the weights, e.g. "q8_0".
func fileTypeName(f *ggml.GGUFFile) string {
	counts := map[ggml.GGMLType]int64{}
	for _, t := range f.Tensors {
		if len(t.Shape) >= 2 {
			counts[t.Type] += t.Elements()
		}
	}
	if len(counts) == 0 {
		return "none"
	}
	types := make([]ggml.GGMLType, 0, len(counts))
	for t := range counts {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool { return counts[types[i]] > counts[types[j]] })
	return types[0].String()
}

// Info returns the model's metadata.
func (m *Model) Info() ModelInfo { return m.info }

// File returns the model's GGUF metadata (keys and tensor descriptions).
func (m *Model) File() *ggml.GGUFFile { return m.file }

// Path returns the file the model was loaded from.
func (m *Model) Path() string { return m.path }

// Close frees the model. Contexts made from it must be closed first. It is safe to call more than once.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m != nil {
		C.llama_model_free(m.m)
		m.m = nil
		m.vocab = nil
		runtime.SetFinalizer(m, nil)
	}
	return nil
}

// ptr returns the C model, or ErrClosed.
func (m *Model) ptr() (*C.struct_llama_model, error) {
	if m == nil || m.m == nil {
		return nil, ErrClosed
	}
	return m.m, nil
}
