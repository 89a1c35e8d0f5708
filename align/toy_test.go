package align

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
)

// toyModel is a bigram language model whose next-token logits are W·onehot(prev), with
// W = W0 + scale·B·A: a LoRA on one "projection" of a real (if tiny) model. Sequence log-probs and
// their gradients are exact, so the whole training loop of this package (losses, LoRA, AdamW,
// schedule, clipping, accumulation, metrics) runs on it as it will on the ggml graph.
type toyModel struct {
	v    int
	w0   []float64 // v x v, row = next token, column = previous token
	lora *LoRA
}

type toyPair struct {
	prompt           int
	chosen, rejected []int
	refC, refR       float64
}

const toyTensor = "blk.0.attn_q.weight"

func newToyModel(t testing.TB, v, rank int, seed uint64) *toyModel {
	rng := rand.New(rand.NewPCG(seed, 99))
	w0 := make([]float64, v*v)
	for i := range w0 {
		w0[i] = 1.5 * rng.NormFloat64()
	}
	l, err := NewLoRA(LoRAConfig{Rank: rank, Alpha: float64(rank), Targets: []string{"attn_q"}, Seed: seed}, []BaseTensor{{toyTensor, v, v}})
	if err != nil {
		t.Fatal(err)
	}
	return &toyModel{v: v, w0: w0, lora: l}
}

// weights returns W = W0 + scale·B·A, or W0 when base is true.
func (m *toyModel) weights(base bool) []float64 {
	w := append([]float64(nil), m.w0...)
	if base {
		return w
	}
	lt, r, s := m.lora.Tensors[0], m.lora.Rank, m.lora.Scale()
	for o := 0; o < m.v; o++ {
		for i := 0; i < m.v; i++ {
			var acc float64
			for k := 0; k < r; k++ {
				acc += float64(lt.B[o*r+k]) * float64(lt.A[k*m.v+i])
			}
			w[o*m.v+i] += s * acc
		}
	}
	return w
}

// logSoftmaxCol returns log softmax of column prev of w.
func (m *toyModel) logSoftmaxCol(w []float64, prev int) []float64 {
	col := make([]float64, m.v)
	mx := math.Inf(-1)
	for o := range col {
		col[o] = w[o*m.v+prev]
		mx = math.Max(mx, col[o])
	}
	var z float64
	for _, x := range col {
		z += math.Exp(x - mx)
	}
	lz := mx + math.Log(z)
	for o := range col {
		col[o] -= lz
	}
	return col
}

// seqLogp returns log p(seq | prompt) and, if gw is non-nil, adds coef·d logp/dW to gw.
func (m *toyModel) seqLogp(w []float64, prompt int, seq []int, coef float64, gw []float64) float64 {
	prev, total := prompt, 0.0
	for _, tok := range seq {
		ls := m.logSoftmaxCol(w, prev)
		total += ls[tok]
		if gw != nil {
			for o := 0; o < m.v; o++ {
				d := -math.Exp(ls[o])
				if o == tok {
					d++
				}
				gw[o*m.v+prev] += coef * d
			}
		}
		prev = tok
	}
	return total
}

// sample draws n tokens from the model W0 after prev.
func (m *toyModel) sample(rng *rand.Rand, prev, n int) []int {
	w := m.weights(true)
	out := make([]int, n)
	for i := range out {
		ls := m.logSoftmaxCol(w, prev)
		u, acc := rng.Float64(), 0.0
		out[i] = m.v - 1
		for o, l := range ls {
			if acc += math.Exp(l); u < acc {
				out[i] = o
				break
			}
		}
		prev = out[i]
	}
	return out
}

// toyPairs builds pairs whose chosen and rejected completions share a prefix and differ in their
// last tokens, like two solutions of one problem; reference log-probs are computed once.
func toyPairs(m *toyModel, n int, seed uint64) []toyPair {
	rng := rand.New(rand.NewPCG(seed, 5))
	w0 := m.weights(true)
	pairs := make([]toyPair, 0, n)
	for len(pairs) < n {
		p := toyPair{prompt: rng.IntN(m.v)}
		length := 6 + rng.IntN(5)
		p.chosen = m.sample(rng, p.prompt, length)
		cut := 2 + rng.IntN(length/2)
		p.rejected = append(append([]int(nil), p.chosen[:cut]...), m.sample(rng, p.chosen[cut-1], length-cut)...)
		same := true
		for i := range p.chosen {
			same = same && p.chosen[i] == p.rejected[i]
		}
		if same {
			continue
		}
		p.refC = m.seqLogp(w0, p.prompt, p.chosen, 0, nil)
		p.refR = m.seqLogp(w0, p.prompt, p.rejected, 0, nil)
		pairs = append(pairs, p)
	}
	return pairs
}

