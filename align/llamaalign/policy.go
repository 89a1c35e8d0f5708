package llamaalign

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/lora"
	"github.com/bpo-dev/bpo/nn"
)

// LlamaPolicy is a Policy backed by package llama's differentiable training graph: a GGUF model with
// frozen base weights and trainable LoRA tensors (or, for small F32 models, all weights).
type LlamaPolicy struct {
	tm     *nn.TrainModel
	shapes []align.ParamShape
	params [][]float32
	arch   string
	alpha  float64
	lora   bool
}

// NewLlamaLoRAPolicy loads model for LoRA training on the CPU. init holds the starting adapter
// (NewLoRA's seeded A and zero B, or tensors read from an existing adapter to continue training).
func NewLlamaLoRAPolicy(modelPath string, init *align.LoRA, threads int) (*LlamaPolicy, error) {
	return NewLlamaLoRAPolicyOn(modelPath, init, threads, "cpu")
}

// NewLlamaLoRAPolicyOn is NewLlamaLoRAPolicy with the weights and LoRA tensors on device (see
// nn.TrainOptions.Device; the backend library of a device other than the CPU must be loaded).
func NewLlamaLoRAPolicyOn(modelPath string, init *align.LoRA, threads int, device string) (*LlamaPolicy, error) {
	if err := init.Validate(); err != nil {
		return nil, fmt.Errorf("lora policy: %w", err)
	}
	pairs := make([]lora.Tensor, len(init.Tensors))
	for i, t := range init.Tensors {
		pairs[i] = *t // shares A and B: the policy's parameters are the adapter's
	}
	if err := llama.CheckModelFile(modelPath); err != nil { // before ggml sees the file
		return nil, err
	}
	tm, err := nn.NewTrainModel(
		modelPath,
		nn.TrainOptions{LoRA: pairs, LoRAAlpha: float32(init.Alpha), Threads: threads, Device: device},
	)
	if err != nil {
		return nil, err
	}
	return newLlamaPolicy(tm, init.Alpha, true), nil
}

// NewLlamaFullPolicy loads a (small, float) model with every weight trainable.
func NewLlamaFullPolicy(modelPath string, threads int) (*LlamaPolicy, error) {
	if err := llama.CheckModelFile(modelPath); err != nil { // before ggml sees the file
		return nil, err
	}
	tm, err := nn.NewTrainModel(modelPath, nn.TrainOptions{FullParams: true, Threads: threads})
	if err != nil {
		return nil, err
	}
	return newLlamaPolicy(tm, 0, false), nil
}

func newLlamaPolicy(tm *nn.TrainModel, alpha float64, lora bool) *LlamaPolicy {
	p := &LlamaPolicy{tm: tm, arch: tm.Arch(), alpha: alpha, lora: lora}
	for _, tp := range tm.Params() {
		p.shapes = append(p.shapes, align.ParamShape{Name: tp.Name, Size: len(tp.Values)})
		p.params = append(p.params, tp.Values)
	}
	return p
}

// BaseTensors lists the LoRA-targetable 2-D weights of a GGUF model, for NewLoRA.
func BaseTensors(modelPath string) ([]align.BaseTensor, error) {
	f, err := ggml.ReadGGUF(modelPath)
	if err != nil {
		return nil, err
	}
	var out []align.BaseTensor
	for _, t := range f.Tensors {
		if _, _, ok := lora.ParseBase(t.Name); ok && len(t.Shape) == 2 {
			out = append(out, align.BaseTensor{Name: t.Name, NIn: int(t.Shape[0]), NOut: int(t.Shape[1])})
		}
	}
	return out, nil
}

// Close frees the model.
func (p *LlamaPolicy) Close() error { return p.tm.Close() }

// Model is the underlying training graph.
func (p *LlamaPolicy) Model() *nn.TrainModel { return p.tm }

// ParamShapes lists the trainable tensors.
func (p *LlamaPolicy) ParamShapes() []align.ParamShape { return p.shapes }

// Params returns the host values the optimizer updates in place.
func (p *LlamaPolicy) Params() [][]float32 { return p.params }

func pairSeqs(batch []align.TokenizedPair) []nn.TrainSeq {
	seqs := make([]nn.TrainSeq, 0, 2*len(batch))
	for _, b := range batch {
		for _, c := range [][]int32{b.Chosen, b.Rejected} {
			toks := make([]llama.Token, 0, len(b.Prompt)+len(c))
			toks = append(append(toks, b.Prompt...), c...)
			seqs = append(seqs, nn.TrainSeq{Tokens: toks, PromptLen: len(b.Prompt)})
		}
	}
	return seqs
}

