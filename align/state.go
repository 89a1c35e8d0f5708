package align

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"unicode/utf8"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// TrainState is what a trainer checkpoint needs besides the adapter weights: the step counters,
// the position in the data order, the optimizer moments, the RNG state and free-form metadata
// (loss name, model and data hashes...). SaveTrainState/LoadTrainState store it in a binary file.
type TrainState struct {
	Step      int64             // optimizer steps completed by the trainer
	Epoch     int64             // current epoch (0-based)
	Cursor    int64             // index of the next example in this epoch's order
	Optimizer *AdamW            // moments, betas, eps, weight decay and its own step count
	RNG       *rand.PCG         // the trainer's random source (shuffling, dropout...)
	Meta      map[string]string // free-form metadata, stored sorted by key
}

// State file layout (little endian):
//
//	magic "BPOSTATE" | version u32
//	step i64 | epoch i64 | cursor i64
//	beta1 f64 | beta2 f64 | eps f64 | weight_decay f64 | adam_t i64
//	n_tensors u32, then per tensor: name (u32 length + bytes) | size u64 | m [size]f32 | v [size]f32
//	rng (u32 length + PCG MarshalBinary bytes)
//	n_meta u32, then per entry: key, value (u32 length + bytes each)
//	trailer: payload_length u64 (bytes before the trailer) | crc32c u32 of those bytes
const (
	stateMagic   = "BPOSTATE"
	stateVersion = 1
	stateTrailer = 12
	maxNameLen   = 1 << 16
)

// castagnoli returns the CRC-32C table (crc32 caches it, so this is cheap).
func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// SaveTrainState writes st to path atomically (temporary file + rename).
func SaveTrainState(path string, st *TrainState) error {
	if st == nil || st.Optimizer == nil || st.RNG == nil {
		return errors.New("save train state: optimizer and RNG are required")
	}
	rng, err := st.RNG.MarshalBinary()
	if err != nil {
		return fmt.Errorf("save train state: rng: %w", err)
	}
	return writeSummed(path, func(sw *stateWriter) {
		sw.bytes([]byte(stateMagic))
		sw.u32(stateVersion)
		sw.i64(st.Step)
		sw.i64(st.Epoch)
		sw.i64(st.Cursor)
		o := st.Optimizer
		sw.f64(o.cfg.Beta1)
		sw.f64(o.cfg.Beta2)
		sw.f64(o.cfg.Eps)
		sw.f64(o.cfg.WeightDecay)
		sw.i64(o.t)
		sw.u32(uint32(len(o.shapes)))
		for i, s := range o.shapes {
			sw.str(s.Name)
			sw.u64(uint64(s.Size))
			sw.f32s(o.m[i])
			sw.f32s(o.v[i])
		}
		sw.blob(rng)
		keys := slices.Sorted(maps.Keys(st.Meta))
		sw.u32(uint32(len(keys)))
		for _, k := range keys {
			sw.str(k)
			sw.str(st.Meta[k])
		}
	})
}

// LoadTrainState reads and validates a state file written by SaveTrainState: magic, version,
// length, checksum and every field. Use Optimizer.CheckShapes to match it against the model.
func LoadTrainState(path string) (*TrainState, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load train state: %w", err)
	}
	st, err := decodeTrainState(data)
	if err != nil {
		return nil, fmt.Errorf("load train state %s: %w", path, err)
	}
	return st, nil
}

// decodeTrainState validates the envelope and decodes the payload.
func decodeTrainState(data []byte) (*TrainState, error) {
	if len(data) < len(stateMagic) || string(data[:len(stateMagic)]) != stateMagic {
		return nil, errors.New("not a bpo trainer state file (bad magic)")
	}
	if len(data) < len(stateMagic)+4+stateTrailer {
		return nil, fmt.Errorf("file truncated (%d bytes)", len(data))
	}
	payload, err := summedPayload(data)
	if err != nil {
		return nil, err
	}
	return decodeStatePayload(payload)
}

// writeSummed writes a file atomically: the payload body writes, then the trailer that
// summedPayload checks (the payload's length, u64, and its CRC-32C, u32, little endian).
func writeSummed(path string, body func(sw *stateWriter)) error {
	return atomicfile.WriteFunc(path, func(w io.Writer) error {
		crc := crc32.New(castagnoli())
		cw := &countWriter{w: io.MultiWriter(w, crc)}
		sw := &stateWriter{w: cw}
		body(sw)
		if sw.err != nil {
			return sw.err
		}
		var trailer [stateTrailer]byte
		binary.LittleEndian.PutUint64(trailer[:8], uint64(cw.n))
		binary.LittleEndian.PutUint32(trailer[8:], crc.Sum32())
		_, err := w.Write(trailer[:])
		return err
	})
}

// summedPayload checks the trailer writeSummed appends and returns the payload before it.
func summedPayload(data []byte) ([]byte, error) {
	if len(data) < stateTrailer {
		return nil, fmt.Errorf("file truncated (%d bytes)", len(data))
	}
	payload, trailer := data[:len(data)-stateTrailer], data[len(data)-stateTrailer:]
	if n := binary.LittleEndian.Uint64(trailer[:8]); n != uint64(len(payload)) {
		return nil, fmt.Errorf("file truncated or extended: trailer says %d payload bytes, found %d", n, len(payload))
	}
	if want, got := binary.LittleEndian.Uint32(trailer[8:]), crc32.Checksum(payload, castagnoli()); want != got {
		return nil, fmt.Errorf("checksum mismatch (stored %08x, computed %08x): file corrupted", want, got)
	}
	return payload, nil
}

