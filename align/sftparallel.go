package align

import (
	"context"
	"errors"
	"fmt"
)

// sftGradient computes the gradient of an SFT step: the mean completion NLL over the batch's
// tokens. A batch of one micro-batch in one process is one NLLGradient call. Otherwise the batch is
// cut into micro-batches (gradient accumulation): micro-batch k's gradient is weighted by its
// completion tokens, so the average is the whole batch's. Over several ranks (Comm) micro-batch k
// goes to rank k mod size in round k / size; after each round every rank gathers all the round's
// gradients and adds them in micro-batch order, as one process does, so that every rank takes the
// same clip + AdamW step, bit for bit the single-process one with the same micro-batch.
type sftGradient struct {
	policy     SFTPolicy
	comm       Comm
	micro      int // sequences per micro-batch; 0: the whole batch
	acc        *GradAccumulator
	microGrads [][]float32
	dp         *dataParallel // nil in one process
}

func newSFTGradient(policy SFTPolicy, shapes []ParamShape, micro int, comm Comm) (*sftGradient, error) {
	if micro < 0 {
		return nil, fmt.Errorf("sft: micro-batch %d: want >= 0 (0: the whole batch)", micro)
	}
	acc, err := NewGradAccumulator(shapes)
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	g := &sftGradient{policy: policy, comm: commOrSingle(comm), micro: micro, acc: acc}
	g.microGrads = make([][]float32, len(shapes))
	for i, s := range shapes {
		g.microGrads[i] = make([]float32, s.Size)
	}
	if g.comm.Size() > 1 {
		g.dp = newDataParallel(g.comm, shapes)
	}
	return g, nil
}

// completionTokens is the number of tokens a batch's NLL is averaged over.
func completionTokens(batch []TokenSeq) int {
	n := 0
	for _, s := range batch {
		n += len(s.Completion)
	}
	return n
}

// compute writes the batch's gradient into grads and returns the batch's mean completion NLL.
func (g *sftGradient) compute(ctx context.Context, batch []TokenSeq, grads [][]float32) (float64, error) {
	micro := g.micro
	if micro <= 0 || micro > len(batch) {
		micro = len(batch)
	}
	var mbs [][]TokenSeq
	for lo := 0; lo < len(batch); lo += micro {
		mbs = append(mbs, batch[lo:min(lo+micro, len(batch))])
	}
	if g.dp == nil && len(mbs) == 1 {
		for i := range grads {
			clear(grads[i])
		}
		return g.policy.NLLGradient(ctx, batch, grads)
	}
	g.acc.Reset()
	var weighted float64 // sum of micro-batch losses times their tokens, in micro-batch order
	add := func(k int, mbGrads [][]float32, loss float64) error {
		if len(mbs) == 1 {
			for i := range grads {
				copy(grads[i], mbGrads[i])
			}
			weighted = loss
			return nil
		}
		n := completionTokens(mbs[k])
		weighted += loss * float64(n)
		return g.acc.Add(mbGrads, n)
	}
	if g.dp == nil {
		for k, mb := range mbs {
			for _, gr := range g.microGrads {
				clear(gr)
			}
			loss, err := g.policy.NLLGradient(ctx, mb, g.microGrads)
			if err != nil {
				return 0, err
			}
			if err := add(k, g.microGrads, loss); err != nil {
				return 0, err
			}
		}
	} else if err := g.computeParallel(ctx, mbs, add); err != nil {
		return 0, err
	}
	if len(mbs) == 1 {
		return weighted, nil
	}
	if _, err := g.acc.Average(grads); err != nil {
		return 0, err
	}
	return weighted / float64(completionTokens(batch)), nil
}

// computeParallel runs the micro-batches over the ranks and hands every micro-batch's gradient and
// loss to add, in micro-batch order, on every rank.
func (g *sftGradient) computeParallel(
	ctx context.Context,
	mbs [][]TokenSeq,
	add func(k int, grads [][]float32, loss float64) error,
) error {
	size, rank := g.comm.Size(), g.comm.Rank()
	for first := 0; first < len(mbs); first += size {
		meta := []float64{mbNone, 0} // status, loss
		clear(g.dp.send)
		var localErr error
		if k := first + rank; k < len(mbs) {
			for _, gr := range g.microGrads {
				clear(gr)
			}
			loss, err := g.policy.NLLGradient(ctx, mbs[k], g.microGrads)
			switch {
			case err != nil && ctx.Err() != nil:
				meta, localErr = []float64{mbInterrupted, 0}, ctx.Err()
			case err != nil:
				meta, localErr = []float64{mbFailed, 0}, err
			default:
				meta = []float64{mbOK, loss}
				off := 0
				for _, gr := range g.microGrads {
					off += copy(g.dp.send[off:], gr)
				}
			}
		} else if ctx.Err() != nil {
			meta, localErr = []float64{mbInterrupted, 0}, ctx.Err()
		}
		metas := make([]float64, 2*size)
		if err := g.comm.AllgatherFloat64(meta, metas); err != nil {
			return fmt.Errorf("gather the micro-batches' status: %w", err)
		}
		// Every rank takes the same decision from the gathered statuses.
		for r := range size {
			switch metas[2*r] {
			case mbInterrupted:
				if localErr != nil {
					return fmt.Errorf("%w: %w", errJobInterrupted, localErr)
				}
				return fmt.Errorf("%w (rank %d)", errJobInterrupted, r)
			case mbFailed:
				if localErr != nil {
					return fmt.Errorf("rank %d of %d: %w", rank, size, localErr)
				}
				return fmt.Errorf("rank %d failed (its log says why)", r)
			}
		}
		if err := g.comm.AllgatherFloat32(g.dp.send, g.dp.recv); err != nil {
			return fmt.Errorf("gather the gradients: %w", err)
		}
		for r := range size {
			k := first + r
			if k >= len(mbs) {
				break
			}
			if metas[2*r] != mbOK {
				return errors.New("a rank sent no gradient for its micro-batch")
			}
			if err := add(k, g.dp.views[r], metas[2*r+1]); err != nil {
				return err
			}
		}
	}
	return nil
}