// batchLossGrad computes the loss of a batch and the gradients of the LoRA tensors (in
// ParamShapes order) through the per-pair gradients the loss returns.
func (m *toyModel) batchLossGrad(loss Loss, pairs []toyPair) (float64, []PairLogps, [][]float32, error) {
	w := m.weights(false)
	logps := make([]PairLogps, len(pairs))
	for i, p := range pairs {
		logps[i] = PairLogps{
			PolicyChosen: m.seqLogp(w, p.prompt, p.chosen, 0, nil), PolicyRejected: m.seqLogp(w, p.prompt, p.rejected, 0, nil),
			RefChosen: p.refC, RefRejected: p.refR, ChosenTokens: len(p.chosen), RejectedTokens: len(p.rejected),
		}
	}
	l, pg, err := loss.Compute(logps)
	if err != nil {
		return 0, nil, nil, err
	}
	gw := make([]float64, m.v*m.v)
	for i, p := range pairs {
		m.seqLogp(w, p.prompt, p.chosen, pg[i].Chosen, gw)
		m.seqLogp(w, p.prompt, p.rejected, pg[i].Rejected, gw)
	}
	// W = W0 + s·B·A: dA = s·Bᵀ·G, dB = s·G·Aᵀ
	lt, r, s := m.lora.Tensors[0], m.lora.Rank, m.lora.Scale()
	ga, gb := make([]float32, len(lt.A)), make([]float32, len(lt.B))
	for k := 0; k < r; k++ {
		for i := 0; i < m.v; i++ {
			var acc float64
			for o := 0; o < m.v; o++ {
				acc += float64(lt.B[o*r+k]) * gw[o*m.v+i]
			}
			ga[k*m.v+i] = float32(s * acc)
		}
	}
	for o := 0; o < m.v; o++ {
		for k := 0; k < r; k++ {
			var acc float64
			for i := 0; i < m.v; i++ {
				acc += gw[o*m.v+i] * float64(lt.A[k*m.v+i])
			}
			gb[o*r+k] = float32(s * acc)
		}
	}
	return l, logps, [][]float32{ga, gb}, nil
}

// TestToyLoRAGradient checks the chain loss → PairGrad → LoRA A/B against finite differences with
// B non-zero, for BPO and DPO.
func TestToyLoRAGradient(t *testing.T) {
	for _, name := range []string{"bpo", "dpo", "orpo"} {
		t.Run(name, func(t *testing.T) {
			m := newToyModel(t, 6, 2, 3)
			rng := rand.New(rand.NewPCG(4, 4))
			for i := range m.lora.Tensors[0].B {
				m.lora.Tensors[0].B[i] = float32(0.3 * rng.NormFloat64())
			}
			pairs := toyPairs(m, 6, 8)
			p, _ := DefaultLossParams(name)
			p.Beta = 0.5
			loss, err := NewLoss(name, p)
			if err != nil {
				t.Fatal(err)
			}
			_, _, grads, err := m.batchLossGrad(loss, pairs)
			if err != nil {
				t.Fatal(err)
			}
			params := m.lora.Params()
			for ti := range params {
				for j := 0; j < len(params[ti]); j += 3 {
					orig := params[ti][j]
					const h = 1e-2 // float32 parameters: a large step, the loss is smooth away from kinks
					params[ti][j] = orig + h
					lp, _, _, _ := m.batchLossGrad(loss, pairs)
					params[ti][j] = orig - h
					lm, _, _, _ := m.batchLossGrad(loss, pairs)
					params[ti][j] = orig
					fd := (lp - lm) / (2 * h)
					if an := float64(grads[ti][j]); math.Abs(fd-an) > 1e-2*math.Max(1e-3, math.Abs(an)) && math.Abs(fd-an) > 1e-5 {
						t.Errorf("tensor %d[%d]: analytic %g, finite difference %g", ti, j, an, fd)
					}
				}
			}
		})
	}
}

// trainToy trains the toy model with a loss for a number of optimizer steps (batch 8 as two
// micro-batches of 4), writing metrics to dir/metrics.jsonl; it returns the metrics.
func trainToy(t testing.TB, lossName string, params LossParams, dir string, steps int) []StepMetrics {
	t.Helper()
	loss, err := NewLoss(lossName, params)
	if err != nil {
		t.Fatal(err)
	}
	return trainToyLoss(t, loss, dir, steps)
}

