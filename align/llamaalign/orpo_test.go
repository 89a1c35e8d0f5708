package llamaalign

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/lora"
)

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
	var ex []align.PreferenceExample
	for i, n := range []string{"Lily", "Tom", "Ben", "Sue"} {
		ex = append(ex, align.PreferenceExample{Line: i + 1, Prompt: n + " saw a big dog in the park.", Chosen: " " + n + " was happy and played with the dog.", Rejected: " The dog ran away and " + n + " was sad."})
	}
	pairs, _, err := TokenizePreferences(m, ex, "", align.Truncation{})
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
	withPrompt, _ := align.NewLossFromSpec("orpo(include_prompt=true)", nil, false)
	batch := make([]align.PairLogps, len(pairs))
	for i, p := range pairs {
		lp, err := lc.TokenLogProbs(context.Background(), p.Prompt)
		if err != nil {
			t.Fatal(err)
		}
		var s float64
		for _, v := range lp {
			s += v
		}
		batch[i] = align.PairLogps{PolicyChosen: refs[i].Chosen, PolicyRejected: refs[i].Rejected, ChosenTokens: len(p.Chosen),
			RejectedTokens: len(p.Rejected), PolicyPrompt: s, PromptTokens: len(lp)}
	}
	want, _, err := withPrompt.Compute(batch)
	if err != nil {
		t.Fatal(err)
	}

	basePrompt, _ := promptLogp()
	gains := map[string]float64{}
	for _, spec := range []string{"orpo(include_prompt=true)", "orpo"} {
		loss, _ := align.NewLossFromSpec(spec, nil, false)
		base, _ := BaseTensors(model)
		lora, err := align.NewLoRA(align.LoRAConfig{Rank: 4, Alpha: 8, Targets: lora.Targets(), Seed: 1}, base)
		if err != nil {
			t.Fatal(err)
		}
		pol, err := NewLlamaLoRAPolicy(model, lora, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer pol.Close()
		dir := t.TempDir()
		cfg := align.TrainConfig{RunDir: dir, Loss: loss, Optimizer: align.DefaultAdamWConfig(), LR: 5e-3, Scheduler: "constant", BatchSize: 4,
			MicroBatch: 2, MaxSteps: 8, Seed: 1, SaveAdapter: func(d string) error { return pol.SaveAdapter(d, nil) }, LoadAdapter: pol.LoadAdapter}
		tr, err := align.NewTrainer(cfg, pol, pairs, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := tr.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		ms, err := align.ReadMetrics(filepath.Join(dir, align.MetricsFileName))
		if err != nil {
			t.Fatal(err)
		}
		if spec != "orpo" && math.Abs(ms[0].Loss-want) > 1e-3*(1+math.Abs(want)) {
			t.Errorf("step 1 loss %v, from llama.cpp's scores %v", ms[0].Loss, want)
		}
		adapter, err := llama.LoadAdapter(m, filepath.Join(res.Checkpoint, align.AdapterFileName))
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
