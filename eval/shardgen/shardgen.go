// Package shardgen spreads the generation of an evaluation over the ranks of an MPI job (bpo eval
// and bpo pairs under mpirun). Rank 0 runs eval.Run as a single process would, with a Leader as its
// generator: every batch that eval.Run hands to the Leader is sent to all ranks, each rank generates
// its share (request i goes to rank i mod size) with its own model, and the results come back to
// rank 0, which reports them in request order. Only rank 0 touches the run folder, so the folder is
// the one a single process writes: same settings, records, summary and resumption. The other ranks
// run Serve until the Leader closes.
//
// Sampled completions draw from eval.SampleSeed(seed, question id, sample), so a question's
// answers do not depend on the rank that generated them. Messages are gob-encoded: texts travel as
// their bytes (JSON would replace the invalid UTF-8 a model may generate).
package shardgen

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"

	"github.com/bpo-dev/bpo/eval"
)

// Comm is the collective the ranks share: internal/mpi's World implements it.
type Comm interface {
	Rank() int
	Size() int
	// AllgatherBytes gathers every rank's bytes (any lengths) and returns them in rank order.
	AllgatherBytes(send []byte) ([][]byte, error)
}

// order is what rank 0 sends to all ranks: a batch to generate, or the end of the job.
type order struct {
	Stop     bool
	Requests []eval.GenRequest
}

// result is one finished request of a rank's share.
type result struct {
	Index        int
	Texts        []string
	Tokens       []int
	StopReasons  []string
	PromptTokens int
	Err          string
}

// report is a rank's answer to an order: its finished requests and how its share ended.
type report struct {
	Results     []result
	Interrupted bool   // the rank's context was cancelled
	Err         string // the rank's generator failed
}

// Leader is rank 0's eval.Generator: it shares every batch with the other ranks. Close it (on every
// path) to release them.
type Leader struct {
	comm   Comm
	local  eval.Generator
	closed bool
}

// NewLeader returns the generator of rank 0 of comm; local generates rank 0's share.
func NewLeader(comm Comm, local eval.Generator) (*Leader, error) {
	if comm.Rank() != 0 {
		return nil, fmt.Errorf("shardgen: the leader is rank 0, not rank %d", comm.Rank())
	}
	return &Leader{comm: comm, local: local}, nil
}

// Generate implements eval.Generator over all ranks. onDone is called in request order once every
// rank has reported. When any rank was interrupted the finished requests are still reported and
// the error wraps context.Canceled; a rank whose generator failed fails the batch, naming the rank.
func (l *Leader) Generate(ctx context.Context, reqs []eval.GenRequest, onDone func(i int, res eval.GenResult)) error {
	if l.closed {
		return errors.New("shardgen: generate after close")
	}
	reports, err := exchange(ctx, l.comm, l.local, order{Requests: reqs})
	if err != nil {
		return err
	}
	byIndex := make([]*result, len(reqs))
	var interrupted []int
	var failures []error
	for r, rep := range reports {
		if rep.Interrupted {
			interrupted = append(interrupted, r)
		}
		if rep.Err != "" {
			failures = append(failures, fmt.Errorf("rank %d: %s", r, rep.Err))
		}
		for k := range rep.Results {
			res := &rep.Results[k]
			if res.Index < 0 || res.Index >= len(reqs) || res.Index%l.comm.Size() != r || byIndex[res.Index] != nil {
				return fmt.Errorf(
					"shardgen: rank %d reported request %d, which is not its own (%d requests)",
					r,
					res.Index,
					len(reqs),
				)
			}
			byIndex[res.Index] = res
		}
	}
	for i, res := range byIndex {
		if res == nil {
			continue
		}
		out := eval.GenResult{
			Texts:        res.Texts,
			Tokens:       res.Tokens,
			StopReasons:  res.StopReasons,
			PromptTokens: res.PromptTokens,
		}
		if res.Err != "" {
			out.Err = errors.New(res.Err)
		}
		onDone(i, out)
	}
	if err := errors.Join(failures...); err != nil {
		return fmt.Errorf("shardgen: %w", err)
	}
	if len(interrupted) > 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("shardgen: rank %v interrupted: %w", interrupted, context.Canceled)
	}
	return nil
}