// decodeStatePayload parses the fields after the envelope checks; it never panics on bad input.
func decodeStatePayload(payload []byte) (*TrainState, error) {
	r := &stateReader{b: payload}
	if string(r.next(len(stateMagic))) != stateMagic {
		return nil, errors.New("not a bpo trainer state file (bad magic)")
	}
	if v := r.u32(); r.err == nil && v != stateVersion {
		return nil, fmt.Errorf("unsupported state version %d (this build reads %d)", v, stateVersion)
	}
	st := &TrainState{Step: r.i64(), Epoch: r.i64(), Cursor: r.i64()}
	cfg := AdamWConfig{Beta1: r.f64(), Beta2: r.f64(), Eps: r.f64(), WeightDecay: r.f64()}
	t := r.i64()
	n := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	if st.Step < 0 || st.Epoch < 0 || st.Cursor < 0 || t < 0 {
		return nil, fmt.Errorf(
			"negative counter (step %d, epoch %d, cursor %d, adam t %d)",
			st.Step,
			st.Epoch,
			st.Cursor,
			t,
		)
	}
	shapes := make([]ParamShape, 0, min(int(n), 1024))
	var ms, vs [][]float32
	for i := 0; i < int(n); i++ {
		name := r.str()
		size := r.u64()
		if r.err != nil {
			return nil, fmt.Errorf("tensor %d: %w", i, r.err)
		}
		if size == 0 || size > uint64(r.remaining())/8 {
			return nil, fmt.Errorf("tensor %q: size %d does not fit the %d bytes left", name, size, r.remaining())
		}
		shapes = append(shapes, ParamShape{Name: name, Size: int(size)})
		ms = append(ms, r.f32s(int(size)))
		vs = append(vs, r.f32s(int(size)))
	}
	rngBytes := r.blob()
	nMeta := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	st.Meta = make(map[string]string)
	for i := 0; i < int(nMeta); i++ {
		k, v := r.str(), r.str()
		if r.err != nil {
			return nil, fmt.Errorf("metadata entry %d: %w", i, r.err)
		}
		st.Meta[k] = v
	}
	if r.remaining() != 0 {
		return nil, fmt.Errorf("%d unexpected bytes after the last field", r.remaining())
	}
	opt, err := NewAdamW(cfg, shapes)
	if err != nil {
		return nil, err
	}
	opt.m, opt.v, opt.t = ms, vs, t
	for i := range ms {
		for j := range ms[i] {
			if !isFinite(float64(ms[i][j])) || !isFinite(float64(vs[i][j])) || vs[i][j] < 0 {
				return nil, fmt.Errorf(
					"tensor %q: invalid moment at %d (m %v, v %v)",
					shapes[i].Name,
					j,
					ms[i][j],
					vs[i][j],
				)
			}
		}
	}
	st.Optimizer = opt
	st.RNG = &rand.PCG{}
	if err := st.RNG.UnmarshalBinary(rngBytes); err != nil {
		return nil, fmt.Errorf("rng state: %w", err)
	}
	return st, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// stateWriter writes little-endian fields and keeps the first error.
type stateWriter struct {
	w   io.Writer
	err error
	buf [8]byte
}

func (s *stateWriter) bytes(b []byte) {
	if s.err == nil {
		_, s.err = s.w.Write(b)
	}
}
func (s *stateWriter) u32(v uint32) { binary.LittleEndian.PutUint32(s.buf[:4], v); s.bytes(s.buf[:4]) }
func (s *stateWriter) u64(v uint64) { binary.LittleEndian.PutUint64(s.buf[:], v); s.bytes(s.buf[:]) }
func (s *stateWriter) i64(v int64)  { s.u64(uint64(v)) }
func (s *stateWriter) f64(v float64) {
	s.u64(math.Float64bits(v))
}
func (s *stateWriter) blob(b []byte) { s.u32(uint32(len(b))); s.bytes(b) }
func (s *stateWriter) str(v string) {
	if len(v) > maxNameLen && s.err == nil {
		s.err = fmt.Errorf("string of %d bytes exceeds %d", len(v), maxNameLen)
	}
	s.blob([]byte(v))
}
func (s *stateWriter) f32s(v []float32) {
	const chunk = 4096
	buf := make([]byte, 4*min(len(v), chunk))
	for len(v) > 0 && s.err == nil {
		n := min(len(v), chunk)
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v[i]))
		}
		s.bytes(buf[:4*n])
		v = v[n:]
	}
}

// stateReader reads little-endian fields from a byte slice, recording the first out-of-bounds read.
type stateReader struct {
	b   []byte
	pos int
	err error
}

func (r *stateReader) remaining() int { return len(r.b) - r.pos }

func (r *stateReader) next(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > r.remaining() {
		r.err = fmt.Errorf("truncated at byte %d: need %d more bytes, %d left", r.pos, n, r.remaining())
		return nil
	}
	b := r.b[r.pos : r.pos+n]
	r.pos += n
	return b
}

func (r *stateReader) u32() uint32 {
	if b := r.next(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *stateReader) u64() uint64 {
	if b := r.next(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *stateReader) i64() int64   { return int64(r.u64()) }
func (r *stateReader) f64() float64 { return math.Float64frombits(r.u64()) }

func (r *stateReader) blob() []byte {
	n := r.u32()
	return r.next(int(n))
}

func (r *stateReader) str() string {
	n := r.u32()
	if r.err == nil && n > maxNameLen {
		r.err = fmt.Errorf("string length %d at byte %d exceeds %d", n, r.pos-4, maxNameLen)
		return ""
	}
	b := r.next(int(n))
	if r.err == nil && !utf8.Valid(b) {
		r.err = fmt.Errorf("string at byte %d is not valid UTF-8", r.pos-len(b))
	}
	return string(b)
}

func (r *stateReader) f32s(n int) []float32 {
	b := r.next(4 * n)
	if b == nil {
		return nil
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}
