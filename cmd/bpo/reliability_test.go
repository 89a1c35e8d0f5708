package main

import (
	"github.com/bpo-dev/bpo/internal/fixture"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadSettingsRefusedEarly: each bad setting or argument of the robustness report ends in an
// error naming it, before any model work (or, for --version, prints the version).
func TestBadSettingsRefusedEarly(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.jsonl")
	os.WriteFile(empty, nil, 0o644)
	huge := filepath.Join(dir, "huge.jsonl")
	os.WriteFile(huge, []byte(`{"question":"`+strings.Repeat("one two three ", 3000)+`","answer":"x #### 1"}`+"\n"), 0o644)
	modelCopy := filepath.Join(dir, "m.gguf")
	raw, err := os.ReadFile(cliStories(t))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(modelCopy, raw, 0o644)
	sft := filepath.Join(dir, "sft.jsonl")
	os.WriteFile(sft, []byte(`{"prompt":"Once upon a time","completion":" there was a cat."}`+"\n"), 0o644)
	existingDir := filepath.Join(dir, "existing")
	os.Mkdir(existingDir, 0o755)
	evalArgs := func(data string, extra ...string) []string {
		return append([]string{"eval", "--model", cliStories(t), "--data", data, "--out", filepath.Join(dir, "run"), "--threads", "1", "--max-new-tokens", "4"}, extra...)
	}
	pairs := filepath.Join(dir, "pairs.jsonl")
	os.WriteFile(pairs, []byte(`{"prompt":"Once upon a time","chosen":" there was a cat.","rejected":" the end."}`+"\n"), 0o644)
	trainArgs := func(extra ...string) []string {
		return append([]string{"train", "--model", cliStories(t), "--data", pairs, "--loss", "dpo", "--out", filepath.Join(dir, "train"), "--threads", "1"}, extra...)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"train --lr nan", trainArgs("--lr", "nan"), "learning rate"},
		{"train --batch-size 0", trainArgs("--batch-size", "0"), "batch size"},
		{"train --lora-rank 0", trainArgs("--lora-rank", "0"), "--lora-*"},
		{"train --init-adapter missing", trainArgs("--init-adapter", filepath.Join(dir, "missing.gguf")), "missing.gguf"},
		{"train --save-minutes -1", trainArgs("--save-minutes", "-1"), "--save-minutes"},
		{"train --scheduler wavy", trainArgs("--scheduler", "wavy"), "unknown lr schedule"},
		{"eval on an empty file", evalArgs(empty), "no questions to evaluate"},
		{"eval --max-new-tokens 0", evalArgs(fixture.EvalSet(t, "gsm8k/test"), "--max-new-tokens", "0", "--limit", "1"), "--max-new-tokens 0"},
		{"eval --temperature nan", evalArgs(fixture.EvalSet(t, "gsm8k/test"), "--temperature", "nan", "--limit", "1"), "temperature NaN"},
		{"eval --top-p 2", evalArgs(fixture.EvalSet(t, "gsm8k/test"), "--top-p", "2", "--limit", "1"), "top_p 2"},
		{"eval --n 0", evalArgs(fixture.EvalSet(t, "gsm8k/test"), "--n", "0", "--limit", "1"), "--n 0"},
		{"eval question longer than the context", evalArgs(huge, "--template", "chatml"), "do not fit the model's 2048-token context"},
		{"eval --threads 1000", evalArgs(fixture.EvalSet(t, "gsm8k/test"), "--threads", "1000", "--limit", "1"), "--threads 1000"},
		{"logprobs --threads 1000", []string{"logprobs", "--model", cliStories(t), "--threads", "1000", "--text", "Once upon a time"}, "--threads 1000"},
		{"logprobs --threads -1", []string{"logprobs", "--model", cliStories(t), "--threads", "-1", "--text", "Once upon a time"}, "--threads -1"},
		{"generate --top-p nan", []string{"generate", "--model", cliStories(t), "--threads", "1", "--prompt", "Once", "--top-p", "nan"}, "top_p NaN"},
		{"logprobs --adapter F:nan", []string{"logprobs", "--model", cliStories(t), "--threads", "1", "--adapter", "a.gguf:nan", "--text", "Once upon a time"}, "want a finite number"},
		{"sft --full --lora-rank 4", []string{"sft", "--model", cliStories(t), "--data", sft, "--out", filepath.Join(dir, "sft"), "--full", "--lora-rank", "4"}, "--lora-rank has no effect with --full"},
		{"model quantize X X", []string{"model", "quantize", "--type", "q8_0", modelCopy, modelCopy}, "is the input file"},
		{"model random --out DIR", []string{"model", "random", "--arch", "llama", "--vocab-from", cliVocabSPM(t), "--layers", "1", "--embedding", "32", "--ff", "64", "--heads", "2", "--heads-kv", "2", "--out", existingDir}, "is a directory"},
		{"pairs --out DIR", []string{"pairs", "--model", cliStories(t), "--data", fixture.EvalSet(t, "gsm8k/test"), "--out", existingDir, "--threads", "1"}, "is a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runLlamaCLI(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if raw2, _ := os.ReadFile(modelCopy); len(raw2) != len(raw) {
		t.Errorf("quantize X X changed its input")
	}
	if _, err := os.Stat(filepath.Join(dir, "run", "samples.jsonl")); err == nil {
		t.Errorf("a refused eval wrote samples")
	}
	if _, err := os.Stat(filepath.Join(dir, ".bpo-refcache")); err == nil {
		t.Errorf("a refused train ran the reference pass")
	}
	out, err := runLlamaCLI(t, "--version")
	if err != nil || !strings.HasPrefix(out, "bpo version ") {
		t.Errorf("--version: %q, %v", out, err)
	}
}

// TestTrainMaxLengthCappedToContext: a pair longer than the model's context with a --max-length
// above it is truncated to the context (it used to abort training at the step that met it).
func TestTrainMaxLengthCappedToContext(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "small-ctx.gguf")
	if _, err := runLlamaCLI(t, "model", "random", "--arch", "llama", "--vocab-from", cliVocabSPM(t), "--layers", "1", "--embedding", "32",
		"--ff", "64", "--heads", "2", "--heads-kv", "2", "--context-length", "64", "--out", model); err != nil {
		t.Fatal(err)
	}
	pairs := filepath.Join(dir, "pairs.jsonl")
	long := strings.Repeat(" The cat sat on the mat and looked at the big red ball.", 10)
	os.WriteFile(pairs, []byte(`{"prompt":"Once upon a time","chosen":"`+long+`","rejected":" the end."}`+"\n"+
		`{"prompt":"Lily saw a cat.","chosen":" She was happy.","rejected":" She ran away."}`+"\n"), 0o644)
	out, err := bpoCmd("train", "--model", model, "--data", pairs, "--loss", "dpo", "--out", filepath.Join(dir, "run"), "--threads", "1",
		"--max-length", "100000", "--batch-size", "2", "--max-steps", "1", "--lora-rank", "2").CombinedOutput()
	if err != nil {
		t.Fatalf("train with a pair longer than the context: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "capped to the model's context length 64") || !strings.Contains(string(out), "1 truncated") {
		t.Fatalf("no cap/truncation reported:\n%s", out)
	}
}

// TestEvalResumeRefusesChangedSettings: through the CLI, a run directory started with one setup
// refuses a resume with another model, adapter, prompt, sampling or length, naming the flag.
func TestEvalResumeRefusesChangedSettings(t *testing.T) {
	dir := t.TempDir()
	adapter := writeTestAdapter(t, dir)
	run := filepath.Join(dir, "run")
	base := []string{"eval", "--data", fixture.EvalSet(t, "gsm8k/test"), "--out", run, "--threads", "1", "--limit", "1", "--prompt", "gsm8k-fewshot"}
	args := func(extra ...string) []string {
		return append(append([]string{}, base...), extra...)
	}
	if _, err := runLlamaCLI(t, args("--model", cliStories(t), "--max-new-tokens", "2")...); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		extra []string
		want  string
	}{
		{[]string{"--model", tinyModelForCLI(t, dir), "--max-new-tokens", "2"}, "--model"},
		{[]string{"--model", cliStories(t), "--max-new-tokens", "2", "--adapter", adapter}, "--adapter"},
		{[]string{"--model", cliStories(t), "--max-new-tokens", "3"}, "--max-new-tokens: was 2, now 3"},
		{[]string{"--model", cliStories(t), "--max-new-tokens", "2", "--temperature", "0.5"}, "--temperature: was 0, now 0.5"},
		{[]string{"--model", cliStories(t), "--max-new-tokens", "2", "--prompt", "boxed", "--template", "chatml"}, "--prompt"},
	}
	for _, tc := range cases {
		if _, err := runLlamaCLI(t, args(tc.extra...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error naming %q", tc.extra, err, tc.want)
		}
	}
	if _, err := runLlamaCLI(t, args("--model", cliStories(t), "--max-new-tokens", "2", "--limit", "2")...); err != nil {
		t.Fatalf("same settings, larger --limit: %v", err)
	}
}

// tinyModelForCLI writes a small random llama model with the SPM vocabulary.
func tinyModelForCLI(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "tiny.gguf")
	if _, err := runLlamaCLI(t, "model", "random", "--arch", "llama", "--vocab-from", cliVocabSPM(t), "--layers", "1", "--embedding", "32",
		"--ff", "64", "--heads", "2", "--heads-kv", "2", "--out", path); err != nil {
		t.Fatal(err)
	}
	return path
}
