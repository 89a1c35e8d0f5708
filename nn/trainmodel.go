package nn

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/lora"
)

// TrainOptions configure NewTrainModel.
type TrainOptions struct {
	// LoRA holds the trainable LoRA pairs (base weights frozen). Exactly one of LoRA and FullParams.
	LoRA []lora.Tensor
	// LoRAAlpha scales the LoRA update by alpha / rank.
	LoRAAlpha float32
	// FullParams trains every weight (the model must be F32).
	FullParams bool
	// Threads is the number of CPU threads (0: DefaultThreads()).
	Threads int
	// Device holds the weights and LoRA tensors and runs the graph ("" or "cpu": the CPU; else a device
	// of ggml.ResolveDevice such as "vulkan0", whose backend library must be loaded). Ops the device
	// lacks run on the CPU. On a device, steps compute log-probs only: gradients are refused with
	// ggml.ErrDevice (see runStepOnDevice), and full-parameter training is refused.
	Device string
	// Checkpointing chooses whether the backward pass recomputes each block's activations from its
	// input instead of keeping them from the forward pass (LoRA training; see Checkpointing).
	Checkpointing Checkpointing
}

// Checkpointing is the activation-recomputation setting of a training step.
type Checkpointing int

const (
	// CheckpointAuto recomputes when the activations of all blocks would take more than a quarter
	// of the machine's available memory, and keeps them otherwise.
	CheckpointAuto Checkpointing = iota
	// CheckpointOn keeps only each block's input (and the head's per-row results) for the backward pass
	// and recomputes the rest block by block: memory grows with layers x tokens x embedding, at the cost
	// of about one more forward pass.
	CheckpointOn
	// CheckpointOff keeps every activation of the forward pass.
	CheckpointOff
)

// CheckpointAuto recomputes when the kept activations would exceed a quarter of the memory the
// machine has available at that step (/proc/meminfo's MemAvailable; 1 GiB where it cannot be read).
const checkpointAutoFallbackBytes = 1 << 30

// ParseCheckpointing reads "auto", "on" or "off".
func ParseCheckpointing(s string) (Checkpointing, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return CheckpointAuto, nil
	case "on", "true":
		return CheckpointOn, nil
	case "off", "false":
		return CheckpointOff, nil
	}
	return 0, fmt.Errorf("%w: checkpointing %q (want auto, on or off)", ggml.ErrInvalidArgument, s)
}

func (c Checkpointing) String() string {
	return [...]string{"auto", "on", "off"}[c]
}

// TrainParam is one trainable tensor: host values (the master copy the optimizer updates) and the
// gradient filled by Gradient. Shape is ggml's ne.
type TrainParam struct {
	Name   string
	Shape  []int64
	Values []float32
	Grad   []float32
	tensor ggml.Tensor
}

// TrainSeq is one sequence for training: Tokens[PromptLen:] are scored (the completion), each given all
// tokens before it.
type TrainSeq struct {
	Tokens    []int32
	PromptLen int
}

// hyper holds the architecture hyper-parameters read from the GGUF file.
type hyper struct {
	arch                      *architecture
	nEmbd, nHead, nKV, nLayer int
	nFF, nVocab, nCtxTrain    int
	headDim                   int
	eps, ropeBase, ropeScale  float32
	ropeMode                  int
	// attnScale is the softmax scale of the attention scores (1/sqrt(headDim) unless the
	// architecture says otherwise).
	attnScale float32
	// window is attention.sliding_window when the architecture has window layers (0: none).
	window int
	// layers holds what varies per layer.
	layers []layerHyper
}

// layerHyper is what one layer's attention uses: rope base and scale, and whether it sees only the
// last window positions.
type layerHyper struct {
	ropeBase, ropeScale float32
	windowed            bool
}