// Close releases the other ranks from Serve. It is a collective call of the job: the other ranks
// are waiting for rank 0's next order.
func (l *Leader) Close() error {
	if l.closed {
		return nil
	}
	l.closed = true
	_, err := exchange(context.Background(), l.comm, nil, order{Stop: true})
	return err
}

// Serve is the loop of a rank other than 0: it generates its share of each of rank 0's batches
// with local until the Leader closes. It returns ctx's error when this rank was interrupted (after
// reporting what it finished), so that every rank of an interrupted job stops with the same status.
func Serve(ctx context.Context, comm Comm, local eval.Generator) error {
	if comm.Rank() == 0 {
		return errors.New("shardgen: rank 0 leads, it does not serve")
	}
	interrupted := false
	for {
		o, err := receive(comm)
		if err != nil {
			return err
		}
		if o.Stop {
			if interrupted {
				return ctx.Err()
			}
			return nil
		}
		rep := generateShare(ctx, comm, local, o.Requests)
		interrupted = interrupted || rep.Interrupted
		if _, err := sendReport(comm, rep); err != nil {
			return err
		}
	}
}

// exchange is rank 0's side of one order: broadcast it, generate rank 0's share, gather the reports.
func exchange(ctx context.Context, comm Comm, local eval.Generator, o order) ([]report, error) {
	raw, err := encode(o)
	if err != nil {
		return nil, fmt.Errorf("shardgen: encode the order: %w", err)
	}
	if _, err := comm.AllgatherBytes(raw); err != nil {
		return nil, fmt.Errorf("shardgen: send the order to the ranks: %w", err)
	}
	if o.Stop {
		return nil, nil
	}
	return sendReport(comm, generateShare(ctx, comm, local, o.Requests))
}

// receive is the other ranks' side of rank 0's broadcast.
func receive(comm Comm) (order, error) {
	all, err := comm.AllgatherBytes(nil)
	if err != nil {
		return order{}, fmt.Errorf("shardgen: rank %d: receive rank 0's order: %w", comm.Rank(), err)
	}
	var o order
	if err := decode(all[0], &o); err != nil {
		return order{}, fmt.Errorf("shardgen: rank %d: rank 0's order: %w", comm.Rank(), err)
	}
	return o, nil
}

// sendReport gathers every rank's report.
func sendReport(comm Comm, rep report) ([]report, error) {
	raw, err := encode(rep)
	if err != nil {
		return nil, fmt.Errorf("shardgen: rank %d: encode the results: %w", comm.Rank(), err)
	}
	all, err := comm.AllgatherBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("shardgen: rank %d: gather the results: %w", comm.Rank(), err)
	}
	reports := make([]report, len(all))
	for r, b := range all {
		if err := decode(b, &reports[r]); err != nil {
			return nil, fmt.Errorf("shardgen: rank %d's results: %w", r, err)
		}
	}
	return reports, nil
}

// generateShare generates the requests i with i mod size == rank.
func generateShare(ctx context.Context, comm Comm, local eval.Generator, reqs []eval.GenRequest) report {
	var mine []eval.GenRequest
	var index []int
	for i := comm.Rank(); i < len(reqs); i += comm.Size() {
		mine, index = append(mine, reqs[i]), append(index, i)
	}
	var rep report
	if len(mine) == 0 {
		rep.Interrupted = ctx.Err() != nil
		return rep
	}
	err := local.Generate(ctx, mine, func(k int, res eval.GenResult) {
		if k < 0 || k >= len(mine) {
			return // eval.Run's contract: the generator reports only its own requests
		}
		r := result{
			Index: index[k], Texts: res.Texts, Tokens: res.Tokens, StopReasons: res.StopReasons,
			PromptTokens: res.PromptTokens,
		}
		if res.Err != nil {
			r.Err = res.Err.Error()
		}
		rep.Results = append(rep.Results, r)
	})
	switch {
	case err != nil && ctx.Err() != nil:
		rep.Interrupted = true
	case err != nil:
		rep.Err = err.Error()
	}
	return rep
}

func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	err := gob.NewEncoder(&b).Encode(v)
	return b.Bytes(), err
}

func decode(raw []byte, v any) error { return gob.NewDecoder(bytes.NewReader(raw)).Decode(v) }
