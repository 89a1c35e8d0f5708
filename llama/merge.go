package llama

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/lora"
)

// MergeTypes are the weight types a merge can be asked to write (MergeOptions.Type): the ones
// that have a llama.cpp file type of their own.
var MergeTypes = []ggml.GGMLType{ggml.TypeF32, ggml.TypeF16, ggml.TypeBF16, ggml.TypeQ8_0, ggml.TypeQ4_0, ggml.TypeQ4_K, ggml.TypeQ6_K}

// f16Max is the largest finite half-precision value; f16 weights and the f16 block scales of
// the quantized types cannot hold a weight beyond it.
const f16Max = 65504

// MergeOptions chooses how MergeAdapter folds an adapter into a model.
type MergeOptions struct {
	// Type, when not nil, is the type of every 2-D weight of the merged model (one of MergeTypes).
	// nil keeps each tensor's own type: the adapted weights are re-encoded in the type they had.
	Type *ggml.GGMLType
	// Scale multiplies the adapter's update; 0 means 1 (the adapter as trained).
	Scale float32
}

// MergeResult summarizes a merge.
type MergeResult struct {
	Arch string
	// Merged is the number of base weights the adapter changed.
	Merged int
	// Retyped is the number of tensors written in a type other than the base's.
	Retyped int
	// Tensors is the number of tensors of the merged model.
	Tensors int
	// Rank and Alpha are the adapter's (Rank -1 when tensors have different ranks).
	Rank  int
	Alpha float32
}

// MergeAdapter writes outPath: the model at modelPath with the LoRA adapter at adapterPath folded
// into its weights, W' = W + scale·(alpha/r)·B·A (dequantized, added in float32, re-encoded), so
// that llama.cpp loads it as an ordinary model. Metadata is copied from the model (with
// general.file_type updated when opts.Type is set, and bpo.merged_adapter added). Everything that
// can be checked is checked before anything is written: the adapter's architecture and shapes
// (ErrAdapterMismatch) and that every re-encoded tensor fits the output type (ErrInvalidArgument).
// The file is written atomically, one tensor at a time.
func MergeAdapter(modelPath, adapterPath, outPath string, opts MergeOptions) (MergeResult, error) {
	plan, err := planMerge(modelPath, adapterPath, outPath, opts)
	if err != nil {
		return MergeResult{}, fmt.Errorf("merge: %w", err)
	}
	if err := plan.write(outPath, opts); err != nil {
		return MergeResult{}, fmt.Errorf("merge %s + %s: %w", modelPath, adapterPath, err)
	}
	return plan.result, nil
}

// mergePlan is a checked merge: the output tensors, their types and the LoRA pairs to add.
type mergePlan struct {
	base        *ggml.GGUFFile
	adapter     *AdapterFile
	adapterPath string
	lora        map[string]lora.Tensor
	out         []ggml.StreamTensor
	result      MergeResult
}

func planMerge(modelPath, adapterPath, outPath string, opts MergeOptions) (*mergePlan, error) {
	if opts.Type != nil && !slices.Contains(MergeTypes, *opts.Type) {
		names := make([]string, len(MergeTypes))
		for i, t := range MergeTypes {
			names[i] = t.String()
		}
		return nil, fmt.Errorf("%w: cannot merge into %s: want one of %s", ErrInvalidArgument, *opts.Type, strings.Join(names, ", "))
	}
	if !isFinite32(opts.Scale) {
		return nil, fmt.Errorf("%w: scale %v is not finite", ErrInvalidArgument, opts.Scale)
	}
	for _, in := range []string{modelPath, adapterPath} {
		if same, _ := sameFile(in, outPath); same {
			return nil, fmt.Errorf("%w: output %s is the input %s", ErrInvalidArgument, outPath, in)
		}
	}
	base, err := ggml.ReadGGUF(modelPath)
	if err != nil {
		return nil, err
	}
	if base.String("general.type") == "adapter" {
		return nil, fmt.Errorf("%w: %s is an adapter, give the base model as the model", ErrInvalidArgument, modelPath)
	}
	if len(base.Tensors) == 0 {
		return nil, fmt.Errorf("%w: %s has no tensors (vocabulary-only file?)", ErrInvalidArgument, modelPath)
	}
	rank, err := checkAdapterFits(adapterPath, base)
	if err != nil {
		return nil, err
	}
	ad, err := ReadAdapterFile(adapterPath)
	if err != nil {
		return nil, err
	}
	p := &mergePlan{base: base, adapter: ad, adapterPath: adapterPath, lora: map[string]lora.Tensor{}}
	p.result = MergeResult{Arch: base.Arch(), Rank: rank, Alpha: ad.Alpha, Tensors: len(base.Tensors)}
	for _, lt := range ad.Tensors {
		if lt.Base == "token_embd.weight" {
			return nil, fmt.Errorf("%w: adapter %s adapts token_embd.weight, which merge does not support", ErrInvalidArgument, adapterPath)
		}
		if err := lt.Validate(); err != nil {
			return nil, fmt.Errorf("adapter %s: %w: %w", adapterPath, ErrInvalidArgument, err)
		}
		for _, v := range [][]float32{lt.A, lt.B} {
			if i := slices.IndexFunc(v, func(x float32) bool { return !isFinite32(x) }); i >= 0 {
				return nil, fmt.Errorf("%w: adapter %s: %s has a non-finite value (%v at %d)", ErrInvalidArgument, adapterPath, lt.Base, v[i], i)
			}
		}
		p.lora[lt.Base] = lt
	}
	for _, t := range base.Tensors {
		typ := t.Type
		if opts.Type != nil && len(t.Shape) == 2 && isFloatOrQuantized(t.Type) {
			typ = *opts.Type
		}
		_, adapted := p.lora[t.Name]
		if adapted || typ != t.Type {
			if err := ggml.CheckEncodable(typ, t.Shape[0]); err != nil {
				return nil, fmt.Errorf("%s (%s %v) cannot be written as %s: %w", t.Name, t.Type, t.Shape, typ, err)
			}
		}
		if adapted {
			p.result.Merged++
		}
		if typ != t.Type {
			p.result.Retyped++
		}
		p.out = append(p.out, ggml.StreamTensor{Name: t.Name, Type: typ, NE: t.Shape})
	}
	return p, nil
}