// TrainModel is our own differentiable forward graph of a llama / qwen2 GGUF model, with LoRA or
// full-parameter training, computed by ggml's backend scheduler.
type TrainModel struct {
	path      string
	hp        hyper
	backend   *ggml.Backend // holds the weights and parameters (the CPU, or TrainOptions.Device)
	cpu       *ggml.Backend // the CPU backend (the same as backend without a device)
	sched     *ggml.Scheduler
	schedSize int
	wctx      *ggml.GContext
	wbuf      *ggml.Buffer
	weights   map[string]ggml.Tensor
	wT        map[string]ggml.Tensor // transposed frozen weights for the backward pass (see transposed.go)
	ckpt      Checkpointing
	limits    chunkLimits
	pctx      *ggml.GContext
	pbuf      *ggml.Buffer
	params    []*TrainParam
	lora      map[string][2]ggml.Tensor // base weight name -> A, B
	loraScale float32
	loraRank  int
	full      bool
}

// NewTrainModel loads the weights of a GGUF model into backend memory and sets up the trainable tensors.
func NewTrainModel(path string, opts TrainOptions) (*TrainModel, error) {
	f, err := ggml.ReadGGUF(path)
	if err != nil {
		return nil, fmt.Errorf("train model: %w", err)
	}
	hp, err := readHyper(f)
	if err != nil {
		return nil, fmt.Errorf("train model %s: %w", path, err)
	}
	if opts.FullParams == (len(opts.LoRA) > 0) {
		return nil, fmt.Errorf("train model: %w: set exactly one of LoRA tensors and FullParams", ggml.ErrInvalidArgument)
	}
	if what := hp.arch.fullParamsUnsupported(); opts.FullParams && what != "" {
		return nil, fmt.Errorf("train model %s: %w: full-parameter training does not build %s (%s); use LoRA",
			path, ggml.ErrUnsupportedArch, what, hp.arch.name)
	}
	if opts.Checkpointing < CheckpointAuto || opts.Checkpointing > CheckpointOff {
		return nil, fmt.Errorf("train model: %w: checkpointing setting %d", ggml.ErrInvalidArgument, opts.Checkpointing)
	}
	tm := &TrainModel{path: path, hp: hp, weights: map[string]ggml.Tensor{}, wT: map[string]ggml.Tensor{}, lora: map[string][2]ggml.Tensor{},
		full: opts.FullParams, ckpt: opts.Checkpointing, limits: defaultChunkLimits}
	ok := false
	defer func() {
		if !ok {
			tm.Close()
		}
	}()
	if err := tm.checkTensors(f, opts); err != nil {
		return nil, fmt.Errorf("train model %s: %w", path, err)
	}
	if tm.backend, tm.cpu, err = trainBackends(f, hp.arch.name, opts); err != nil {
		return nil, fmt.Errorf("train model %s: %w", path, err)
	}
	if err := tm.loadWeights(f); err != nil {
		return nil, fmt.Errorf("train model %s: %w", path, err)
	}
	// Loading went through Go buffers as large as the largest tensor (and its transposed bands);
	// hand them back to the OS now rather than letting them add to the training step's peak memory.
	debug.FreeOSMemory()
	if len(opts.LoRA) > 0 {
		if err := tm.setupLoRA(opts.LoRA, opts.LoRAAlpha); err != nil {
			return nil, fmt.Errorf("train model %s: %w", path, err)
		}
	}
	if err := tm.ensureScheduler(trainGraphSize(hp)); err != nil {
		return nil, err
	}
	ok = true
	return tm, nil
}

func trainGraphSize(hp hyper) int { return 64 + hp.nLayer*400 }

