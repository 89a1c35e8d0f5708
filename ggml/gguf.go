package ggml

/*
#include <stdlib.h>
#include <string.h>
#include "ggml.h"
#include "gguf.h"

static struct gguf_context * bpo_gguf_open(const char * path, struct ggml_context ** meta) {
	struct gguf_init_params p = { .no_alloc = true, .ctx = meta };
	return gguf_init_from_file(path, p);
}

// bpo_gguf_copy_kv copies one key/value pair (scalar or array) from src to dst.
static void bpo_gguf_copy_kv(struct gguf_context * dst, const struct gguf_context * src, int64_t id) {
	const char * key = gguf_get_key(src, id);
	enum gguf_type t = gguf_get_kv_type(src, id);
	switch (t) {
	case GGUF_TYPE_UINT8:   gguf_set_val_u8  (dst, key, gguf_get_val_u8  (src, id)); break;
	case GGUF_TYPE_INT8:    gguf_set_val_i8  (dst, key, gguf_get_val_i8  (src, id)); break;
	case GGUF_TYPE_UINT16:  gguf_set_val_u16 (dst, key, gguf_get_val_u16 (src, id)); break;
	case GGUF_TYPE_INT16:   gguf_set_val_i16 (dst, key, gguf_get_val_i16 (src, id)); break;
	case GGUF_TYPE_UINT32:  gguf_set_val_u32 (dst, key, gguf_get_val_u32 (src, id)); break;
	case GGUF_TYPE_INT32:   gguf_set_val_i32 (dst, key, gguf_get_val_i32 (src, id)); break;
	case GGUF_TYPE_FLOAT32: gguf_set_val_f32 (dst, key, gguf_get_val_f32 (src, id)); break;
	case GGUF_TYPE_UINT64:  gguf_set_val_u64 (dst, key, gguf_get_val_u64 (src, id)); break;
	case GGUF_TYPE_INT64:   gguf_set_val_i64 (dst, key, gguf_get_val_i64 (src, id)); break;
	case GGUF_TYPE_FLOAT64: gguf_set_val_f64 (dst, key, gguf_get_val_f64 (src, id)); break;
	case GGUF_TYPE_BOOL:    gguf_set_val_bool(dst, key, gguf_get_val_bool(src, id)); break;
	case GGUF_TYPE_STRING:  gguf_set_val_str (dst, key, gguf_get_val_str (src, id)); break;
	case GGUF_TYPE_ARRAY: {
		enum gguf_type at = gguf_get_arr_type(src, id);
		size_t n = gguf_get_arr_n(src, id);
		if (at == GGUF_TYPE_STRING) {
			const char ** strs = (const char **) malloc(sizeof(char *) * (n ? n : 1));
			for (size_t i = 0; i < n; i++) strs[i] = gguf_get_arr_str(src, id, i);
			gguf_set_arr_str(dst, key, strs, n);
			free(strs);
		} else {
			gguf_set_arr_data(dst, key, at, gguf_get_arr_data(src, id), n);
		}
		break;
	}
	default: break;
	}
}
*/
import "C"

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unsafe"
)

// GGMLType is a ggml tensor element type (GGML_TYPE_*).
type GGMLType uint32

// Tensor types used by the project.
const (
	TypeF32  GGMLType = 0
	TypeF16  GGMLType = 1
	TypeQ4_0 GGMLType = 2
	TypeQ8_0 GGMLType = 8
	TypeQ4_K GGMLType = 12
	TypeQ6_K GGMLType = 14
	TypeBF16 GGMLType = 30
	TypeI32  GGMLType = 26
)

// String returns ggml's name of the type, e.g. "q8_0".
func (t GGMLType) String() string {
	if t >= C.GGML_TYPE_COUNT {
		return fmt.Sprintf("type(%d)", uint32(t))
	}
	name := C.ggml_type_name(C.enum_ggml_type(t))
	if name == nil {
		return fmt.Sprintf("type(%d)", uint32(t))
	}
	return C.GoString(name)
}

// Valid reports whether t is a ggml type that still exists (removed types have block size 0).
func (t GGMLType) Valid() bool {
	return t < C.GGML_TYPE_COUNT && C.ggml_blck_size(C.enum_ggml_type(t)) > 0 && C.ggml_type_size(C.enum_ggml_type(t)) > 0
}

// BlockSize is the number of elements in one quantization block of the type (1 for float types).
func (t GGMLType) BlockSize() int64 { return int64(C.ggml_blck_size(C.enum_ggml_type(t))) }

