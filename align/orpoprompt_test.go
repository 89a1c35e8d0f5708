package align

import (
	"math"
	"testing"
)

// TestORPOIncludePromptValues: with include_prompt ORPO's NLL is -(log π(prompt) + log π(y_w)) over
// the prompt's and the chosen completion's tokens; the rest of the loss is unchanged. Checked
// against the completion-only ORPO of TestLossHandValues and by finite differences on all three
// log-probs.
func TestORPOIncludePromptValues(t *testing.T) {
	plain, _ := NewLossFromSpec("orpo", nil, false)
	withPrompt, err := NewLossFromSpec("orpo(include_prompt=true)", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := pairP1, pairP2
	p1.PolicyPrompt, p1.PromptTokens = -6, 3
	p2.PolicyPrompt, p2.PromptTokens = -2, 1
	batch := []PairLogps{p1, p2}
	l0, g0, err := plain.Compute(batch)
	if err != nil {
		t.Fatal(err)
	}
	l1, g1, err := withPrompt.Compute(batch)
	if err != nil {
		t.Fatal(err)
	}
	// P1: -10/4 -> -(-6-10)/7; P2: -13/4 -> -(-2-13)/5; halves for the batch mean.
	want := l0 + (-10.0/4-(-16.0)/7)/2 + (-13.0/4-(-15.0)/5)/2
	if !closeTo(l1, want, 1e-13) {
		t.Errorf("loss %v, want %v", l1, want)
	}
	wantG := []PairGrad{
		{Chosen: g0[0].Chosen + (1.0/4-1.0/7)/2, Rejected: g0[0].Rejected, Prompt: -1.0 / 7 / 2},
		{Chosen: g0[1].Chosen + (1.0/4-1.0/5)/2, Rejected: g0[1].Rejected, Prompt: -1.0 / 5 / 2},
	}
	for i := range g1 {
		if !closeTo(g1[i].Chosen, wantG[i].Chosen, 1e-13) || g1[i].Rejected != wantG[i].Rejected || !closeTo(g1[i].Prompt, wantG[i].Prompt, 1e-13) {
			t.Errorf("pair %d grad %+v, want %+v", i, g1[i], wantG[i])
		}
	}
	const h = 1e-6
	for i := range batch {
		for side := 0; side < 3; side++ {
			eval := func(d float64) float64 {
				b := append([]PairLogps(nil), batch...)
				switch side {
				case 0:
					b[i].PolicyChosen += d
				case 1:
					b[i].PolicyRejected += d
				default:
					b[i].PolicyPrompt += d
				}
				return mustLoss(t, withPrompt, b)
			}
			fd := (eval(h) - eval(-h)) / (2 * h)
			an := []float64{g1[i].Chosen, g1[i].Rejected, g1[i].Prompt}[side]
			if math.Abs(fd-an) > 1e-7 {
				t.Errorf("pair %d side %d: analytic %v, finite difference %v", i, side, an, fd)
			}
		}
	}
	if _, err := NewLossFromSpec("dpo(include_prompt=true)", nil, false); err == nil {
		t.Error("include_prompt accepted for dpo")
	}
	if _, err := NewLossFromSpec("orpo(include_prompt=maybe)", nil, false); err == nil {
		t.Error("include_prompt=maybe accepted")
	}
}