func readHyper(f *ggml.GGUFFile) (hyper, error) {
	a, err := archByName(f.Arch())
	if err != nil {
		return hyper{}, err
	}
	arch := a.name
	hp := hyper{arch: a, ropeMode: a.ropeMode, ropeBase: 10000, ropeScale: 1, eps: 1e-5}
	geti := func(k string, dst *int) error {
		v, ok := f.Uint(arch + k)
		if !ok {
			return fmt.Errorf("%w: missing %s%s", ggml.ErrInvalidArgument, arch, k)
		}
		*dst = int(v)
		return nil
	}
	for k, dst := range map[string]*int{".embedding_length": &hp.nEmbd, ".attention.head_count": &hp.nHead, ".block_count": &hp.nLayer, ".feed_forward_length": &hp.nFF} {
		if err := geti(k, dst); err != nil {
			return hyper{}, err
		}
	}
	hp.nKV = hp.nHead
	if v, ok := f.Uint(arch + ".attention.head_count_kv"); ok {
		hp.nKV = int(v)
	}
	if v, ok := f.Uint(arch + ".context_length"); ok {
		hp.nCtxTrain = int(v)
	}
	if v, ok := f.Float(arch + ".attention.layer_norm_rms_epsilon"); ok {
		hp.eps = float32(v)
	}
	if v, ok := f.Float(arch + ".rope.freq_base"); ok {
		hp.ropeBase = float32(v)
	}
	// As llama.cpp: the scaling type defaults to linear, whose factor is rope.scaling.factor (or the
	// older rope.scale_linear); "none" keeps scale 1.
	switch f.String(arch + ".rope.scaling.type") {
	case "none":
	case "", "linear":
		v, ok := f.Float(arch + ".rope.scaling.factor")
		if !ok {
			v, ok = f.Float(arch + ".rope.scale_linear")
		}
		if ok && v > 0 {
			hp.ropeScale = float32(1 / v)
		}
	default:
		return hyper{}, fmt.Errorf("%w: rope scaling %q is not supported by the training graph", ggml.ErrUnsupportedArch, f.String(arch+".rope.scaling.type"))
	}
	keyLen, hasKeyLen := f.Uint(arch + ".attention.key_length")
	if hp.nHead <= 0 || hp.nKV <= 0 || (!hasKeyLen && hp.nEmbd%hp.nHead != 0) || hp.nHead%hp.nKV != 0 {
		return hyper{}, fmt.Errorf("%w: heads %d, kv heads %d, embedding %d do not fit", ggml.ErrInvalidArgument, hp.nHead, hp.nKV, hp.nEmbd)
	}
	hp.headDim = hp.nEmbd / hp.nHead
	if hasKeyLen {
		hp.headDim = int(keyLen)
	}
	if hp.headDim <= 0 || hp.headDim%2 != 0 {
		return hyper{}, fmt.Errorf("%w: %s.attention.key_length %d, want an even head size > 0",
			ggml.ErrInvalidArgument, arch, hp.headDim)
	}
	if v, ok := f.Uint(arch + ".attention.value_length"); ok && int(v) != hp.headDim {
		return hyper{}, fmt.Errorf("%w: %s.attention.value_length %d differs from the key length %d",
			ggml.ErrUnsupportedArch, arch, v, hp.headDim)
	}
	if v, ok := f.Uint(arch + ".rope.dimension_count"); ok && int(v) != hp.headDim {
		return hyper{}, fmt.Errorf("%w: partial rope (%d of %d dims) is not supported", ggml.ErrUnsupportedArch, v, hp.headDim)
	}
	for _, k := range []string{".final_logit_softcapping", ".attn_logit_softcapping"} {
		if v, ok := f.Float(arch + k); ok && v != 0 {
			return hyper{}, fmt.Errorf("%w: %s%s %g: logit softcapping is not supported by the training graph",
				ggml.ErrUnsupportedArch, arch, k, v)
		}
	}
	hp.attnScale = float32(1 / math.Sqrt(float64(hp.headDim)))
	if a.attentionScale != nil {
		hp.attnScale = float32(a.attentionScale(hp))
	}
	if a.window != nil {
		if v, ok := f.Uint(arch + ".attention.sliding_window"); ok {
			hp.window = int(v)
		}
	}
	if hp.nLayer <= 0 || hp.nLayer > len(f.Tensors) {
		return hyper{}, fmt.Errorf("%w: %s.block_count %d, the file has %d tensors",
			ggml.ErrInvalidArgument, arch, hp.nLayer, len(f.Tensors))
	}
	hp.layers = make([]layerHyper, hp.nLayer)
	for l := range hp.layers {
		hp.layers[l] = layerHyper{ropeBase: hp.ropeBase, ropeScale: hp.ropeScale}
		if hp.window > 0 && l%a.window.pattern < a.window.pattern-1 {
			hp.layers[l] = layerHyper{ropeBase: a.window.ropeBase, ropeScale: a.window.ropeScale, windowed: true}
		}
	}
	tok, ok := f.Tensor("token_embd.weight")
	if !ok || len(tok.Shape) != 2 {
		return hyper{}, fmt.Errorf("%w: missing 2-D token_embd.weight", ggml.ErrInvalidArgument)
	}
	hp.nVocab = int(tok.Shape[1])
	return hp, nil
}