// RowSize is the byte size of a row of n elements of the type.
func (t GGMLType) RowSize(n int64) int64 {
	return int64(C.ggml_row_size(C.enum_ggml_type(t), C.int64_t(n)))
}

// ParseGGMLType parses a type name such as "f32", "F16", "q8_0" or "Q4_K".
func ParseGGMLType(s string) (GGMLType, error) {
	want := strings.ToLower(s)
	for t := GGMLType(0); t < C.GGML_TYPE_COUNT; t++ {
		if C.ggml_blck_size(C.enum_ggml_type(t)) == 0 {
			continue // removed type
		}
		if t.String() == want {
			return t, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown tensor type %q (want f32, f16, q8_0, q4_0, q4_k, q6_k, ...)", ErrInvalidArgument, s)
}

// GGUFTensor describes one tensor of a GGUF file.
type GGUFTensor struct {
	Name string
	Type GGMLType
	// Shape is ggml's ne: Shape[0] is the row length (the fastest-varying dimension).
	Shape []int64
	// Offset is the absolute byte offset of the tensor data in the file.
	Offset int64
	// Size is the byte size of the tensor data.
	Size int64
}

// Elements is the number of elements of the tensor.
func (t GGUFTensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// GGUFFile is the metadata of a GGUF file: key/value pairs and tensor descriptions (no tensor data).
type GGUFFile struct {
	Path    string
	Version uint32
	// KV maps keys to values: string, bool, uint8..int64, float32, float64, or slices of those.
	KV      map[string]any
	Tensors []GGUFTensor
	// Layout lists the byte range of every header field and tensor's data, in file order.
	Layout []GGUFField
}

// String returns the string value of key, or "" when absent or not a string.
func (f *GGUFFile) String(key string) string {
	s, _ := f.KV[key].(string)
	return s
}

// Uint returns an integer value of key as uint64 and whether it was present and integral.
func (f *GGUFFile) Uint(key string) (uint64, bool) {
	switch v := f.KV[key].(type) {
	case uint8:
		return uint64(v), true
	case uint16:
		return uint64(v), true
	case uint32:
		return uint64(v), true
	case uint64:
		return v, true
	case int8:
		return uint64(v), v >= 0
	case int16:
		return uint64(v), v >= 0
	case int32:
		return uint64(v), v >= 0
	case int64:
		return uint64(v), v >= 0
	}
	return 0, false
}

// Float returns a floating-point value of key and whether it was present.
func (f *GGUFFile) Float(key string) (float64, bool) {
	switch v := f.KV[key].(type) {
	case float32:
		return float64(v), true
	case float64:
		return v, true
	}
	if u, ok := f.Uint(key); ok {
		return float64(u), true
	}
	return 0, false
}

// Tensor returns the tensor called name.
func (f *GGUFFile) Tensor(name string) (GGUFTensor, bool) {
	for _, t := range f.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return GGUFTensor{}, false
}

// Arch is general.architecture.
func (f *GGUFFile) Arch() string { return f.String("general.architecture") }

// GGMLReadCounts opens path with ggml's own GGUF reader (metadata only) and returns its key/value and
// tensor counts and data offset; ok is false when ggml refuses the file. It lets tests cross-check
// ReadGGUF against ggml; call it only on files ReadGGUF accepted.
func GGMLReadCounts(path string) (nKV, nTensors, dataOffset int64, ok bool) {
	Init()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var meta *C.struct_ggml_context
	g := C.bpo_gguf_open(cpath, &meta)
	if g == nil {
		return 0, 0, 0, false
	}
	defer C.gguf_free(g)
	defer C.ggml_free(meta)
	return int64(C.gguf_get_n_kv(g)), int64(C.gguf_get_n_tensors(g)), int64(C.gguf_get_data_offset(g)), true
}

// GGUFWriter builds a GGUF file with ggml's gguf writer: key/value pairs and tensors.
// Tensor data is copied into C memory when added; Close (or WriteFile's caller) frees it.
type GGUFWriter struct {
	g      *C.struct_gguf_context
	metas  []*C.struct_ggml_context
	blobs  []unsafe.Pointer
	names  map[string]bool
	closed bool
}

// NewGGUFWriter returns an empty writer.
func NewGGUFWriter() *GGUFWriter {
	Init()
	w := &GGUFWriter{g: C.gguf_init_empty(), names: map[string]bool{}}
	runtime.SetFinalizer(w, (*GGUFWriter).Close)
	return w
}

// Close frees the writer's C memory. It is safe to call more than once.
func (w *GGUFWriter) Close() {
	if w.closed {
		return
	}
	w.closed = true
	C.gguf_free(w.g)
	for _, m := range w.metas {
		C.ggml_free(m)
	}
	for _, b := range w.blobs {
		C.free(b)
	}
	w.metas, w.blobs = nil, nil
	runtime.SetFinalizer(w, nil)
}

func (w *GGUFWriter) withKey(key string, f func(*C.char)) {
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	f(ck)
}

// SetString sets a string value.
func (w *GGUFWriter) SetString(key, v string) {
	cv := C.CString(v)
	defer C.free(unsafe.Pointer(cv))
	w.withKey(key, func(k *C.char) { C.gguf_set_val_str(w.g, k, cv) })
}

// SetUint32 sets a uint32 value.
func (w *GGUFWriter) SetUint32(key string, v uint32) {
	w.withKey(key, func(k *C.char) { C.gguf_set_val_u32(w.g, k, C.uint32_t(v)) })
}

// SetFloat32 sets a float32 value.
func (w *GGUFWriter) SetFloat32(key string, v float32) {
	w.withKey(key, func(k *C.char) { C.gguf_set_val_f32(w.g, k, C.float(v)) })
}

// SetBool sets a bool value.
func (w *GGUFWriter) SetBool(key string, v bool) {
	w.withKey(key, func(k *C.char) { C.gguf_set_val_bool(w.g, k, C.bool(v)) })
}

// SetStrings sets an array of strings.
func (w *GGUFWriter) SetStrings(key string, v []string) {
	cs := make([]*C.char, len(v)+1)
	for i, s := range v {
		cs[i] = C.CString(s)
	}
	defer func() {
		for _, c := range cs[:len(v)] {
			C.free(unsafe.Pointer(c))
		}
	}()
	arr := (**C.char)(C.malloc(C.size_t(len(cs)) * C.size_t(unsafe.Sizeof(cs[0]))))
	defer C.free(unsafe.Pointer(arr))
	copy(unsafe.Slice(arr, len(cs)), cs)
	w.withKey(key, func(k *C.char) { C.gguf_set_arr_str(w.g, k, arr, C.size_t(len(v))) })
}

// SetFloat32s sets an array of float32.
func (w *GGUFWriter) SetFloat32s(key string, v []float32) {
	w.setArr(key, C.GGUF_TYPE_FLOAT32, unsafe.Pointer(unsafe.SliceData(v)), len(v), 4)
}

// SetInt32s sets an array of int32.
func (w *GGUFWriter) SetInt32s(key string, v []int32) {
	w.setArr(key, C.GGUF_TYPE_INT32, unsafe.Pointer(unsafe.SliceData(v)), len(v), 4)
}

func (w *GGUFWriter) setArr(key string, t C.enum_gguf_type, data unsafe.Pointer, n, elem int) {
	buf := C.malloc(C.size_t(n*elem + 1))
	defer C.free(buf)
	if n > 0 {
		C.memcpy(buf, data, C.size_t(n*elem))
	}
	w.withKey(key, func(k *C.char) { C.gguf_set_arr_data(w.g, k, t, buf, C.size_t(n)) })
}

// CopyKV copies every key/value pair of the GGUF file at src whose key starts with one of prefixes
// (all pairs when no prefix is given).
func (w *GGUFWriter) CopyKV(src string, prefixes ...string) error {
	if _, err := ReadGGUF(src); err != nil { // validated before ggml's reader sees it
		return fmt.Errorf("copy GGUF metadata: %w", err)
	}
	cpath := C.CString(src)
	defer C.free(unsafe.Pointer(cpath))
	var meta *C.struct_ggml_context
	g := C.bpo_gguf_open(cpath, &meta)
	if g == nil {
		return fmt.Errorf("copy GGUF metadata from %s: %w", src, ErrNotGGUF)
	}
	defer C.gguf_free(g)
	defer C.ggml_free(meta)
	for i := C.int64_t(0); i < C.gguf_get_n_kv(g); i++ {
		key := C.GoString(C.gguf_get_key(g, i))
		if key == "general.alignment" {
			continue
		}
		match := len(prefixes) == 0
		for _, p := range prefixes {
			if strings.HasPrefix(key, p) {
				match = true
			}
		}
		if match {
			C.bpo_gguf_copy_kv(w.g, g, i)
		}
	}
	return nil
}

// AddTensor adds a tensor with ggml shape ne (ne[0] = row length) and raw data in the type's layout.
func (w *GGUFWriter) AddTensor(name string, typ GGMLType, ne []int64, data []byte) error {
	if w.names[name] {
		return fmt.Errorf("gguf: %w: duplicate tensor %q", ErrInvalidArgument, name)
	}
	if len(ne) == 0 || len(ne) > 4 {
		return fmt.Errorf("gguf: %w: tensor %q has %d dimensions, want 1..4", ErrInvalidArgument, name, len(ne))
	}
	if len(name) >= C.GGML_MAX_NAME {
		return fmt.Errorf("gguf: %w: tensor name %q longer than %d bytes", ErrInvalidArgument, name, C.GGML_MAX_NAME-1)
	}
	if ne[0]%typ.BlockSize() != 0 {
		return fmt.Errorf("gguf: %w: tensor %q row length %d is not a multiple of %s's block size %d", ErrInvalidArgument, name, ne[0], typ, typ.BlockSize())
	}
	rows := int64(1)
	for _, d := range ne[1:] {
		rows *= d
	}
	if want := typ.RowSize(ne[0]) * rows; int64(len(data)) != want {
		return fmt.Errorf("gguf: %w: tensor %q has %d bytes of data, want %d for %s %v", ErrInvalidArgument, name, len(data), want, typ, ne)
	}
	params := C.struct_ggml_init_params{mem_size: C.ggml_tensor_overhead(), no_alloc: true}
	meta := C.ggml_init(params)
	w.metas = append(w.metas, meta)
	var cne [4]C.int64_t
	for i, d := range ne {
		cne[i] = C.int64_t(d)
	}
	t := C.ggml_new_tensor(meta, C.enum_ggml_type(typ), C.int(len(ne)), &cne[0])
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	C.ggml_set_name(t, cname)
	buf := C.malloc(C.size_t(len(data) + 1))
	w.blobs = append(w.blobs, buf)
	if len(data) > 0 {
		C.memcpy(buf, unsafe.Pointer(unsafe.SliceData(data)), C.size_t(len(data)))
	}
	C.gguf_add_tensor(w.g, t)
	C.gguf_set_tensor_data(w.g, cname, buf)
	w.names[name] = true
	return nil
}

// AddFloat32Tensor adds an F32 tensor, converting to typ (F32, F16 or a quantized type) on the way.
func (w *GGUFWriter) AddFloat32Tensor(name string, typ GGMLType, ne []int64, values []float32) error {
	n := int64(1)
	for _, d := range ne {
		n *= d
	}
	if int64(len(values)) != n {
		return fmt.Errorf("gguf: %w: tensor %q has %d values, want %d for shape %v", ErrInvalidArgument, name, len(values), n, ne)
	}
	data, err := ConvertFloat32(values, typ, ne[0])
	if err != nil {
		return fmt.Errorf("gguf: tensor %q: %w", name, err)
	}
	return w.AddTensor(name, typ, ne, data)
}

// WriteFile writes the file atomically: to a temporary file in the same folder, then renamed to path.
func (w *GGUFWriter) WriteFile(path string) error {
	if w.closed {
		return fmt.Errorf("gguf: %w", ErrClosed)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("write GGUF %s: %w: it is a directory; want a file path", path, ErrInvalidArgument)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write GGUF %s: %w", path, err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	ctmp := C.CString(tmpName)
	defer C.free(unsafe.Pointer(ctmp))
	if !C.gguf_write_to_file(w.g, ctmp, false) {
		os.Remove(tmpName)
		return fmt.Errorf("write GGUF %s: ggml's writer failed", path)
	}
	if err := SyncFile(tmpName); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("write GGUF %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("write GGUF %s: %w", path, err)
	}
	return nil
}

func SyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// FileTypeFor maps a tensor type to llama.cpp's general.file_type (LLAMA_FTYPE_*).
func FileTypeFor(t GGMLType) uint32 {
	switch t {
	case TypeF32:
		return 0
	case TypeF16:
		return 1
	case TypeQ4_0:
		return 2
	case TypeQ8_0:
		return 7
	case TypeQ4_K:
		return 15
	case TypeQ6_K:
		return 18
	case TypeBF16:
		return 32
	}
	return 0
}