// isFloatOrQuantized tells weight types apart from ggml's integer and f64 types (I8, I16, I32,
// I64, F64 = 24..28), which a merge never re-encodes.
func isFloatOrQuantized(t ggml.GGMLType) bool { return t < 24 || t > 28 }

func (p *mergePlan) write(outPath string, opts MergeOptions) error {
	w := ggml.NewGGUFWriter()
	defer w.Close()
	if err := w.CopyKV(p.base.Path); err != nil {
		return err
	}
	if opts.Type != nil {
		w.SetUint32("general.file_type", ggml.FileTypeFor(*opts.Type))
		if *opts.Type != ggml.TypeF32 && *opts.Type != ggml.TypeF16 && *opts.Type != ggml.TypeBF16 {
			w.SetUint32("general.quantization_version", 2) // GGML_QNT_VERSION
		}
	}
	scale := opts.Scale
	if scale == 0 {
		scale = 1
	}
	w.SetString("bpo.merged_adapter", filepath.Base(p.adapterPath))
	w.SetFloat32("bpo.merged_adapter_scale", scale)
	for _, t := range p.out {
		if err := w.AddTensorInfo(t); err != nil {
			return err
		}
	}
	in, err := os.Open(p.base.Path)
	if err != nil {
		return err
	}
	defer in.Close()
	return w.WriteStreaming(outPath, p.out, func(i int) ([]byte, error) {
		src := p.base.Tensors[i]
		raw := make([]byte, src.Size)
		if _, err := in.ReadAt(raw, src.Offset); err != nil {
			return nil, fmt.Errorf("read %s: %w", src.Name, err)
		}
		lt, adapted := p.lora[src.Name]
		dst := p.out[i]
		if !adapted && dst.Type == src.Type {
			return raw, nil
		}
		w, err := ggml.ToFloat32(src.Type, raw, src.Elements())
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", src.Name, err)
		}
		if adapted {
			s := scale
			if p.adapter.Alpha != 0 { // llama.cpp: no alpha means the update is B·A times the scale
				s *= p.adapter.Alpha / float32(lt.Rank)
			}
			addLoRA(w, lt, s)
		}
		if err := checkFits(w, dst); err != nil {
			return nil, err
		}
		return ggml.ConvertFloat32(w, dst.Type, dst.NE[0])
	})
}

// addLoRA adds s·B·A to w, the row-major NOut x NIn weight of lt.Base.
func addLoRA(w []float32, lt lora.Tensor, s float32) {
	a := blas32.General{Rows: lt.Rank, Cols: lt.NIn, Stride: lt.NIn, Data: lt.A}
	b := blas32.General{Rows: lt.NOut, Cols: lt.Rank, Stride: lt.Rank, Data: lt.B}
	c := blas32.General{Rows: lt.NOut, Cols: lt.NIn, Stride: lt.NIn, Data: w}
	blas32.Gemm(blas.NoTrans, blas.NoTrans, s, b, a, 1, c)
}

// checkFits reports merged values that the output type cannot hold: non-finite values, and
// values beyond f16's range for f16 and the quantized types (whose block scales are f16).
func checkFits(w []float32, t ggml.StreamTensor) error {
	limit := float32(math.MaxFloat32)
	if t.Type != ggml.TypeF32 && t.Type != ggml.TypeBF16 {
		limit = f16Max
	}
	for i, v := range w {
		if !isFinite32(v) || v > limit || v < -limit {
			row, col := int64(i)/t.NE[0], int64(i)%t.NE[0]
			return fmt.Errorf("%w: merged %s has %g at row %d, column %d, which %s cannot hold (|x| <= %g); merge into f32 instead", ErrInvalidArgument, t.Name, v, row, col, t.Type, limit)
		}
	}
	return nil
}

func isFinite32(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }

// sameFile reports whether a and b name the same existing file.
func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