// weightNames lists the tensors the graph reads.
func (tm *TrainModel) weightNames(f *ggml.GGUFFile) []string {
	names := []string{"token_embd.weight", "output_norm.weight"}
	if _, ok := f.Tensor("output.weight"); ok {
		names = append(names, "output.weight")
	}
	if _, ok := f.Tensor("rope_freqs.weight"); ok {
		names = append(names, "rope_freqs.weight")
	}
	for l := 0; l < tm.hp.nLayer; l++ {
		for _, n := range []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"} {
			names = append(names, fmt.Sprintf("blk.%d.%s.weight", l, n))
		}
		if tm.hp.arch.qkvBias {
			for _, n := range []string{"attn_q", "attn_k", "attn_v"} {
				names = append(names, fmt.Sprintf("blk.%d.%s.bias", l, n))
			}
		}
		if tm.hp.arch.qkNorm {
			names = append(names, fmt.Sprintf("blk.%d.attn_q_norm.weight", l),
				fmt.Sprintf("blk.%d.attn_k_norm.weight", l))
		}
		if tm.hp.arch.postNorms {
			names = append(names, fmt.Sprintf("blk.%d.post_attention_norm.weight", l),
				fmt.Sprintf("blk.%d.post_ffw_norm.weight", l))
		}
	}
	return names
}

// checkTensors validates every tensor the graph needs before anything reaches C.
func (tm *TrainModel) checkTensors(f *ggml.GGUFFile, opts TrainOptions) error {
	for _, n := range tm.weightNames(f) {
		t, ok := f.Tensor(n)
		if !ok {
			return fmt.Errorf("%w: missing tensor %s", ggml.ErrInvalidArgument, n)
		}
		if opts.FullParams && t.Type != ggml.TypeF32 && t.Type != ggml.TypeF16 && t.Type != ggml.TypeBF16 {
			return fmt.Errorf("%w: full-parameter training needs float weights; %s is %s", ggml.ErrInvalidArgument, n, t.Type)
		}
	}
	rank := 0
	for _, l := range opts.LoRA {
		if err := l.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ggml.ErrInvalidArgument, err)
		}
		w, ok := f.Tensor(l.Base)
		if !ok {
			return fmt.Errorf("%w: LoRA target %s is not a tensor of the model", ggml.ErrAdapterMismatch, l.Base)
		}
		if !lora.IsTarget(l.Base) {
			return fmt.Errorf("%w: LoRA on %s is not supported (targets: %s)", ggml.ErrInvalidArgument, l.Base, strings.Join(lora.Targets(), ", "))
		}
		if int(w.Shape[0]) != l.NIn || int(w.Shape[1]) != l.NOut {
			return fmt.Errorf("%w: LoRA %s is %dx%d, weight is %v", ggml.ErrAdapterMismatch, l.Base, l.NIn, l.NOut, w.Shape)
		}
		if rank != 0 && l.Rank != rank {
			return fmt.Errorf("%w: LoRA ranks differ (%d and %d)", ggml.ErrInvalidArgument, rank, l.Rank)
		}
		rank = l.Rank
	}
	if len(opts.LoRA) > 0 && (opts.LoRAAlpha <= 0 || math.IsNaN(float64(opts.LoRAAlpha))) {
		return fmt.Errorf("%w: LoRA alpha %v, want > 0", ggml.ErrInvalidArgument, opts.LoRAAlpha)
	}
	tm.loraRank = rank
	return nil
}

