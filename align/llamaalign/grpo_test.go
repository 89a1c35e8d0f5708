package llamaalign

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/lora"
)

// TestGRPOLossGradientThroughEngine differentiates the GRPO loss of LoRA parameters through the
// training graph (stories260K, F32): TokenForwardBackward with the objective's coefficients
// against central differences of the loss recomputed from the policy's log-probs. Old log-probs
// are the policy's before a perturbation of the adapter, so ratios differ from 1 and some clip.
func TestGRPOLossGradientThroughEngine(t *testing.T) {
	path := fixture.File(t, testStories)
	m, err := llama.LoadModel(path, llama.ModelOptions{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ex := []align.SFTExample{
		{Line: 1, Prompt: "Tom saw a cat.", Completion: " He ran to it."},
		{Line: 2, Prompt: "Tom saw a cat.", Completion: " The sun was big and warm."},
		{Line: 3, Prompt: "Lily had a ball.", Completion: " She threw it."},
		{Line: 4, Prompt: "Lily had a ball.", Completion: " It was red."},
	}
	seqs, _, err := TokenizeSFT(m, ex, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	base, err := BaseTensors(path)
	if err != nil {
		t.Fatal(err)
	}
	lora, err := align.NewLoRA(align.LoRAConfig{Rank: 2, Alpha: 4, Targets: lora.Targets(), Seed: 3}, base)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := NewLlamaLoRAPolicy(path, lora, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pol.Close()
	ctx := context.Background()
	ref, err := pol.ReferenceTokenLogProbs(ctx, seqs)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, p := range pol.Params() { // a non-zero B: the policy differs from the reference
		for j := range p {
			p[j] += float32(0.05 * rng.NormFloat64())
		}
	}
	old, err := pol.TokenLogProbs(ctx, seqs)
	if err != nil {
		t.Fatal(err)
	}
	refAgain, err := pol.ReferenceTokenLogProbs(ctx, seqs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ref {
		for k := range ref[i] {
			if ref[i][k] != refAgain[i][k] {
				t.Fatalf("reference log-probs changed after training the adapter: %v vs %v", ref[i][k], refAgain[i][k])
			}
			if ref[i][k] == old[i][k] {
				t.Fatalf("token %d/%d: adapter has no effect", i, k)
			}
		}
	}
	for _, p := range pol.Params() { // the current policy: old log-probs are one step behind
		for j := range p {
			p[j] += float32(0.05 * rng.NormFloat64())
		}
	}
	adv, err := align.GroupAdvantages([]float64{1, 0, 0, 1}, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	samples := make([]align.GRPOSample, len(seqs))
	lengths := make([]int, len(seqs))
	for i := range seqs {
		samples[i] = align.GRPOSample{Advantage: adv[i], OldLogps: old[i], RefLogps: ref[i]}
		lengths[i] = len(seqs[i].Completion)
	}
	c := align.GRPOConfig{LossType: align.GRPOLossGRPO, EpsilonLow: 0.2, EpsilonHigh: 0.28, Beta: 0.1}
	w, err := c.TokenWeights(lengths)
	if err != nil {
		t.Fatal(err)
	}
	grads := make([][]float32, len(pol.ParamShapes()))
	for i, s := range pol.ParamShapes() {
		grads[i] = make([]float32, s.Size)
	}
	var st align.GRPOStats
	err = pol.TokenForwardBackward(ctx, seqs, func(lp [][]float64) ([][]float64, error) {
		_, coef, s, err := c.Objective(samples, w, lp)
		st = s
		return coef, err
	}, grads)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d tokens, %d clipped low, %d clipped high, mean ratio %.3f", st.Tokens, st.LowClip, st.HighClip, st.RatioSum/float64(st.Tokens))
	loss := func() float64 {
		lp, err := pol.TokenLogProbs(ctx, seqs)
		if err != nil {
			t.Fatal(err)
		}
		l, _, _, err := c.Objective(samples, w, lp)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	checked := 0
	for pi, p := range pol.Params() {
		j := rng.IntN(len(p))
		orig := p[j]
		central := func(h float32) float64 {
			p[j] = orig + h
			up := loss()
			p[j] = orig - h
			down := loss()
			p[j] = orig
			return (up - down) / (2 * float64(h))
		}
		fd := (4*central(1e-2) - central(2e-2)) / 3
		g := float64(grads[pi][j])
		if math.Abs(fd) < 0.02 && math.Abs(g) < 0.02 {
			if math.Abs(fd-g) > 5e-4 {
				t.Errorf("%s[%d]: graph %.6g, finite difference %.6g", pol.ParamShapes()[pi].Name, j, g, fd)
			}
			continue
		}
		checked++
		if rel := math.Abs(fd-g) / math.Max(math.Abs(fd), math.Abs(g)); rel > 2e-2 {
			t.Errorf("%s[%d]: graph %.6g, finite difference %.6g (relative error %.3g)", pol.ParamShapes()[pi].Name, j, g, fd, rel)
		}
	}
	t.Logf("%d gradient entries >= 0.02 checked against finite differences", checked)
	if checked < 10 {
		t.Errorf("only %d entries had a measurable gradient", checked)
	}
}
