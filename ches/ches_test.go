package ches

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/llama"
)

// TestHiddenStatesPredictTokens: the hidden states are the ones the output head reads: softmax of
// output.weight · h at each position gives llama.cpp's own log-prob of the next token.
func TestHiddenStatesPredictTokens(t *testing.T) {
	stories := fixture.File(t, "models/stories260K.gguf")
	m, err := llama.LoadModel(stories, llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	prompt, err := m.Tokenize("Tom saw a big dog.", true, false)
	if err != nil {
		t.Fatal(err)
	}
	completion, _ := m.Tokenize(" He ran to the park and played.", false, false)
	lc, err := llama.NewContext(m, llama.ContextOptions{NCtx: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	all := append(append([]int32(nil), prompt...), completion...)
	want, err := lc.TokenLogProbs(context.Background(), all)
	if err != nil {
		t.Fatal(err)
	}
	want = want[len(prompt)-1:]

	f, err := ggml.ReadGGUF(stories)
	if err != nil {
		t.Fatal(err)
	}
	out, ok := f.Tensor("output.weight")
	if !ok {
		t.Fatal("no output.weight")
	}
	raw, _ := os.ReadFile(stories)
	w, err := ggml.ToFloat32(out.Type, raw[out.Offset:out.Offset+out.Size], out.Elements())
	if err != nil {
		t.Fatal(err)
	}
	nEmbd, nVocab := int(out.Shape[0]), int(out.Shape[1])

	e, err := llama.NewEmbedder(stories, 256, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.EmbeddingSize() != nEmbd {
		t.Fatalf("embedding size %d, output.weight rows of %d", e.EmbeddingSize(), nEmbd)
	}
	rows, err := e.Hidden(prompt, completion)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(completion) {
		t.Fatalf("%d hidden rows for %d completion tokens", len(rows), len(completion))
	}
	for k, h := range rows {
		logits := make([]float64, nVocab)
		mx := math.Inf(-1)
		for v := range logits {
			var s float64
			for j := 0; j < nEmbd; j++ {
				s += float64(w[v*nEmbd+j]) * float64(h[j])
			}
			logits[v] = s
			mx = math.Max(mx, s)
		}
		var z float64
		for _, l := range logits {
			z += math.Exp(l - mx)
		}
		got := logits[completion[k]] - mx - math.Log(z)
		if math.Abs(got-want[k]) > 1e-5 {
			t.Errorf("token %d: log-prob from the hidden state %v, llama.cpp %v", k, got, want[k])
		}
	}
	sum, err := e.SumHidden(prompt, completion)
	if err != nil {
		t.Fatal(err)
	}
	for j := range sum {
		var s float64
		for _, r := range rows {
			s += float64(r[j])
		}
		if math.Abs(s-sum[j]) > 1e-9 {
			t.Fatalf("sum %d: %v, rows add to %v", j, sum[j], s)
		}
	}
	// Bad input is refused before llama.cpp sees it.
	for _, tc := range []struct {
		prompt, completion []int32
		wantErr            string
	}{
		{nil, completion, "need a prompt and a completion"},
		{prompt, []int32{1, 99999}, "token 99999 at position"},
		{prompt, make([]int32, 300), "exceed the context of 256"},
	} {
		if _, err := e.Hidden(tc.prompt, tc.completion); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("error %v, want %q", err, tc.wantErr)
		}
	}
}

func TestScoreAndKeep(t *testing.T) {
	// hw = (1, 2), hl = (3, -1): <hw, hl> = 1, |hw|^2 = 5 -> -4; normalized by 2 and 1 tokens:
	// hw/2 = (0.5, 1): <(0.5,1),(3,-1)> = 0.5, |.|^2 = 1.25 -> -0.75.
	s, err := FromSums([]float64{1, 2}, []float64{3, -1}, 2, 1)
	if err != nil || s.CHES != -4 || s.Normalized != -0.75 {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := FromSums([]float64{1}, []float64{1, 2}, 1, 1); err == nil {
		t.Error("size mismatch accepted")
	}
	if _, err := FromSums([]float64{1}, []float64{1}, 0, 1); err == nil {
		t.Error("zero tokens accepted")
	}
	kept, err := KeepLowest([]float64{5, -1, 3, 0, 9}, 0.6)
	if err != nil || len(kept) != 3 || kept[0] != 1 || kept[1] != 2 || kept[2] != 3 {
		t.Errorf("kept %v %v, want [1 2 3]", kept, err)
	}
	for _, keep := range []float64{0, -0.5, 1.5, math.NaN()} {
		if _, err := KeepLowest([]float64{1}, keep); err == nil {
			t.Errorf("keep %v accepted", keep)
		}
	}
}