// loadWeights creates the weight tensors and reads their data from the file. Full-parameter training
// widens F16/BF16 to F32 (ggml's automatic differentiation needs F32 parameters); LoRA training keeps
// every weight in its own type and adds the transposed copies the backward pass multiplies by.
func (tm *TrainModel) loadWeights(f *ggml.GGUFFile) error {
	names := tm.weightNames(f)
	var transposed []string
	if !tm.full {
		transposed = tm.backwardWeights(f)
	}
	tm.wctx = ggml.NewGContext(len(names)+len(transposed)+8, 0, false)
	infos := make([]ggml.GGUFTensor, len(names))
	for i, n := range names {
		t, _ := f.Tensor(n)
		infos[i] = t
		typ := t.Type
		if tm.full && (typ == ggml.TypeF16 || typ == ggml.TypeBF16) {
			typ = ggml.TypeF32
		}
		tm.weights[n] = tm.wctx.NewTensor(typ, t.Shape...).SetName(n)
	}
	bf16 := len(transposed) > 0 && ggml.CPUHasBF16()
	if bf16 {
		var bytes int64
		for _, n := range transposed {
			t, _ := f.Tensor(n)
			bytes += 2 * t.Elements()
		}
		bf16 = bytes <= availableMemory()/4
	}
	for _, n := range transposed {
		t, _ := f.Tensor(n)
		tm.wT[n] = tm.wctx.NewTensor(transposedType(t.Type, t.Shape[1], bf16), t.Shape[1], t.Shape[0]).SetName(n + ".T")
	}
	var err error
	if tm.wbuf, err = tm.backend.AllocTensors(tm.wctx); err != nil {
		return err
	}
	fh, err := os.Open(tm.path)
	if err != nil {
		return err
	}
	defer fh.Close()
	var buf []byte
	for i, n := range names {
		info := infos[i]
		if int64(cap(buf)) < info.Size {
			buf = make([]byte, info.Size)
		}
		buf = buf[:info.Size]
		if _, err := fh.ReadAt(buf, info.Offset); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s: %w", n, err)
		}
		w := tm.weights[n]
		if w.Type() != info.Type {
			v, err := ggml.ToFloat32(info.Type, buf, info.Elements())
			if err != nil {
				return fmt.Errorf("decode %s: %w", n, err)
			}
			if err := w.SetFloat32(v); err != nil {
				return err
			}
		} else if err := w.SetBytes(buf); err != nil {
			return err
		}
		if wt, ok := tm.wT[n]; ok {
			if err := writeTransposed(wt, info.Type, buf, info.Shape[0], info.Shape[1]); err != nil {
				return fmt.Errorf("transpose %s: %w", n, err)
			}
		}
		if tm.full {
			p := &TrainParam{Name: n, Shape: append([]int64(nil), info.Shape...), tensor: w}
			p.Values = w.Float32(nil)
			p.Grad = make([]float32, len(p.Values))
			tm.params = append(tm.params, p)
		}
	}
	if tm.full {
		for _, p := range tm.params {
			p.tensor.SetParam()
		}
	}
	return nil
}

// backwardWeights lists the frozen 2-D weights the backward pass multiplies by transposed: every
// projection of every block, and the output matrix (the token embedding when the output is tied).
func (tm *TrainModel) backwardWeights(f *ggml.GGUFFile) []string {
	var names []string
	for l := 0; l < tm.hp.nLayer; l++ {
		for _, t := range lora.Targets() {
			names = append(names, lora.BaseName(l, t))
		}
	}
	if _, ok := f.Tensor("output.weight"); ok {
		return append(names, "output.weight")
	}
	return append(names, "token_embd.weight")
}

