package align

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/llama"
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

// TestORPOIncludePromptTrains runs the trainer with the llama.cpp training graph on stories260K:
// the first step's logged loss must equal ORPO-with-prompt computed from llama.cpp's own scores of
// the prompts and completions, and training with include_prompt must raise the prompts' log-probs
// more than completion-only ORPO does (the prompt gradient reaches the LoRA).
func TestORPOIncludePromptTrains(t *testing.T) {
	model := fixture.File(t, testStories)
	m, err := llama.LoadModel(model, llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var ex []PreferenceExample
	for i, n := range []string{"Lily", "Tom", "Ben", "Sue"} {
		ex = append(ex, PreferenceExample{Line: i + 1, Prompt: n + " saw a big dog in the park.", Chosen: " " + n + " was happy and played with the dog.", Rejected: " The dog ran away and " + n + " was sad."})
	}
	pairs, _, err := TokenizePreferences(m, ex, "", Truncation{})
	if err != nil {
		t.Fatal(err)
	}
	refs, err := ReferenceLogps(context.Background(), m, pairs, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := llama.NewContext(m, llama.ContextOptions{NCtx: 512, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	promptLogp := func() (sum float64, tokens int) {
		for _, p := range pairs {
			lp, err := lc.TokenLogProbs(context.Background(), p.Prompt)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range lp {
				sum += v
			}
			tokens += len(lp)
		}
		return sum, tokens
	}
	// The expected first-step loss from llama.cpp's scores (LoRA B is zero at step 1).
	withPrompt, _ := NewLossFromSpec("orpo(include_prompt=true)", nil, false)
	batch := make([]PairLogps, len(pairs))
	for i, p := range pairs {
		lp, err := lc.TokenLogProbs(context.Background(), p.Prompt)
		if err != nil {
			t.Fatal(err)
		}
		var s float64
		for _, v := range lp {
			s += v
		}
		batch[i] = PairLogps{PolicyChosen: refs[i].Chosen, PolicyRejected: refs[i].Rejected, ChosenTokens: len(p.Chosen),
			RejectedTokens: len(p.Rejected), PolicyPrompt: s, PromptTokens: len(lp)}
	}
	want := mustLoss(t, withPrompt, batch)

	basePrompt, _ := promptLogp()
	gains := map[string]float64{}
	for _, spec := range []string{"orpo(include_prompt=true)", "orpo"} {
		loss, _ := NewLossFromSpec(spec, nil, false)
		base, _ := BaseTensors(model)
		lora, err := NewLoRA(LoRAConfig{Rank: 4, Alpha: 8, Targets: LoRATargets(), Seed: 1}, base)
		if err != nil {
			t.Fatal(err)
		}
		pol, err := NewLlamaLoRAPolicy(model, lora, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer pol.Close()
		dir := t.TempDir()
		cfg := TrainConfig{RunDir: dir, Loss: loss, Optimizer: DefaultAdamWConfig(), LR: 5e-3, Scheduler: "constant", BatchSize: 4,
			MicroBatch: 2, MaxSteps: 8, Seed: 1, SaveAdapter: func(d string) error { return pol.SaveAdapter(d, nil) }, LoadAdapter: pol.LoadAdapter}
		tr, err := NewTrainer(cfg, pol, pairs, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		ms, err := ReadMetrics(filepath.Join(dir, MetricsFileName))
		if err != nil {
			t.Fatal(err)
		}
		if spec != "orpo" && math.Abs(ms[0].Loss-want) > 1e-3*(1+math.Abs(want)) {
			t.Errorf("step 1 loss %v, from llama.cpp's scores %v", ms[0].Loss, want)
		}
		adapter, err := llama.LoadAdapter(m, filepath.Join(tr.result.Checkpoint, AdapterFileName))
		if err != nil {
			t.Fatal(err)
		}
		if err := lc.SetAdapters(llama.AdapterScale{Adapter: adapter, Scale: 1}); err != nil {
			t.Fatal(err)
		}
		after, n := promptLogp()
		lc.SetAdapters()
		adapter.Close()
		gains[spec] = (after - basePrompt) / float64(n)
		t.Logf("%s: loss %.4f -> %.4f, prompt mean token logp %+.4f", spec, ms[0].Loss, ms[len(ms)-1].Loss, gains[spec])
	}
	if !(gains["orpo(include_prompt=true)"] > gains["orpo"]+0.05) {
		t.Errorf("prompt log-prob gain with include_prompt %v, without %v: want clearly more with it", gains["orpo(include_prompt=true)"], gains["orpo"])
	}
}
