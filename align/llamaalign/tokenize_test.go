package llamaalign

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/internal/fixture"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/lora"
)

// Fixtures of the repository's testdata/ folder; fixture.File gives their path.
const (
	testStories = "models/stories260K.gguf"
	testQwen2   = "models/ggml-vocab-qwen2.gguf"
)

func TestTokenizePreferencesTemplatesAndEOS(t *testing.T) {
	m, err := llama.LoadModel(fixture.File(t, testQwen2), llama.ModelOptions{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ex := []align.PreferenceExample{
		{Line: 1, PromptMessages: []align.Message{{Role: "user", Content: "What is 2+3?"}}, Chosen: "5", Rejected: "6"},
		{Line: 2, Prompt: "Question: 2+3?\nAnswer:", Chosen: " 5", Rejected: " 6"},
	}
	pairs, cut, err := TokenizePreferences(m, ex, "", align.Truncation{})
	if err != nil {
		t.Fatal(err)
	}
	if cut != 0 || len(pairs) != 2 {
		t.Fatalf("cut %d, %d pairs", cut, len(pairs))
	}
	chat, err := m.Detokenize(pairs[0].Prompt, false, true)
	if err != nil {
		t.Fatal(err)
	}
	if chat != "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n" {
		t.Errorf("templated prompt %q", chat)
	}
	if pairs[0].Prompt[0] != 151644 {
		t.Errorf("special tokens not parsed in the templated prompt: %v", pairs[0].Prompt[:3])
	}
	raw, _ := m.Detokenize(pairs[1].Prompt, false, true)
	if raw != "Question: 2+3?\nAnswer:" {
		t.Errorf("raw prompt changed: %q", raw)
	}
	// A chat turn ends with the end-of-turn token (<|im_end|> here), raw text with EOS.
	for i, want := range []int32{m.EOT(), m.EOS()} {
		for _, c := range [][]int32{pairs[i].Chosen, pairs[i].Rejected} {
			if c[len(c)-1] != want {
				t.Errorf("line %d: completion %v does not end with %d", pairs[i].Line, c, want)
			}
		}
	}
	if m.EOT() != 151645 || m.EOS() != 151643 {
		t.Errorf("qwen2 EOT/EOS: %d/%d", m.EOT(), m.EOS())
	}
	// Truncation: a 3-token prompt limit keeps the prompt's end.
	long, cut, err := TokenizePreferences(m, ex[1:], "", align.Truncation{MaxPromptLength: 3, Mode: "keep_end"})
	if err != nil || cut != 1 || len(long[0].Prompt) != 3 {
		t.Fatalf("truncation: %v, cut %d, prompt %v", err, cut, long[0].Prompt)
	}
}

// TestReferenceLogpsMatchTrainingGraph scores pairs through llama.cpp and through the training graph
// with LoRA at zero: the reference the trainer uses must agree with the policy at step 0.
func TestReferenceLogpsMatchTrainingGraph(t *testing.T) {
	m, err := llama.LoadModel(fixture.File(t, testStories), llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ex := []align.PreferenceExample{
		{Line: 1, Prompt: "Once upon a time", Chosen: " there was a cat.", Rejected: " the sun was cold and blue."},
		{Line: 2, Prompt: "Tom had a ball.", Chosen: " He played with it.", Rejected: " It was a big red car."},
	}
	pairs, _, err := TokenizePreferences(m, ex, "", align.Truncation{})
	if err != nil {
		t.Fatal(err)
	}
	refs, err := ReferenceLogps(context.Background(), m, pairs, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	base, err := BaseTensors(fixture.File(t, testStories))
	if err != nil {
		t.Fatal(err)
	}
	lora, err := align.NewLoRA(align.LoRAConfig{Rank: 2, Alpha: 4, Targets: lora.Targets(), Seed: 1}, base)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := NewLlamaLoRAPolicy(fixture.File(t, testStories), lora, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pol.Close()
	chosen, rejected, err := pol.Forward(context.Background(), pairs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range pairs {
		if math.Abs(chosen[i]-refs[i].Chosen) > 1e-3 || math.Abs(rejected[i]-refs[i].Rejected) > 1e-3 {
			t.Errorf("pair %d: policy (%v, %v) vs reference (%v, %v)", i, chosen[i], rejected[i], refs[i].Chosen, refs[i].Rejected)
		}
	}
}

// TestCompletionContinuesPrompt checks that with a SentencePiece vocabulary a completion starting with a
// space is tokenized as the model sees it after the prompt, not with an extra leading space token.
func TestCompletionContinuesPrompt(t *testing.T) {
	m, err := llama.LoadModel(fixture.File(t, testStories), llama.ModelOptions{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ex := []align.PreferenceExample{{Line: 1, Prompt: "Tom saw a cat.", Chosen: " He ran to it.", Rejected: " The sun was big."}}
	pairs, _, err := TokenizePreferences(m, ex, "", align.Truncation{})
	if err != nil {
		t.Fatal(err)
	}
	whole, err := m.Tokenize("Tom saw a cat. He ran to it.", true, false)
	if err != nil {
		t.Fatal(err)
	}
	got := append(append([]int32{}, pairs[0].Prompt...), pairs[0].Chosen[:len(pairs[0].Chosen)-1]...)
	if !slices.Equal(got, whole) {
		t.Errorf("prompt+chosen tokens %v, the whole text tokenizes to %v", got, whole)
	}
	alone, _ := m.Tokenize(" He ran to it.", false, false)
	if len(alone) == len(pairs[0].Chosen)-1 {
		t.Logf("note: this vocabulary adds no extra space token (%v)", alone)
	}
	seqs, _, err := TokenizeSFT(m, []align.SFTExample{{Line: 1, Prompt: "Tom saw a cat.", Completion: " He ran to it."}}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	toks := append(append([]int32{}, seqs[0].Prompt...), seqs[0].Completion...)
	if !slices.Equal(toks[:len(toks)-1], whole) || len(seqs[0].Prompt) != len(pairs[0].Prompt) {
		t.Errorf("sft tokens %v (prompt %d), want %v", toks, len(seqs[0].Prompt), whole)
	}
}
