package ggml

/*
#include <stdlib.h>
#include "ggml.h"

static int bpo_to_float(enum ggml_type t, const void * src, float * dst, int64_t n) {
	const struct ggml_type_traits * tr = ggml_get_type_traits(t);
	if (tr == NULL || tr->to_float == NULL) return -1;
	tr->to_float(src, dst, n);
	return 0;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// ConvertFloat32 encodes values (rows of rowLen elements) as typ: F32, F16, BF16 or a ggml quantized type.
func ConvertFloat32(values []float32, typ GGMLType, rowLen int64) ([]byte, error) {
	n := int64(len(values))
	if rowLen <= 0 || n%rowLen != 0 {
		return nil, fmt.Errorf("%w: %d values do not form rows of %d", ErrInvalidArgument, n, rowLen)
	}
	if err := CheckEncodable(typ, rowLen); err != nil {
		return nil, err
	}
	rows := n / rowLen
	out := make([]byte, typ.RowSize(rowLen)*rows)
	if n == 0 {
		return out, nil
	}
	src := (*C.float)(unsafe.Pointer(unsafe.SliceData(values)))
	dst := unsafe.Pointer(unsafe.SliceData(out))
	switch typ {
	case TypeF32:
		copy(out, unsafe.Slice((*byte)(unsafe.Pointer(src)), 4*n))
	case TypeF16:
		C.ggml_fp32_to_fp16_row(src, (*C.ggml_fp16_t)(dst), C.int64_t(n))
	case TypeBF16:
		C.ggml_fp32_to_bf16_row(src, (*C.ggml_bf16_t)(dst), C.int64_t(n))
	default:
		C.ggml_quantize_init(C.enum_ggml_type(typ))
		C.ggml_quantize_chunk(C.enum_ggml_type(typ), src, dst, 0, C.int64_t(rows), C.int64_t(rowLen), nil)
	}
	return out, nil
}

// DecodeInto decodes len(dst) elements of raw data of type typ into dst (a multiple of the block size).
func DecodeInto(typ GGMLType, data []byte, dst []float32) error {
	n := int64(len(dst))
	if n%typ.BlockSize() != 0 || typ.RowSize(n) > int64(len(data)) {
		return fmt.Errorf("%w: %d bytes cannot hold %d %s elements", ErrInvalidArgument, len(data), n, typ)
	}
	if n == 0 {
		return nil
	}
	if typ == TypeF32 {
		copy(dst, unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(data))), n))
		return nil
	}
	if C.bpo_to_float(C.enum_ggml_type(typ), unsafe.Pointer(unsafe.SliceData(data)), (*C.float)(unsafe.Pointer(unsafe.SliceData(dst))), C.int64_t(n)) != 0 {
		return fmt.Errorf("%w: no decoder for %s", ErrInvalidArgument, typ)
	}
	return nil
}

// CheckEncodable reports whether rows of rowLen float32 values can be encoded as typ: F32, F16,
// BF16 or a quantized type that needs no importance matrix, with rowLen a multiple of its block.
func CheckEncodable(typ GGMLType, rowLen int64) error {
	if typ >= C.GGML_TYPE_COUNT || typ.BlockSize() <= 0 {
		return fmt.Errorf("%w: unknown tensor type %d", ErrInvalidArgument, uint32(typ))
	}
	switch {
	case typ == TypeF32 || typ == TypeF16 || typ == TypeBF16:
	case !bool(C.ggml_is_quantized(C.enum_ggml_type(typ))):
		return fmt.Errorf("%w: cannot encode to %s (not a float or quantized type)", ErrInvalidArgument, typ)
	case bool(C.ggml_quantize_requires_imatrix(C.enum_ggml_type(typ))):
		return fmt.Errorf("%w: %s needs an importance matrix", ErrInvalidArgument, typ)
	}
	if rowLen%typ.BlockSize() != 0 {
		return fmt.Errorf("%w: row length %d is not a multiple of %s's block size %d", ErrInvalidArgument, rowLen, typ, typ.BlockSize())
	}
	return nil
}

// ToFloat32 decodes n elements of raw tensor data of type typ (F32, F16, BF16 or quantized) to float32.
func ToFloat32(typ GGMLType, data []byte, n int64) ([]float32, error) {
	if n < 0 || n%typ.BlockSize() != 0 {
		return nil, fmt.Errorf("%w: %d is not a whole number of %s blocks", ErrInvalidArgument, n, typ)
	}
	out := make([]float32, n)
	return out, DecodeInto(typ, data, out)
}
