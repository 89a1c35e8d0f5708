package eval_test

import (
	"context"
	"fmt"
	"os"

	"github.com/bpo-dev/bpo/eval"
	"github.com/bpo-dev/bpo/eval/bench"
)

// goldGenerator is a Generator that answers every question with its reference solution; a real one
// (eval/llamagen) decodes with a model.
type goldGenerator map[string]string

func (g goldGenerator) Generate(_ context.Context, reqs []eval.GenRequest, onDone func(int, eval.GenResult)) error {
	for i, r := range reqs {
		q := r.Prompt.Text
		if n := len(r.Prompt.Messages); n > 0 {
			q = r.Prompt.Messages[n-1].Content
		}
		onDone(i, eval.GenResult{Texts: []string{g[q]}, Tokens: []int{len(g[q]) / 4}, StopReasons: []string{"eos"}})
	}
	return nil
}

// Run evaluates questions of a benchmark with a Generator, grades the answers and writes the run
// directory (samples.jsonl, summary.json, summary.md); running it again resumes.
func ExampleRun() {
	samples, err := bench.LoadEmbedded(bench.GSM8K, "test")
	if err != nil {
		fmt.Println(err)
		return
	}
	samples, _ = bench.Select(samples, bench.Selection{Limit: 5})
	gen := goldGenerator{}
	for _, s := range samples {
		gen[s.Question] = s.Solution
	}
	dir, err := os.MkdirTemp("", "bpo-example-run")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	sum, err := eval.Run(context.Background(), gen, bench.GSM8K, samples, eval.Options{Model: "gold"}, dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d/%d correct, accuracy %.2f, complete %v\n", sum.Correct, sum.N, sum.Accuracy, sum.Complete)
	// Output:
	// 5/5 correct, accuracy 1.00, complete true
}