// setupLoRA creates the trainable A/B tensors.
func (tm *TrainModel) setupLoRA(pairs []lora.Tensor, alpha float32) error {
	tm.pctx = ggml.NewGContext(2*len(pairs)+4, 0, false)
	seen := map[string]bool{}
	for _, l := range pairs {
		if seen[l.Base] {
			return fmt.Errorf("%w: two LoRA pairs for %s", ggml.ErrInvalidArgument, l.Base)
		}
		seen[l.Base] = true
		a := tm.pctx.NewTensor(ggml.TypeF32, int64(l.NIn), int64(l.Rank)).SetName(l.Base + lora.SuffixA)
		b := tm.pctx.NewTensor(ggml.TypeF32, int64(l.Rank), int64(l.NOut)).SetName(l.Base + lora.SuffixB)
		tm.lora[l.Base] = [2]ggml.Tensor{a, b}
		tm.params = append(tm.params,
			&TrainParam{Name: l.Base + lora.SuffixA, Shape: []int64{int64(l.NIn), int64(l.Rank)}, Values: append([]float32(nil), l.A...), Grad: make([]float32, len(l.A)), tensor: a},
			&TrainParam{Name: l.Base + lora.SuffixB, Shape: []int64{int64(l.Rank), int64(l.NOut)}, Values: append([]float32(nil), l.B...), Grad: make([]float32, len(l.B)), tensor: b})
	}
	var err error
	if tm.pbuf, err = tm.backend.AllocTensors(tm.pctx); err != nil {
		return err
	}
	for _, p := range tm.params {
		p.tensor.SetParam()
	}
	tm.loraScale = alpha / float32(tm.loraRank)
	return tm.UploadParams()
}

// Params returns the trainable tensors in a stable order.
func (tm *TrainModel) Params() []*TrainParam { return tm.params }

// UploadParams copies every parameter's host Values to the backend (after an optimizer step).
func (tm *TrainModel) UploadParams() error {
	for _, p := range tm.params {
		if err := p.tensor.SetFloat32(p.Values); err != nil {
			return err
		}
	}
	return nil
}

// LoRATensors returns the current LoRA pairs (host values), sorted by base name.
func (tm *TrainModel) LoRATensors() []lora.Tensor {
	var out []lora.Tensor
	byName := map[string]*TrainParam{}
	for _, p := range tm.params {
		byName[p.Name] = p
	}
	bases := make([]string, 0, len(tm.lora))
	for b := range tm.lora {
		bases = append(bases, b)
	}
	sort.Strings(bases)
	for _, b := range bases {
		a, bb := byName[b+lora.SuffixA], byName[b+lora.SuffixB]
		out = append(out, lora.Tensor{Base: b, Rank: int(a.Shape[1]), NIn: int(a.Shape[0]), NOut: int(bb.Shape[1]),
			A: append([]float32(nil), a.Values...), B: append([]float32(nil), bb.Values...)})
	}
	return out
}

// Arch is the model's architecture; VocabSize its vocabulary size.
func (tm *TrainModel) Arch() string   { return tm.hp.arch.name }
func (tm *TrainModel) VocabSize() int { return tm.hp.nVocab }

// WeightBytes is the backend memory held by weights and parameters.
func (tm *TrainModel) WeightBytes() int64 {
	n := tm.wbuf.Size()
	if tm.pbuf != nil {
		n += tm.pbuf.Size()
	}
	return n
}

// PeakComputeBytes is the largest compute buffer (activations and gradients) needed so far.
func (tm *TrainModel) PeakComputeBytes() int64 { return tm.sched.PeakComputeBytes() }

// Close frees all backend memory.
func (tm *TrainModel) Close() error {
	if tm.sched != nil {
		tm.sched.Free()
	}
	if tm.pbuf != nil {
		tm.pbuf.Free()
	}
	if tm.wbuf != nil {
		tm.wbuf.Free()
	}
	if tm.pctx != nil {
		tm.pctx.Free()
	}
	if tm.wctx != nil {
		tm.wctx.Free()
	}
	if tm.cpu != nil && tm.cpu != tm.backend {
		tm.cpu.Free()
	}
	if tm.backend != nil {
		tm.backend.Free()
	}
	return nil
}
