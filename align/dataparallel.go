package align

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Data-parallel training (TrainConfig.Comm with more than one rank). Every rank holds the model
// and the data; a step's micro-batches are dealt to the ranks in rounds (micro-batch k goes to
// rank k mod size in round k / size). After each round every rank gathers all ranks' micro-batch
// gradients and policy log-probs and adds them, in micro-batch order, into the same accumulator a
// single process would have filled: the averaged gradient, and so the clip + AdamW step that every
// rank then takes, is bit for bit the single-process one with the same batch and micro-batch.

// errJobInterrupted is returned when some rank's context was cancelled during a step: every rank
// stops after the same completed step, as an interrupted one (it wraps context.Canceled, so that
// every rank ends normally and none aborts the job while rank 0 saves the checkpoint).
var errJobInterrupted = fmt.Errorf("a rank of the job was interrupted: %w", context.Canceled)

// Status codes of a rank's micro-batch in a round's gather.
const (
	mbNone        = 0 // the rank had no micro-batch in this round
	mbOK          = 1
	mbFailed      = 2
	mbInterrupted = 3
)

// dataParallel holds the buffers of the gathers.
type dataParallel struct {
	comm       Comm
	size       int // values of one gradient
	send, recv []float32
	views      [][][]float32 // views[r][i]: rank r's tensor i inside recv
}

func newDataParallel(comm Comm, shapes []ParamShape) *dataParallel {
	d := &dataParallel{comm: comm}
	for _, s := range shapes {
		d.size += s.Size
	}
	d.send = make([]float32, d.size)
	d.recv = make([]float32, d.size*comm.Size())
	d.views = make([][][]float32, comm.Size())
	for r := range d.views {
		off := r * d.size
		for _, s := range shapes {
			d.views[r] = append(d.views[r], d.recv[off:off+s.Size:off+s.Size])
			off += s.Size
		}
	}
	return d
}

// trainStepParallel runs the micro-batches of step pairs idx over the ranks and accumulates them
// into t.acc and ma in micro-batch order.
func (t *Trainer) trainStepParallel(ctx context.Context, idx []int, ma *MetricsAccumulator) error {
	var mbs [][]int
	for lo := 0; lo < len(idx); lo += t.cfg.MicroBatch {
		mbs = append(mbs, idx[lo:min(lo+t.cfg.MicroBatch, len(idx))])
	}
	withPrompt, withShared := needsPromptLogps(t.cfg.Loss), needsSharedLogps(t.cfg.Loss)
	size, rank := t.comm.Size(), t.comm.Rank()
	for first := 0; first < len(mbs); first += size {
		// This rank's micro-batch of the round: meta is [status, loss, n, chosen[n], rejected[n]].
		meta := []float64{mbNone}
		clear(t.dp.send)
		var localErr error
		if k := first + rank; k < len(mbs) {
			mIdx := mbs[k]
			batch := t.pairsAt(mIdx)
			fwd, lay := extendBatch(batch, withPrompt, withShared)
			calls := 0
			lossFn := t.microBatchLoss(batch, mIdx, lay, len(fwd), func(_ []PairLogps, l float64, chosen, rejected []float64) {
				calls++
				meta = append(append([]float64{mbOK, l, float64(len(chosen))}, chosen...), rejected...)
			})
			for _, g := range t.microGrads {
				clear(g)
			}
			t0 := time.Now()
			err := t.policy.ForwardBackward(ctx, fwd, lossFn, t.microGrads)
			t.result.PolicyTime += time.Since(t0)
			if err == nil && calls != 1 {
				err = errors.New("the policy did not call the loss exactly once per micro-batch")
			}
			switch {
			case err != nil && ctx.Err() != nil:
				meta, localErr = []float64{mbInterrupted}, ctx.Err()
			case err != nil:
				meta, localErr = []float64{mbFailed}, err
			default:
				off := 0
				for _, g := range t.microGrads {
					off += copy(t.dp.send[off:], g)
				}
			}
		} else if ctx.Err() != nil {
			meta, localErr = []float64{mbInterrupted}, ctx.Err()
		}
		metas, err := GatherFloat64s(t.comm, meta)
		if err != nil {
			return fmt.Errorf("step %d: gather the micro-batches' log-probs: %w", t.step+1, err)
		}
		// Every rank takes the same decision from the gathered statuses.
		for r, m := range metas {
			switch m[0] {
			case mbInterrupted:
				if localErr != nil {
					return fmt.Errorf("step %d: %w: %w", t.step+1, errJobInterrupted, localErr)
				}
				return fmt.Errorf("step %d: %w (rank %d)", t.step+1, errJobInterrupted, r)
			case mbFailed:
				if localErr != nil {
					return fmt.Errorf("step %d (rank %d of %d): %w", t.step+1, rank, size, localErr)
				}
				return fmt.Errorf("step %d: rank %d failed (its log says why)", t.step+1, r)
			}
		}
		if err := t.comm.AllgatherFloat32(t.dp.send, t.dp.recv); err != nil {
			return fmt.Errorf("step %d: gather the gradients: %w", t.step+1, err)
		}
		for r, m := range metas {
			k := first + r
			if k >= len(mbs) {
				break
			}
			if m[0] != mbOK || len(m) < 3 || len(m) != 3+2*int(m[2]) {
				return fmt.Errorf(
					"step %d: rank %d sent a malformed micro-batch record (%d values)",
					t.step+1,
					r,
					len(m),
				)
			}
			n := int(m[2])
			batch := t.pairsAt(mbs[k])
			_, lay := extendBatch(batch, withPrompt, withShared)
			pl, err := lay.logps(batch, t.trainRef, mbs[k], m[3:3+n], m[3+n:])
			if err != nil {
				return fmt.Errorf("step %d: rank %d: %w", t.step+1, r, err)
			}
			ma.Add(pl, m[1])
			if err := t.acc.Add(t.dp.views[r], len(mbs[k])); err != nil {
				return fmt.Errorf("step %d: %w", t.step+1, err)
			}
		}
	}
	return nil
}

