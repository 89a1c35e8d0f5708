package ggml

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
)

// GGUF value types (gguf_type in gguf.h).
const (
	ggufUint8   = 0
	ggufInt8    = 1
	ggufUint16  = 2
	ggufInt16   = 3
	ggufUint32  = 4
	ggufInt32   = 5
	ggufFloat32 = 6
	ggufBool    = 7
	ggufString  = 8
	ggufArray   = 9
	ggufUint64  = 10
	ggufInt64   = 11
	ggufFloat64 = 12
	ggufTypes   = 13
)

// ggufScalarSize is the byte size of a fixed-size GGUF value type (0 for string and array).
var ggufScalarSize = [ggufTypes]int64{1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8}

// Limits of the GGUF reader, beyond which a file is refused as corrupt. ggml's own limits are wider
// (it allocates whatever a length field says), which is how corrupt files crash it.
const (
	// ggmlMaxName is GGML_MAX_NAME: tensor names are stored in a fixed char[64].
	ggmlMaxName = 64
	// ggmlMaxDims is GGML_MAX_DIMS.
	ggmlMaxDims = 4
	// maxKeyLen bounds metadata key length (real keys are under 100 bytes).
	maxKeyLen = 1 << 16
	// maxElements bounds a tensor's element count (2^48, far above any model, far below overflow).
	maxElements = int64(1) << 48
	// ggufDefaultAlignment is GGUF_DEFAULT_ALIGNMENT.
	ggufDefaultAlignment = 32
)

// GGUFField is the byte range of one header field of a GGUF file (see GGUFFile.Layout).
type GGUFField struct {
	// Kind names the field: magic, version, tensor_count, kv_count, key_length, key, value_type,
	// array_type, array_count, string_length, string, value, tensor_name_length, tensor_name, n_dims,
	// dim, tensor_type, tensor_offset, tensor_data.
	Kind string
	// Owner is the metadata key or tensor name the field belongs to ("" for the file header).
	Owner  string
	Offset int64
	Size   int64
}

// GGUFFormatError is a GGUF file that breaks the format: it names the byte offset, the field and
// what was expected. It wraps ErrNotGGUF.
type GGUFFormatError struct {
	Path   string
	Offset int64
	Field  string
	Msg    string
}

func (e *GGUFFormatError) Error() string {
	return fmt.Sprintf("%s: %v: at byte %d, %s: %s", e.Path, ErrNotGGUF, e.Offset, e.Field, e.Msg)
}

// Unwrap makes errors.Is(err, ErrNotGGUF) true.
func (e *GGUFFormatError) Unwrap() error { return ErrNotGGUF }

// ggufParser reads a GGUF header from a buffered stream, tracking the position and the file size so
// that no length field is trusted beyond the bytes that remain.
type ggufParser struct {
	r      *bufio.Reader
	path   string
	pos    int64
	size   int64
	layout []GGUFField
	owner  string
}

