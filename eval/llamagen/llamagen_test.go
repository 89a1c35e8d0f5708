package llamagen

import (
	"context"
	"reflect"
	"testing"

	"github.com/bpo-dev/bpo/eval"
	"github.com/bpo-dev/bpo/eval/bench"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/llama"
)

func newGenerator(t *testing.T, parallel int) *Generator {
	t.Helper()
	m, err := llama.LoadModel(fixture.File(t, "models/stories260K.gguf"), llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	c, err := llama.NewContext(m, llama.ContextOptions{NCtx: 2048, NSeq: parallel, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Generator{Model: m, Ctx: c, Parallel: parallel, DefaultMaxNewTokens: 24}
}

// TestRunParallelAndResume evaluates GSM8K questions with stories260K: 1 and 4 parallel sequences give
// identical greedy records, and a run cancelled midway resumes to the same result.
func TestRunParallelAndResume(t *testing.T) {
	samples, err := bench.LoadEmbedded(bench.GSM8K, "test")
	if err != nil {
		t.Fatal(err)
	}
	samples = samples[:10]
	opts := eval.Options{Prompter: bench.FewShotPrompter{}, PromptName: bench.FormatGSM8KFewShot, Method: "flexible", Gen: eval.GenParams{MaxNewTokens: 24}, BatchSize: 4}
	records := func(dir string) map[string]eval.Record {
		recs, err := eval.ReadRecords(dir)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]eval.Record{}
		for _, r := range recs {
			out[r.ID] = r
		}
		return out
	}
	one, four := t.TempDir(), t.TempDir()
	if _, err := eval.Run(context.Background(), newGenerator(t, 1), "gsm8k", samples, opts, one); err != nil {
		t.Fatal(err)
	}
	if _, err := eval.Run(context.Background(), newGenerator(t, 4), "gsm8k", samples, opts, four); err != nil {
		t.Fatal(err)
	}
	a, b := records(one), records(four)
	if len(a) != 10 || len(b) != 10 {
		t.Fatalf("%d and %d records", len(a), len(b))
	}
	for id, r := range a {
		if !reflect.DeepEqual(r.Responses, b[id].Responses) || r.Tokens[0] == 0 {
			t.Errorf("%s: parallel 1 %q, parallel 4 %q", id, r.Responses, b[id].Responses)
		}
	}
	// Cancel after the first batch, then resume.
	resumed := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	o := opts
	o.OnProgress = func(done, total int) {
		if done >= 4 {
			cancel()
		}
	}
	sum, err := eval.Run(ctx, newGenerator(t, 4), "gsm8k", samples, o, resumed)
	if err == nil || sum == nil || sum.Complete {
		t.Fatalf("cancelled run: err %v, summary %+v", err, sum)
	}
	partial := len(records(resumed))
	if partial < 4 || partial >= 10 {
		t.Fatalf("%d records after the cancel", partial)
	}
	if _, err := eval.Run(context.Background(), newGenerator(t, 4), "gsm8k", samples, opts, resumed); err != nil {
		t.Fatal(err)
	}
	c := records(resumed)
	for id, r := range a {
		if !reflect.DeepEqual(r.Responses, c[id].Responses) {
			t.Errorf("%s after resume: %q, want %q", id, c[id].Responses, r.Responses)
		}
	}
	t.Logf("cancelled after %d of 10 questions; resumed run matches the uninterrupted one", partial)
}
