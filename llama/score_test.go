package llama

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
)

var storyPrompts = []string{
	"Once upon a time, there was a little girl named Lily.",
	"The dog ran to the park and saw a big red ball.",
	"Tom was sad because his toy was broken.",
	"One day, a bird flew into the garden.",
}

// TestLogProbsMatchReference compares llama.cpp's per-token log-probs with the pure-Go reference forward.
func TestLogProbsMatchReference(t *testing.T) {
	cases := []struct {
		name, path string
		tol        float64
	}{
		{"stories260K", fixture.File(t, stories260K), 2e-3},
		{"llama3-f32", randomModel(t, smallSpec(t, "llama3", ggml.TypeF32)), 2e-3},
		{"qwen2-f32", randomModel(t, smallSpec(t, "qwen2", ggml.TypeF32)), 2e-3},
		{"llama2-tiny-f16", fixture.File(t, tinyRandom), 2e-3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := mustLoad(t, c.path)
			ref := loadRefModel(t, c.path)
			ctx := mustContext(t, m, ContextOptions{NCtx: 256})
			for _, text := range storyPrompts[:2] {
				toks := mustTokenize(t, m, text, true)
				if toks[0] != m.BOS() {
					toks = append([]Token{m.BOS()}, toks...)
				}
				got, err := ctx.TokenLogProbs(context.Background(), toks)
				if err != nil {
					t.Fatal(err)
				}
				want := ref.logProbs(toks)
				maxDiff := 0.0
				for i := range want {
					maxDiff = math.Max(maxDiff, math.Abs(got[i]-want[i]))
				}
				t.Logf("%d tokens, max |llama.cpp - reference| = %.2g", len(toks), maxDiff)
				if maxDiff > c.tol {
					t.Errorf("max difference %.3g > %.0g\n got %v\nwant %v", maxDiff, c.tol, got, want)
				}
			}
		})
	}
}

// TestBatchedScoringEqualsOneByOne scores 32 prompt/two-completion requests in shared batches and alone.
func TestBatchedScoringEqualsOneByOne(t *testing.T) {
	m := mustLoad(t, fixture.File(t, stories260K))
	var reqs []ScoreRequest
	for i := 0; i < 32; i++ {
		p := mustTokenize(t, m, storyPrompts[i%len(storyPrompts)], true)
		p = p[:3+i%5]
		chosen := mustTokenize(t, m, fmt.Sprintf(" She had %d cats and a dog.", i), false)
		rejected := mustTokenize(t, m, fmt.Sprintf(" The sun was %d feet tall", i*7), false)
		reqs = append(reqs, ScoreRequest{Prompt: p, Completions: [][]Token{chosen, rejected}})
	}
	batched := mustContext(t, m, ContextOptions{NCtx: 2048, NSeq: 96, NBatch: 256})
	got, err := batched.Score(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	single := mustContext(t, m, ContextOptions{NCtx: 256, NSeq: 3})
	maxDiff := 0.0
	for i, r := range reqs {
		want, err := single.Score(context.Background(), []ScoreRequest{r})
		if err != nil {
			t.Fatal(err)
		}
		for j := range r.Completions {
			if len(got[i][j].LogProbs) != len(r.Completions[j]) {
				t.Fatalf("request %d completion %d: %d log-probs for %d tokens", i, j, len(got[i][j].LogProbs), len(r.Completions[j]))
			}
			// Each completion scored on its own (prompt + completion as one sequence) must agree too.
			for k := range want[0][j].LogProbs {
				maxDiff = math.Max(maxDiff, math.Abs(got[i][j].LogProbs[k]-want[0][j].LogProbs[k]))
			}
		}
	}
	t.Logf("32 pairs: max |batched - one by one| = %.2g", maxDiff)
	if maxDiff > 1e-4 {
		t.Errorf("batched and one-by-one scores differ by %.3g > 1e-4", maxDiff)
	}
	// The same pair as one plain sequence (no shared prompt) gives the same log-probs.
	full := append(append([]Token{}, reqs[5].Prompt...), reqs[5].Completions[1]...)
	lp, err := single.TokenLogProbs(context.Background(), full)
	if err != nil {
		t.Fatal(err)
	}
	tail := lp[len(reqs[5].Prompt)-1:]
	for k, v := range tail {
		if d := math.Abs(v - got[5][1].LogProbs[k]); d > 1e-4 {
			t.Fatalf("token %d: plain sequence %v vs shared prompt %v", k, v, got[5][1].LogProbs[k])
		}
	}
}

// TestRandomModelsScoreAndGenerate loads llama3- and qwen2-shaped random models in F32 and Q8_0.
func TestRandomModelsScoreAndGenerate(t *testing.T) {
	for _, arch := range []string{"llama3", "qwen2"} {
		for _, typ := range []ggml.GGMLType{ggml.TypeF32, ggml.TypeQ8_0} {
			t.Run(arch+"-"+typ.String(), func(t *testing.T) {
				path := randomModel(t, smallSpec(t, arch, typ))
				m := mustLoad(t, path)
				info := m.Info()
				if info.Arch != map[string]string{"llama3": "llama", "qwen2": "qwen2"}[arch] || info.Layers != 2 || info.FileType != typ.String() {
					t.Fatalf("info %+v", info)
				}
				ctx := mustContext(t, m, ContextOptions{NCtx: 512})
				toks := mustTokenize(t, m, "Natalia sold clips to 48 of her friends.", true)
				lp, err := ctx.TokenLogProbs(context.Background(), toks)
				if err != nil {
					t.Fatal(err)
				}
				for i, v := range lp {
					if !(v <= 0) || math.IsInf(v, 0) {
						t.Fatalf("log-prob %d = %v", i, v)
					}
				}
				res, err := ctx.Generate(context.Background(), []GenRequest{{Prompt: toks, MaxTokens: 8}}, GenerateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if len(res[0].Tokens) == 0 {
					t.Fatalf("no tokens generated: %+v", res[0])
				}
			})
		}
	}
}