func (p *ggufParser) fail(field, format string, args ...any) error {
	return &GGUFFormatError{Path: p.path, Offset: p.pos, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// own sets the owner of the fields that follow, and of the two just read (the name's length and bytes).
func (p *ggufParser) own(owner string) {
	p.owner = owner
	for i := max(0, len(p.layout)-2); i < len(p.layout); i++ {
		p.layout[i].Owner = owner
	}
}

func (p *ggufParser) remaining() int64 { return p.size - p.pos }

// read reads n bytes as field kind, recording it in the layout.
func (p *ggufParser) read(kind string, n int64) ([]byte, error) {
	if n < 0 || n > p.remaining() {
		return nil, p.fail(kind, "needs %d bytes but only %d remain in the file (truncated or corrupt)", n, p.remaining())
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(p.r, buf); err != nil {
		return nil, p.fail(kind, "read: %v", err)
	}
	p.layout = append(p.layout, GGUFField{Kind: kind, Owner: p.owner, Offset: p.pos, Size: n})
	p.pos += n
	return buf, nil
}

func (p *ggufParser) u32(kind string) (uint32, error) {
	b, err := p.read(kind, 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (p *ggufParser) u64(kind string) (uint64, error) {
	b, err := p.read(kind, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// str reads a length-prefixed string of at most limit bytes.
func (p *ggufParser) str(lenKind, kind string, limit int64) (string, error) {
	n, err := p.u64(lenKind)
	if err != nil {
		return "", err
	}
	if n > uint64(limit) {
		p.pos -= 8
		return "", p.fail(lenKind, "string length %d exceeds the limit of %d bytes", n, limit)
	}
	if int64(n) > p.remaining() {
		p.pos -= 8
		return "", p.fail(lenKind, "string length %d exceeds the %d bytes left in the file", n, p.remaining())
	}
	b, err := p.read(kind, int64(n))
	return string(b), err
}

// ReadGGUF reads and validates the metadata and tensor descriptions of a GGUF file in Go, before any
// C code sees the file. Every length, count, type, dimension and offset is checked against the file
// and against ggml's own rules, so a file ReadGGUF accepts cannot crash ggml's reader. Errors wrap
// ErrNotGGUF (a *GGUFFormatError for format violations) and name the byte offset and field.
func ReadGGUF(path string) (*GGUFFile, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read GGUF: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("read GGUF: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("read GGUF: %s: %w: is a directory", path, ErrNotGGUF)
	}
	f, err := ParseGGUF(path, fh, st.Size())
	if err != nil {
		return nil, fmt.Errorf("read GGUF: %w", err)
	}
	return f, nil
}

// ParseGGUF parses and validates a GGUF header of a file of size bytes read from r (see ReadGGUF);
// name is used in errors and as GGUFFile.Path.
func ParseGGUF(name string, r io.Reader, size int64) (*GGUFFile, error) {
	p := &ggufParser{r: bufio.NewReaderSize(r, 1<<16), path: name, size: size}
	if size < 8 {
		return nil, p.fail("magic", "file too short for a GGUF header (%d bytes)", size)
	}
	magic, err := p.read("magic", 4)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(magic, []byte("GGUF")) {
		p.pos = 0
		return nil, p.fail("magic", "%q, want \"GGUF\"", magic)
	}
	version, err := p.u32("version")
	if err != nil {
		return nil, err
	}
	if version < 2 || version > 3 {
		p.pos -= 4
		return nil, p.fail("version", "GGUF version %d, want 2 or 3", version)
	}
	nTensors, err := p.u64("tensor_count")
	if err != nil {
		return nil, err
	}
	// A tensor description takes at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes.
	if nTensors > uint64(p.remaining()/24) {
		p.pos -= 8
		return nil, p.fail("tensor_count", "%d tensors cannot fit in the %d bytes left", nTensors, p.remaining())
	}
	nKV, err := p.u64("kv_count")
	if err != nil {
		return nil, err
	}
	// A key/value pair takes at least 8 (key length) + 1 (key) + 4 (type) + 1 (value) bytes.
	if nKV > uint64(p.remaining()/14) {
		p.pos -= 8
		return nil, p.fail("kv_count", "%d key/value pairs cannot fit in the %d bytes left", nKV, p.remaining())
	}
	f := &GGUFFile{Path: name, Version: version, KV: make(map[string]any, nKV)}
	for i := uint64(0); i < nKV; i++ {
		p.owner = ""
		start := p.pos
		key, err := p.str("key_length", "key", maxKeyLen)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if key == "" {
			p.pos = start
			return nil, p.fail("key", "key %d is empty", i)
		}
		if _, dup := f.KV[key]; dup {
			p.pos = start
			return nil, p.fail("key", "duplicate key %q", key)
		}
		p.own(key)
		v, err := p.value(key)
		if err != nil {
			return nil, err
		}
		f.KV[key] = v
	}
	p.owner = ""
	alignment := int64(ggufDefaultAlignment)
	if v, ok := f.KV["general.alignment"]; ok {
		a, isU32 := v.(uint32)
		if !isU32 || a == 0 || a&(a-1) != 0 {
			return nil, p.fail("value", "general.alignment = %v (%T), want a uint32 power of 2", v, v)
		}
		alignment = int64(a)
	}
	names := make(map[string]bool, nTensors)
	var dataSize int64
	for i := uint64(0); i < nTensors; i++ {
		p.owner = ""
		start := p.pos
		name, err := p.str("tensor_name_length", "tensor_name", ggmlMaxName-1)
		if err != nil {
			return nil, fmt.Errorf("tensor %d: %w", i, err)
		}
		if name == "" || bytes.IndexByte([]byte(name), 0) >= 0 {
			p.pos = start
			return nil, p.fail("tensor_name", "tensor %d has an empty name or a NUL byte in %q", i, name)
		}
		if names[name] {
			p.pos = start
			return nil, p.fail("tensor_name", "duplicate tensor %q", name)
		}
		names[name] = true
		p.own(name)
		t, err := p.tensorInfo(name)
		if err != nil {
			return nil, err
		}
		if t.Offset != dataSize {
			p.pos -= 8
			return nil, p.fail("tensor_offset", "tensor %s has data offset %d, want %d (tensors must be stored in order, each padded to %d bytes)", name, t.Offset, dataSize, alignment)
		}
		dataSize += (t.Size + alignment - 1) / alignment * alignment
		if dataSize > size {
			p.pos -= 8
			return nil, p.fail("tensor_offset", "tensor %s ends beyond the end of the file (%d bytes)", name, size)
		}
		f.Tensors = append(f.Tensors, t)
	}
	dataStart := (p.pos + alignment - 1) / alignment * alignment
	for i := range f.Tensors {
		t := &f.Tensors[i]
		t.Offset += dataStart
		if t.Offset+t.Size > size {
			return nil, &GGUFFormatError{Path: name, Offset: t.Offset, Field: "tensor_data",
				Msg: fmt.Sprintf("tensor %s ends at byte %d but the file has %d bytes (truncated?)", t.Name, t.Offset+t.Size, size)}
		}
		p.layout = append(p.layout, GGUFField{Kind: "tensor_data", Owner: t.Name, Offset: t.Offset, Size: t.Size})
	}
	f.Layout = p.layout
	return f, nil
}

// value reads the type and value of metadata key.
func (p *ggufParser) value(key string) (any, error) {
	typ, err := p.u32("value_type")
	if err != nil {
		return nil, err
	}
	if typ >= ggufTypes {
		p.pos -= 4
		return nil, p.fail("value_type", "key %q has type %d, want 0..%d", key, typ, ggufTypes-1)
	}
	if typ != ggufArray {
		return p.scalar(key, typ)
	}
	at, err := p.u32("array_type")
	if err != nil {
		return nil, err
	}
	if at >= ggufTypes || at == ggufArray {
		p.pos -= 4
		return nil, p.fail("array_type", "key %q is an array of type %d, want 0..%d except 9 (nested arrays)", key, at, ggufTypes-1)
	}
	n, err := p.u64("array_count")
	if err != nil {
		return nil, err
	}
	minElem := ggufScalarSize[at]
	if at == ggufString {
		minElem = 8
	}
	if n > uint64(p.remaining()/minElem) {
		p.pos -= 8
		return nil, p.fail("array_count", "key %q has %d elements, which cannot fit in the %d bytes left", key, n, p.remaining())
	}
	return p.array(key, at, int(n))
}

func (p *ggufParser) scalar(key string, typ uint32) (any, error) {
	if typ == ggufString {
		return p.str("string_length", "string", p.remaining())
	}
	b, err := p.read("value", ggufScalarSize[typ])
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	switch typ {
	case ggufUint8:
		return b[0], nil
	case ggufInt8:
		return int8(b[0]), nil
	case ggufUint16:
		return le.Uint16(b), nil
	case ggufInt16:
		return int16(le.Uint16(b)), nil
	case ggufUint32:
		return le.Uint32(b), nil
	case ggufInt32:
		return int32(le.Uint32(b)), nil
	case ggufFloat32:
		return math.Float32frombits(le.Uint32(b)), nil
	case ggufBool:
		return b[0] != 0, nil
	case ggufUint64:
		return le.Uint64(b), nil
	case ggufInt64:
		return int64(le.Uint64(b)), nil
	case ggufFloat64:
		return math.Float64frombits(le.Uint64(b)), nil
	}
	return nil, p.fail("value_type", "key %q: unhandled type %d", key, typ)
}

// array reads n elements of type at. The Go types match what earlier versions returned: []string,
// []int32, []uint32, []float32, []int64, []uint64, []float64, []uint8 (also for int8 and bool),
// []uint16 (also for int16), and []any{} when a numeric array is empty.
func (p *ggufParser) array(key string, at uint32, n int) (any, error) {
	if at == ggufString {
		out := make([]string, n)
		for i := range out {
			s, err := p.str("string_length", "string", p.remaining())
			if err != nil {
				return nil, fmt.Errorf("key %q element %d: %w", key, i, err)
			}
			out[i] = s
		}
		return out, nil
	}
	if n == 0 {
		return []any{}, nil
	}
	b, err := p.read("value", int64(n)*ggufScalarSize[at])
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	switch at {
	case ggufUint8, ggufInt8, ggufBool:
		return b, nil
	case ggufUint16, ggufInt16:
		out := make([]uint16, n)
		for i := range out {
			out[i] = le.Uint16(b[2*i:])
		}
		return out, nil
	case ggufUint32:
		out := make([]uint32, n)
		for i := range out {
			out[i] = le.Uint32(b[4*i:])
		}
		return out, nil
	case ggufInt32:
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(le.Uint32(b[4*i:]))
		}
		return out, nil
	case ggufFloat32:
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return out, nil
	case ggufUint64:
		out := make([]uint64, n)
		for i := range out {
			out[i] = le.Uint64(b[8*i:])
		}
		return out, nil
	case ggufInt64:
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(le.Uint64(b[8*i:]))
		}
		return out, nil
	case ggufFloat64:
		out := make([]float64, n)
		for i := range out {
			out[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
		return out, nil
	}
	return nil, p.fail("array_type", "key %q: unhandled array type %d", key, at)
}

// tensorInfo reads the shape, type and offset of tensor name (its name already read). Offset is
// relative to the data section.
func (p *ggufParser) tensorInfo(name string) (GGUFTensor, error) {
	t := GGUFTensor{Name: name}
	nd, err := p.u32("n_dims")
	if err != nil {
		return t, err
	}
	if nd < 1 || nd > ggmlMaxDims {
		p.pos -= 4
		return t, p.fail("n_dims", "tensor %s has %d dimensions, want 1..%d", name, nd, ggmlMaxDims)
	}
	elems := int64(1)
	for d := uint32(0); d < nd; d++ {
		v, err := p.u64("dim")
		if err != nil {
			return t, err
		}
		hi, lo := bits.Mul64(uint64(elems), v)
		if v == 0 || hi != 0 || lo > uint64(maxElements) {
			p.pos -= 8
			return t, p.fail("dim", "tensor %s dimension %d is %d; want >= 1 with at most %d elements in all", name, d, int64(v), maxElements)
		}
		elems = int64(lo)
		t.Shape = append(t.Shape, int64(v))
	}
	typ, err := p.u32("tensor_type")
	if err != nil {
		return t, err
	}
	t.Type = GGMLType(typ)
	if !t.Type.Valid() {
		p.pos -= 4
		return t, p.fail("tensor_type", "tensor %s has ggml type %d, which is not a (current) ggml type", name, typ)
	}
	if bs := t.Type.BlockSize(); t.Shape[0]%bs != 0 {
		p.pos -= 4
		return t, p.fail("tensor_type", "tensor %s of type %s has rows of %d elements, not a multiple of its block size %d", name, t.Type, t.Shape[0], bs)
	}
	t.Size = t.Type.RowSize(t.Shape[0]) * (elems / t.Shape[0])
	// Report the shape as ggml_n_dims does: trailing dimensions of 1 are dropped.
	for len(t.Shape) > 1 && t.Shape[len(t.Shape)-1] == 1 {
		t.Shape = t.Shape[:len(t.Shape)-1]
	}
	off, err := p.u64("tensor_offset")
	if err != nil {
		return t, err
	}
	if off > uint64(p.size) {
		p.pos -= 8
		return t, p.fail("tensor_offset", "tensor %s has data offset %d beyond the end of the file (%d bytes)", name, off, p.size)
	}
	t.Offset = int64(off)
	return t, nil
}
