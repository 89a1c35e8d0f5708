package eval

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/bpo-dev/bpo/eval/bench"
)

// replayGenerator answers each question with its reference solution from the data set (a real
// input, no model involved). With N > 1, odd-numbered completions answer with the solution of
// another question, so that some are wrong. It runs `parallel` workers that finish requests out
// of order, serializing onDone as the Generator contract requires. delay slows each request.
type replayGenerator struct {
	solutions map[string]string // question -> solution
	others    []string          // solutions used as wrong answers
	parallel  int
	delay     time.Duration
	failQ     string // a question whose request reports an error
	// wrongEvery > 0 makes the first completion of every wrongEvery-th question (by length of
	// the question text) another question's solution.
	wrongEvery int
}

func newReplay(samples []bench.Sample, parallel int) *replayGenerator {
	g := &replayGenerator{solutions: map[string]string{}, parallel: parallel}
	for _, s := range samples {
		g.solutions[s.Question] = s.Solution
		g.others = append(g.others, s.Solution)
	}
	return g
}

func promptQuestion(p bench.Prompt) string {
	if len(p.Messages) > 0 {
		return p.Messages[len(p.Messages)-1].Content
	}
	return p.Text
}

func (g *replayGenerator) Generate(ctx context.Context, reqs []GenRequest, onDone func(int, GenResult)) error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	for w := range max(g.parallel, 1) {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range next {
				if g.delay > 0 {
					time.Sleep(g.delay + time.Duration(rng.IntN(3))*time.Millisecond)
				}
				q := promptQuestion(reqs[i].Prompt)
				res := GenResult{PromptTokens: len(q) / 4}
				if q == g.failQ {
					res.Err = fmt.Errorf("replay: refusing %q", q)
				} else {
					for j := range max(reqs[i].Params.N, 1) {
						text := g.solutions[q]
						if j%2 == 1 || (j == 0 && g.wrongEvery > 0 && len(q)%g.wrongEvery == 0) {
							text = g.others[(len(q)+j)%len(g.others)]
						}
						res.Texts = append(res.Texts, text)
						res.Tokens = append(res.Tokens, len(text)/4)
						res.StopReasons = append(res.StopReasons, "eos")
					}
				}
				mu.Lock()
				onDone(i, res)
				mu.Unlock()
			}
		}(w)
	}
	var err error
feed:
	for i := range reqs {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		case next <- i:
		}
	}
	close(next)
	wg.Wait()
	return err
}
