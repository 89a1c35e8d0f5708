// Package ggufcorrupt derives corrupted copies of a GGUF file, field by field, for robustness tests:
// every header field kind (counts, lengths, types, dimensions, offsets, values, names) gets boundary
// and random values, the file is truncated at field boundaries, and random bytes are flipped.
package ggufcorrupt

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/bpo-dev/bpo/ggml"
)

// Mutation is one corruption of a file: bytes overwritten at Offset, or the file cut to Truncate
// bytes (when Truncate >= 0).
type Mutation struct {
	// Name describes the corruption, e.g. "dim of blk.0.attn_q.weight.lora_a = 0".
	Name string
	// Kind is the layout field kind it targets ("truncate" and "flip" for the whole-file ones).
	Kind   string
	Offset int64
	Bytes  []byte
	// Xor makes Apply xor Bytes into the file instead of overwriting.
	Xor      bool
	Truncate int64
}

// Apply returns a corrupted copy of data.
func (m Mutation) Apply(data []byte) []byte {
	if m.Truncate >= 0 {
		return slices.Clone(data[:min(m.Truncate, int64(len(data)))])
	}
	out := slices.Clone(data)
	if m.Xor {
		for i, b := range m.Bytes {
			out[m.Offset+int64(i)] ^= b
		}
		return out
	}
	copy(out[m.Offset:], m.Bytes)
	return out
}

func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
func f32(v float32) []byte {
	return binary.LittleEndian.AppendUint32(nil, math.Float32bits(v))
}

// Named values written into fields of each width.
var (
	u32Values = []struct {
		name string
		v    uint32
	}{{"0", 0}, {"1", 1}, {"string type 8", 8}, {"array type 9", 9}, {"13", 13}, {"-1", math.MaxUint32}, {"2^31", 1 << 31}, {"5", 5}}
	u64Values = []struct {
		name string
		v    uint64
	}{{"0", 0}, {"1", 1}, {"2^32", 1 << 32}, {"2^62", 1 << 62}, {"2^63-1", math.MaxInt64}, {"2^64-1", math.MaxUint64}, {"2^64-2", math.MaxUint64 - 1}, {"-1000", math.MaxUint64 - 999}}
	f32Values = []struct {
		name string
		v    float32
	}{{"NaN", float32(math.NaN())}, {"+Inf", float32(math.Inf(1))}, {"-Inf", float32(math.Inf(-1))}, {"-1e-5", -1e-5}, {"0", 0}, {"1e38", 1e38}, {"-1", -1}}
)

// Generate returns the mutations of a GGUF file whose parsed form is f (from ggml.ParseGGUF, so
// f.Layout is filled): for each field kind, up to perKind fields (spread over the file, always
// including every scalar metadata value) get every boundary value of their width; the file is cut at
// field boundaries and at evenly spaced points; flips random-byte corruptions are added. The result
// depends only on the arguments.
func Generate(f *ggml.GGUFFile, size int64, perKind, flips int, seed uint64) []Mutation {
	byKind := map[string][]ggml.GGUFField{}
	var kinds []string
	for _, fl := range f.Layout {
		if _, ok := byKind[fl.Kind]; !ok {
			kinds = append(kinds, fl.Kind)
		}
		byKind[fl.Kind] = append(byKind[fl.Kind], fl)
	}
	var out []Mutation
	for _, kind := range kinds {
		for _, fl := range pick(byKind[kind], perKind, kind == "value") {
			out = append(out, fieldMutations(f, fl)...)
		}
	}
	// Truncation at the start and middle of picked fields, and at evenly spaced points.
	for _, kind := range kinds {
		for _, fl := range pick(byKind[kind], 2, false) {
			out = append(
				out,
				Mutation{
					Name:     fmt.Sprintf("cut at start of %s of %q", fl.Kind, fl.Owner),
					Kind:     "truncate",
					Truncate: fl.Offset,
				},
				Mutation{
					Name:     fmt.Sprintf("cut inside %s of %q", fl.Kind, fl.Owner),
					Kind:     "truncate",
					Truncate: fl.Offset + fl.Size/2,
				},
			)
		}
	}
	for i := int64(1); i < 16; i++ {
		out = append(out, Mutation{Name: fmt.Sprintf("cut at %d/16", i), Kind: "truncate", Truncate: size * i / 16})
	}
	// Random byte flips: half in the header (before the first tensor's data), half anywhere.
	rng := rand.New(rand.NewPCG(seed, 0x99f))
	header := size
	for _, fl := range f.Layout {
		if fl.Kind == "tensor_data" {
			header = min(header, fl.Offset)
		}
	}
	for i := range flips {
		span := header
		if i%2 == 1 {
			span = size
		}
		off := rng.Int64N(span)
		mask := byte(rng.IntN(255) + 1)
		out = append(
			out,
			Mutation{
				Name:     fmt.Sprintf("flip byte %d by %#x", off, mask),
				Kind:     "flip",
				Offset:   off,
				Bytes:    []byte{mask},
				Xor:      true,
				Truncate: -1,
			},
		)
	}
	return out
}

// pick returns up to n fields spread evenly over fs (all of them when keepAll).
func pick(fs []ggml.GGUFField, n int, keepAll bool) []ggml.GGUFField {
	if keepAll || len(fs) <= n {
		return fs
	}
	out := make([]ggml.GGUFField, 0, n)
	for i := range n {
		out = append(out, fs[i*(len(fs)-1)/max(n-1, 1)])
	}
	return out
}

// fieldMutations writes each boundary value of the field's width (and type, for metadata values).
func fieldMutations(f *ggml.GGUFFile, fl ggml.GGUFField) []Mutation {
	var out []Mutation
	add := func(name string, b []byte) {
		out = append(
			out,
			Mutation{
				Name:     fmt.Sprintf("%s of %q = %s", fl.Kind, fl.Owner, name),
				Kind:     fl.Kind,
				Offset:   fl.Offset,
				Bytes:    b,
				Truncate: -1,
			},
		)
	}
	isFloat := false
	switch f.KV[fl.Owner].(type) {
	case float32, []float32:
		isFloat = fl.Kind == "value"
	}
	switch {
	case fl.Kind == "magic":
		add(`"GGUE"`, []byte("GGUE"))
		add("zeros", make([]byte, 4))
	case isFloat && fl.Size >= 4:
		for _, v := range f32Values {
			add(v.name, f32(v.v))
		}
	case fl.Size == 4:
		for _, v := range u32Values {
			add(v.name, u32(v.v))
		}
	case fl.Size >= 8 && fl.Kind != "string" && fl.Kind != "key" && fl.Kind != "tensor_name" && fl.Kind != "tensor_data":
		for _, v := range u64Values {
			add(v.name, u64(v.v))
		}
	case fl.Size >= 1 && fl.Size < 4 && fl.Kind == "value":
		add("0", []byte{0})
		add("255", []byte{255})
	case fl.Kind == "tensor_data" && fl.Size >= 4:
		add("NaN at start", f32(float32(math.NaN())))
		add("+Inf at start", f32(float32(math.Inf(1))))
		add("0xff bytes in the middle", nil)
		out[len(out)-1].Offset = fl.Offset + fl.Size/2/4*4
		out[len(out)-1].Bytes = []byte{0xff, 0xff, 0xff, 0x7f}
	case fl.Size >= 1:
		add("NUL first byte", []byte{0})
		add("0xff first byte", []byte{0xff})
	}
	return out
}