func sums(lp [][]float64) []float64 {
	out := make([]float64, len(lp))
	for i, v := range lp {
		for _, x := range v {
			out[i] += x
		}
	}
	return out
}

// Forward returns the policy log-prob sums of each pair's completions.
func (p *LlamaPolicy) Forward(ctx context.Context, batch []align.TokenizedPair) ([]float64, []float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if err := p.tm.UploadParams(); err != nil {
		return nil, nil, err
	}
	lp, err := p.tm.LogProbs(pairSeqs(batch))
	if err != nil {
		return nil, nil, err
	}
	s := sums(lp)
	chosen, rejected := make([]float64, len(batch)), make([]float64, len(batch))
	for i := range batch {
		chosen[i], rejected[i] = s[2*i], s[2*i+1]
	}
	return chosen, rejected, nil
}

// ForwardBackward computes the log-prob sums, gets dL/dlogp from loss and adds the exact gradient to grads.
func (p *LlamaPolicy) ForwardBackward(
	ctx context.Context,
	batch []align.TokenizedPair,
	loss align.LossFunc,
	grads [][]float32,
) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.tm.UploadParams(); err != nil {
		return err
	}
	p.tm.ZeroGrads()
	_, err := p.tm.LogProbsAndGradient(pairSeqs(batch), func(s []float64) ([]float64, error) {
		chosen, rejected := make([]float64, len(batch)), make([]float64, len(batch))
		for i := range batch {
			chosen[i], rejected[i] = s[2*i], s[2*i+1]
		}
		_, g, err := loss(chosen, rejected)
		if err != nil {
			return nil, err
		}
		coef := make([]float64, 2*len(batch))
		for i, pg := range g {
			coef[2*i], coef[2*i+1] = pg.Chosen, pg.Rejected
		}
		return coef, nil
	})
	if err != nil {
		return err
	}
	for i, tp := range p.tm.Params() {
		for j, v := range tp.Grad {
			grads[i][j] += v
		}
	}
	return nil
}

// SaveAdapter writes the current LoRA tensors as a GGUF adapter into dir (llama.cpp / ollama format).
func (p *LlamaPolicy) SaveAdapter(dir string, meta map[string]string) error {
	if !p.lora {
		return fmt.Errorf("save adapter: the policy trains all weights; save a model instead")
	}
	return llama.WriteAdapterFile(
		filepath.Join(dir, align.AdapterFileName),
		p.arch,
		float32(p.alpha),
		p.tm.LoRATensors(),
		meta,
	)
}

// LoadAdapter restores the LoRA tensors from dir's adapter (same targets and rank).
func (p *LlamaPolicy) LoadAdapter(dir string) error {
	af, err := llama.ReadAdapterFile(filepath.Join(dir, align.AdapterFileName))
	if err != nil {
		return err
	}
	byName := map[string]*nn.TrainParam{}
	for _, tp := range p.tm.Params() {
		byName[tp.Name] = tp
	}
	if len(af.Tensors)*2 != len(byName) {
		return fmt.Errorf("load adapter %s: %d LoRA pairs, the run trains %d", dir, len(af.Tensors), len(byName)/2)
	}
	for _, t := range af.Tensors {
		a, b := byName[t.Base+lora.SuffixA], byName[t.Base+lora.SuffixB]
		if a == nil || b == nil || len(a.Values) != len(t.A) || len(b.Values) != len(t.B) {
			return fmt.Errorf(
				"load adapter %s: %w: %s does not match the run's LoRA",
				dir,
				llama.ErrAdapterMismatch,
				t.Base,
			)
		}
		copy(a.Values, t.A)
		copy(b.Values, t.B)
	}
	return p.tm.UploadParams()
}

// SaveModel writes a full-parameter policy's weights as a new GGUF model at path, copying the
// metadata (tokenizer included) and the untrained tensors from the base model file.
func (p *LlamaPolicy) SaveModel(basePath, path string) error {
	values := map[string][]float32{}
	for _, tp := range p.tm.Params() {
		values[tp.Name] = tp.Values
	}
	return llama.WriteModelWithTensors(basePath, path, values)
}

// LoRAFromAdapterFile reads a GGUF LoRA adapter into a LoRA (to continue training it).
func LoRAFromAdapterFile(path string) (*align.LoRA, error) {
	af, err := llama.ReadAdapterFile(path)
	if err != nil {
		return nil, err
	}
	return LoRAFromAdapter(af)
}

