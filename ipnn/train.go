package ipnn

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// TrainOptions controls the training loop.
type TrainOptions struct {
	Epochs int
	Batch  int
	LR     float64
	// WeightDecay is Adam's L2 weight decay (PyTorch's weight_decay; 0: none).
	WeightDecay float64
	// EvalEachEpoch measures test accuracy after every epoch (else only at the end).
	EvalEachEpoch bool
	// EvalBatch is the inference batch size (default 500).
	EvalBatch int
	// Progress, if set, is called after every optimisation step.
	Progress func(epoch, step, steps int, loss float64)
}

// TrainStats is what the training loop measured.
type TrainStats struct {
	EpochLoss     []float64 `json:"epoch_loss"`
	EpochAccuracy []float64 `json:"epoch_accuracy,omitempty"`
	TrainSeconds  float64   `json:"train_seconds"`
	Steps         int       `json:"steps"`
}

// Train optimises m on train with Adam, shuffling with rng every epoch.
func Train(ctx context.Context, m *Model, train, test *Dataset, opt TrainOptions, rng *rand.Rand) (TrainStats, error) {
	var st TrainStats
	if opt.Epochs < 1 || opt.Batch < 1 || !(opt.LR > 0) {
		return st, fmt.Errorf(
			"train: epochs (%d) and batch (%d) must be >= 1 and lr (%v) > 0",
			opt.Epochs,
			opt.Batch,
			opt.LR,
		)
	}
	if !(opt.WeightDecay >= 0) {
		return st, fmt.Errorf("train: weight decay %v, want >= 0", opt.WeightDecay)
	}
	if train.Dim != m.InputDim() {
		return st, fmt.Errorf("train: data %s has width %d, model expects %d", train.Name, train.Dim, m.InputDim())
	}
	adam := NewAdam(opt.LR)
	adam.WeightDecay = opt.WeightDecay
	params := m.Net.Params()
	var x, dl Mat
	var y []int64
	start := time.Now()
	n := train.Len()
	steps := (n + opt.Batch - 1) / opt.Batch
	for ep := 0; ep < opt.Epochs; ep++ {
		perm := rng.Perm(n)
		sum := 0.0
		for s := 0; s < steps; s++ {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			idx := perm[s*opt.Batch : min((s+1)*opt.Batch, n)]
			train.batch(idx, &x, &y)
			loss, _ := m.step(x, y, &dl)
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return st, fmt.Errorf("train: loss became %v at epoch %d step %d", loss, ep+1, s+1)
			}
			adam.Step(params, m.Net.Grads())
			sum += loss
			st.Steps++
			if opt.Progress != nil {
				opt.Progress(ep, s, steps, loss)
			}
		}
		st.EpochLoss = append(st.EpochLoss, sum/float64(steps))
		if opt.EvalEachEpoch && test != nil {
			acc, _ := Evaluate(m, test, opt.EvalBatch)
			st.EpochAccuracy = append(st.EpochAccuracy, acc)
		}
	}
	st.TrainSeconds = time.Since(start).Seconds()
	return st, nil
}

// Evaluate returns the accuracy of m on d and the predictions.
func Evaluate(m *Model, d *Dataset, batch int) (float64, []int64) {
	if batch <= 0 {
		batch = 500
	}
	var x Mat
	var y []int64
	pred := make([]int64, 0, d.Len())
	correct := 0
	idx := make([]int, 0, batch)
	for lo := 0; lo < d.Len(); lo += batch {
		idx = idx[:0]
		for i := lo; i < min(lo+batch, d.Len()); i++ {
			idx = append(idx, i)
		}
		d.batch(idx, &x, &y)
		p := m.Predict(x)
		for i, v := range p {
			if v == y[i] {
				correct++
			}
		}
		pred = append(pred, p...)
	}
	return float64(correct) / float64(d.Len()), pred
}

// GroupStates returns, for every split group, the most probable state (argmax of
// P(A^j | x)) of every sample of d. IPNN models only.
func GroupStates(m *Model, d *Dataset, batch int) ([][]byte, error) {
	if m.Head == nil {
		return nil, fmt.Errorf("group states: model is not an IPNN model")
	}
	if batch <= 0 {
		batch = 500
	}
	s := m.Head.Split()
	out := make([][]byte, len(s.Sizes))
	var x Mat
	var y []int64
	idx := make([]int, 0, batch)
	for lo := 0; lo < d.Len(); lo += batch {
		idx = idx[:0]
		for i := lo; i < min(lo+batch, d.Len()); i++ {
			idx = append(idx, i)
		}
		d.batch(idx, &x, &y)
		p := m.Head.GroupProbs(m.logits(x))
		n := s.Nodes()
		for b := range idx {
			for g, sz := range s.Sizes {
				o := s.Offset(g)
				best := 0
				for k := 1; k < sz; k++ {
					if p[b*n+o+k] > p[b*n+o+best] {
						best = k
					}
				}
				out[g] = append(out[g], byte(best))
			}
		}
	}
	return out, nil
}
