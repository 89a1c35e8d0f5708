package llama

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
)

// TestGreedyDeterministicAcrossParallelism generates 8 greedy continuations with 1 and with 8 sequences
// in parallel and requires identical tokens.
func TestGreedyDeterministicAcrossParallelism(t *testing.T) {
	for _, path := range []string{fixture.File(t, stories260K), randomModel(t, smallSpec(t, "qwen2", ggml.TypeQ8_0))} {
		m := mustLoad(t, path)
		ctx := mustContext(t, m, ContextOptions{NCtx: 1024, NSeq: 8})
		var reqs []GenRequest
		for i := 0; i < 8; i++ {
			p := mustTokenize(t, m, storyPrompts[i%len(storyPrompts)], true)
			reqs = append(reqs, GenRequest{Prompt: p[:2+i], MaxTokens: 24 + i})
		}
		one, err := ctx.Generate(context.Background(), reqs, GenerateOptions{Parallel: 1})
		if err != nil {
			t.Fatal(err)
		}
		var streamed [8]strings.Builder
		done := 0
		eight, err := ctx.Generate(context.Background(), reqs, GenerateOptions{Parallel: 8,
			OnToken: func(req int, tok Token, piece string) { streamed[req].WriteString(piece) },
			OnDone:  func(req int, res GenResult) { done++ }})
		if err != nil {
			t.Fatal(err)
		}
		if done != 8 {
			t.Errorf("OnDone called %d times, want 8", done)
		}
		for i := range reqs {
			if !reflect.DeepEqual(one[i].Tokens, eight[i].Tokens) {
				t.Errorf("%s request %d: parallel 1 gave %v, parallel 8 gave %v", path, i, one[i].Tokens, eight[i].Tokens)
			}
			if streamed[i].String() != eight[i].Text {
				t.Errorf("request %d: streamed %q, result %q", i, streamed[i].String(), eight[i].Text)
			}
		}
		again, err := ctx.Generate(context.Background(), reqs, GenerateOptions{Parallel: 3})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(one, again) {
			t.Errorf("%s: a third run with 3 parallel sequences differs", path)
		}
	}
}

func TestGenerateStopsAndSampling(t *testing.T) {
	m := mustLoad(t, fixture.File(t, stories260K))
	ctx := mustContext(t, m, ContextOptions{NCtx: 512, NSeq: 4})
	prompt := mustTokenize(t, m, "Once upon a time", true)
	greedy, err := ctx.Generate(context.Background(), []GenRequest{{Prompt: prompt, MaxTokens: 40}}, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	text := greedy[0].Text
	if greedy[0].StopReason != StopLength || len(greedy[0].Tokens) != 40 {
		t.Fatalf("want 40 tokens and stop reason length, got %d %q", len(greedy[0].Tokens), greedy[0].StopReason)
	}
	// Stop at the first "." of the greedy text.
	dot := strings.Index(text, ".")
	if dot < 0 {
		t.Fatalf("greedy text has no period: %q", text)
	}
	stopped, err := ctx.Generate(context.Background(), []GenRequest{{Prompt: prompt, MaxTokens: 40, Stop: []string{"."}}}, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if stopped[0].StopReason != StopString || stopped[0].Text != text[:dot] {
		t.Errorf("stop string: got %q (%s), want %q", stopped[0].Text, stopped[0].StopReason, text[:dot])
	}
	// Sampling: same seed, same text; different seeds, some difference; top_k 1 equals greedy.
	sample := func(s Sampling) string {
		res, err := ctx.Generate(context.Background(), []GenRequest{{Prompt: prompt, MaxTokens: 40, Sampling: s}}, GenerateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Text
	}
	hot := Sampling{Temperature: 1.2, TopP: 0.95, MinP: 0.01, Seed: 1}
	if a, b := sample(hot), sample(hot); a != b {
		t.Errorf("same seed gave %q and %q", a, b)
	}
	differ := false
	for seed := uint64(2); seed < 6; seed++ {
		h := hot
		h.Seed = seed
		if sample(h) != sample(hot) {
			differ = true
		}
	}
	if !differ {
		t.Error("5 seeds at temperature 1.2 all gave the same text")
	}
	if got := sample(Sampling{Temperature: 0.8, TopK: 1, Seed: 9}); got != text {
		t.Errorf("top_k 1 gave %q, greedy %q", got, text)
	}
}