// LoRAFromAdapter wraps the tensors of an adapter read or converted elsewhere (e.g. from PEFT).
func LoRAFromAdapter(af *llama.AdapterFile) (*align.LoRA, error) {
	ts := make([]*lora.Tensor, len(af.Tensors))
	rank := 0
	for i := range af.Tensors {
		ts[i] = &af.Tensors[i]
		rank = af.Tensors[i].Rank
	}
	return align.NewLoRAFromTensors(rank, float64(af.Alpha), ts)
}

// LoadModelParams sets a full-parameter policy's values from the tensors of a GGUF model file.
func (p *LlamaPolicy) LoadModelParams(path string) error {
	f, err := ggml.ReadGGUF(path)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, tp := range p.tm.Params() {
		t, ok := f.Tensor(tp.Name)
		if !ok {
			return fmt.Errorf("load weights %s: no tensor %s", path, tp.Name)
		}
		v, err := ggml.ToFloat32(t.Type, raw[t.Offset:t.Offset+t.Size], t.Elements())
		if err != nil {
			return fmt.Errorf("load weights %s: %s: %w", path, tp.Name, err)
		}
		if len(v) != len(tp.Values) {
			return fmt.Errorf("load weights %s: %s has %d values, want %d", path, tp.Name, len(v), len(tp.Values))
		}
		copy(tp.Values, v)
	}
	return p.tm.UploadParams()
}

func trainSeqs(seqs []align.TokenSeq) []nn.TrainSeq {
	out := make([]nn.TrainSeq, len(seqs))
	for i, s := range seqs {
		toks := make([]llama.Token, 0, len(s.Prompt)+len(s.Completion))
		toks = append(append(toks, s.Prompt...), s.Completion...)
		out[i] = nn.TrainSeq{Tokens: toks, PromptLen: len(s.Prompt)}
	}
	return out
}

// TokenLogProbs returns the policy's log-prob of every completion token of seqs.
func (p *LlamaPolicy) TokenLogProbs(ctx context.Context, seqs []align.TokenSeq) ([][]float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := p.tm.UploadParams(); err != nil {
		return nil, err
	}
	return p.tm.LogProbs(trainSeqs(seqs))
}

// ReferenceTokenLogProbs returns the per-token log-probs of the reference: the base model without
// the adapter (every LoRA B set to zero for the pass, then restored).
func (p *LlamaPolicy) ReferenceTokenLogProbs(ctx context.Context, seqs []align.TokenSeq) ([][]float64, error) {
	if !p.lora {
		return nil, fmt.Errorf("reference log-probs: the policy trains all weights; there is no adapter to switch off")
	}
	saved := make(map[int][]float32)
	for i, tp := range p.tm.Params() {
		if strings.HasSuffix(tp.Name, lora.SuffixB) {
			saved[i] = append([]float32(nil), tp.Values...)
			clear(tp.Values)
		}
	}
	lp, err := p.TokenLogProbs(ctx, seqs)
	for i, v := range saved {
		copy(p.tm.Params()[i].Values, v)
	}
	if uerr := p.tm.UploadParams(); err == nil && uerr != nil {
		err = uerr
	}
	return lp, err
}

// TokenForwardBackward computes the per-token log-probs of seqs, asks coefFn for dLoss/dlogp of
// every token and adds the exact gradient of sum c·logp into grads (ParamShapes order).
func (p *LlamaPolicy) TokenForwardBackward(ctx context.Context, seqs []align.TokenSeq, coefFn func(logps [][]float64) ([][]float64, error), grads [][]float32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.tm.UploadParams(); err != nil {
		return err
	}
	p.tm.ZeroGrads()
	if _, err := p.tm.TokenLogProbsAndGradient(trainSeqs(seqs), coefFn); err != nil {
		return err
	}
	for i, tp := range p.tm.Params() {
		for j, v := range tp.Grad {
			grads[i][j] += v
		}
	}
	return nil
}

// NLLGradient implements SFTPolicy for the llama training graph.
func (p *LlamaPolicy) NLLGradient(ctx context.Context, batch []align.TokenSeq, grads [][]float32) (float64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := p.tm.UploadParams(); err != nil {
		return 0, err
	}
	p.tm.ZeroGrads()
	loss, err := p.tm.NLLGradient(trainSeqs(batch))
	if err != nil {
		return 0, err
	}
	for i, tp := range p.tm.Params() {
		for j, v := range tp.Grad {
			grads[i][j] += v
		}
	}
	return loss, nil
}
