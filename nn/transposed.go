package nn

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/bpo-dev/bpo/ggml"
)

// The backward pass through a frozen weight W (ggml shape [in, out]) needs dx = W^T dy, a product that
// ggml's fast mul_mat computes only when W^T itself is stored, with rows of length out. TrainModel keeps
// such a transposed copy of every weight the backward passes through, made once at load:
//   - F32, F16 and BF16 weights are transposed exactly, in their own type;
//   - a quantized weight is decoded, transposed and re-encoded: as BF16 when the CPU multiplies BF16
//     natively (AVX-512 BF16: about 1.7x faster than Q8_0 here) and all such transposes fit in a quarter
//     of the available memory, else in its own type when out is a multiple of the type's block size
//     (else Q8_0, else F32). Re-encoding rounds again, so the input gradient through a quantized weight
//     is that of a weight within one rounding step of W; the forward pass, and so every log-prob, uses W
//     itself.

// transposedType is the type in which the transpose of a weight of type typ with out output rows is
// kept; bf16 asks for BF16 transposes of quantized weights.
func transposedType(typ ggml.GGMLType, out int64, bf16 bool) ggml.GGMLType {
	switch {
	case typ == ggml.TypeF32 || typ == ggml.TypeF16 || typ == ggml.TypeBF16:
		return typ
	case bf16:
		return ggml.TypeBF16
	case out%typ.BlockSize() == 0 && encodable(typ):
		return typ
	case out%ggml.TypeQ8_0.BlockSize() == 0:
		return ggml.TypeQ8_0
	default:
		return ggml.TypeF32
	}
}

// encodable reports whether ggml.ConvertFloat32 can write typ.
func encodable(typ ggml.GGMLType) bool { return ggml.CheckEncodable(typ, typ.BlockSize()) == nil }

// transposeBand is how many rows of W^T are made at a time (a multiple of every block size), so that
// the temporary float copy stays small for large vocabularies.
const transposeBand = 256

// writeTransposed fills dst ([out, in], type dstType) with the transpose of the weight whose raw data
// (type typ, ggml shape [in, out]) is raw. Bands of rows are made in parallel, one per CPU.
func writeTransposed(dst ggml.Tensor, typ ggml.GGMLType, raw []byte, in, out int64) error {
	dstType := dst.Type()
	srcRow := typ.RowSize(in)
	dstRow := dstType.RowSize(out)
	if int64(len(raw)) < srcRow*out {
		return fmt.Errorf("%w: %d bytes for a %s tensor of %d x %d", ggml.ErrInvalidArgument, len(raw), typ, in, out)
	}
	bs := typ.BlockSize()
	if in%bs != 0 {
		return fmt.Errorf("%w: row length %d is not a multiple of %s's block size", ggml.ErrInvalidArgument, in, typ)
	}
	band := max(transposeBand/bs, 1) * bs
	bands := (in + band - 1) / band
	workers := min(int64(runtime.NumCPU()), bands)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			piece := make([]float32, band)
			buf := make([]float32, band*out)
			for b := w; b < bands; b += workers {
				i0 := b * band
				n := min(band, in-i0)
				for o := int64(0); o < out; o++ {
					start := o*srcRow + typ.RowSize(i0)
					if err := ggml.DecodeInto(typ, raw[start:start+typ.RowSize(n)], piece[:n]); err != nil {
						errs[w] = err
						return
					}
					for i := int64(0); i < n; i++ {
						buf[i*out+o] = piece[i]
					}
				}
				enc, err := ggml.ConvertFloat32(buf[:n*out], dstType, out)
				if err == nil {
					err = dst.SetBytesAt(enc, i0*dstRow)
				}
				if err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