// ReferenceBatch is the number of pairs a reference scorer (llamaalign.ReferenceLogps) scores in one
// batch; ShardedReferenceLogps cuts shards on its multiples.
const ReferenceBatch = 16

// ShardedReferenceLogps computes the reference log-probs of pairs over the ranks of comm: each rank
// scores (with score, e.g. llamaalign.ReferenceLogps) a contiguous shard that starts on a multiple of
// ReferenceBatch (so every pair is scored in the same batch as in one process), and every rank
// returns all of them, in order.
func ShardedReferenceLogps(
	ctx context.Context,
	comm Comm,
	pairs []TokenizedPair,
	score func(ctx context.Context, pairs []TokenizedPair) ([]RefLogps, error),
) ([]RefLogps, error) {
	comm = commOrSingle(comm)
	chunks := (len(pairs) + ReferenceBatch - 1) / ReferenceBatch
	size, rank := comm.Size(), comm.Rank()
	lo, hi := min(rank*chunks/size*ReferenceBatch, len(pairs)), min((rank+1)*chunks/size*ReferenceBatch, len(pairs))
	var mine []float64
	if lo < hi {
		refs, err := score(ctx, pairs[lo:hi])
		if err != nil {
			return nil, fmt.Errorf("rank %d of %d: %w", rank, size, err)
		}
		for _, r := range refs {
			mine = append(mine, r.Chosen, r.Rejected)
		}
	}
	shards, err := GatherFloat64s(comm, mine)
	if err != nil {
		return nil, fmt.Errorf("reference log-probs: gather the shards: %w", err)
	}
	out := make([]RefLogps, 0, len(pairs))
	for r, sh := range shards {
		rlo, rhi := min(r*chunks/size*ReferenceBatch, len(pairs)), min((r+1)*chunks/size*ReferenceBatch, len(pairs))
		if len(sh) != 2*(rhi-rlo) {
			return nil, fmt.Errorf(
				"reference log-probs: rank %d sent %d values for pairs %d..%d, want %d",
				r,
				len(sh),
				rlo,
				rhi,
				2*(rhi-rlo),
			)
		}
		for i := 0; i < len(sh); i += 2 {
			out = append(out, RefLogps{Chosen: sh[i], Rejected: sh[i+1]})
		}
	}
	return out, nil
}