// trainToyLoss trains the toy model with any loss for steps optimizer steps (8 pairs each, two
// micro-batches) and returns the logged metrics.
func trainToyLoss(t testing.TB, loss Loss, dir string, steps int) []StepMetrics {
	t.Helper()
	m := newToyModel(t, 12, 4, 1)
	pairs := toyPairs(m, 32, 2)
	opt, err := NewAdamW(AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}, m.lora.ParamShapes())
	if err != nil {
		t.Fatal(err)
	}
	sched, err := NewSchedule("cosine", 0.05, 3, steps)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := NewGradAccumulator(m.lora.ParamShapes())
	if err != nil {
		t.Fatal(err)
	}
	mw, err := OpenMetricsWriter(filepath.Join(dir, MetricsFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer mw.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	order := rng.Perm(len(pairs))
	cursor, epoch := 0, 0
	ma := NewMetricsAccumulator(loss)
	var out []StepMetrics
	for step := 0; step < steps; step++ {
		for micro := 0; micro < 2; micro++ {
			if cursor+4 > len(order) {
				order, cursor = rng.Perm(len(pairs)), 0
				epoch++
			}
			batch := make([]toyPair, 4)
			for i := range batch {
				batch[i] = pairs[order[cursor+i]]
			}
			cursor += 4
			l, logps, grads, err := m.batchLossGrad(loss, batch)
			if err != nil {
				t.Fatal(err)
			}
			ma.Add(logps, l)
			if err := acc.Add(grads, len(batch)); err != nil {
				t.Fatal(err)
			}
		}
		grads, err := acc.Average(nil)
		if err != nil {
			t.Fatal(err)
		}
		acc.Reset()
		norm, err := ClipGradNorm(grads, nil, 1.0)
		if err != nil {
			t.Fatal(err)
		}
		lr := sched.LR(step)
		if err := opt.Step(m.lora.Params(), grads, lr); err != nil {
			t.Fatal(err)
		}
		sm, err := ma.Finish(step+1, float64(epoch)+float64(cursor)/float64(len(pairs)), norm, lr)
		if err != nil {
			t.Fatal(err)
		}
		if err := mw.Write(sm); err != nil {
			t.Fatal(err)
		}
		out = append(out, sm)
	}
	return out
}

func meanLast(ms []StepMetrics, n int, f func(StepMetrics) float64) float64 {
	var s float64
	for _, m := range ms[len(ms)-n:] {
		s += f(m)
	}
	return s / float64(n)
}

// TestToyTraining trains DPO and BPO on the same pairs and seed and checks that the loop learns
// (margin up, loss down) and that the metrics file holds what was returned.
func TestToyTraining(t *testing.T) {
	tests := []struct {
		name   string
		params LossParams
	}{
		{"dpo", LossParams{Beta: 0.1}},
		{"bpo", LossParams{Beta: 0.1, Alpha: 0.3, F: "logistic"}},
	}
	final := map[string]StepMetrics{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ms := trainToy(t, tc.name, tc.params, dir, 150)
			final[tc.name] = ms[len(ms)-1]
			first, last := ms[0], meanLast(ms, 5, func(s StepMetrics) float64 { return s.Loss })
			if last >= first.Loss {
				t.Errorf("loss did not fall: first %v, last-5 mean %v", first.Loss, last)
			}
			if mg := meanLast(ms, 5, func(s StepMetrics) float64 { return s.RewardsMargins }); mg <= 0 {
				t.Errorf("final margin %v <= 0", mg)
			}
			read, err := ReadMetrics(filepath.Join(dir, MetricsFileName))
			if err != nil {
				t.Fatal(err)
			}
			if len(read) != len(ms) || !reflect.DeepEqual(read[len(read)-1], ms[len(ms)-1]) {
				t.Fatalf("read %d steps back, last %+v, want %+v", len(read), read[len(read)-1], ms[len(ms)-1])
			}
			t.Logf("%s: loss %.4f -> %.4f, final rewards/chosen %.4f rejected %.4f margin %.4f, dcr %.2f, chosen_active %.2f, logps/chosen %.3f",
				tc.name, first.Loss, last, ms[len(ms)-1].RewardsChosen, ms[len(ms)-1].RewardsRejected, ms[len(ms)-1].RewardsMargins,
				ms[len(ms)-1].DCRRate, ms[len(ms)-1].ChosenActive, ms[len(ms)-1].LogpsChosen)
		})
	}
	// The BPO paper's observation, reproduced on the toy: DPO widens the margin by lowering the
	// chosen log-probs too (Degraded Chosen Responses); BPO keeps the chosen reward up.
	if d, b := final["dpo"], final["bpo"]; !(b.RewardsChosen > d.RewardsChosen && b.DCRRate < d.DCRRate) {
		t.Errorf("no DCR contrast: DPO rewards/chosen %v dcr %v, BPO rewards/chosen %v dcr %v",
			d.RewardsChosen, d.DCRRate, b.RewardsChosen, b.DCRRate)
	}
}
