package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/llama"
	"github.com/bpo-dev/bpo/lora"
	"github.com/bpo-dev/bpo/peft"
)

// storiesAdapter writes a rank-4 adapter with random A and B on every projection of stories260K.
func storiesAdapter(t *testing.T, dir string) string {
	t.Helper()
	f, err := ggml.ReadGGUF(cliStories(t))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	var ts []lora.Tensor
	for l := 0; l < 5; l++ {
		for _, m := range []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"} {
			name := fmt.Sprintf("blk.%d.%s.weight", l, m)
			w, _ := f.Tensor(name)
			lt := lora.Tensor{Base: name, Rank: 4, NIn: int(w.Shape[0]), NOut: int(w.Shape[1])}
			lt.A, lt.B = make([]float32, 4*lt.NIn), make([]float32, lt.NOut*4)
			for _, v := range [][]float32{lt.A, lt.B} {
				for i := range v {
					v[i] = float32(rng.NormFloat64() * 0.05)
				}
			}
			ts = append(ts, lt)
		}
	}
	slices.SortFunc(ts, func(a, b lora.Tensor) int { return strings.Compare(a.Base, b.Base) }) // training's order
	path := filepath.Join(dir, "adapter.gguf")
	meta := map[string]string{"bpo.base_model": "stories260K.gguf", "bpo.loss": "bpo", "bpo.base_model_fingerprint": "feed"}
	if err := llama.WriteAdapterFile(path, "llama", 8, ts, meta); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAdapterInfoCommand(t *testing.T) {
	adapter := storiesAdapter(t, t.TempDir())
	out, err := runLlamaCLI(t, "info", adapter)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"type:            LoRA adapter", "arch:            llama", "rank:            4", "alpha:           8 (scale alpha/r = 2)",
		"targets:         attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down", "layers:          0-4 (5)", "lora pairs:      35",
		"base model:      stories260K.gguf", "fingerprint:     feed", "bpo.loss:        bpo"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	out, err = runLlamaCLI(t, "info", "--json", adapter)
	if err != nil {
		t.Fatal(err)
	}
	var ai llama.AdapterInfo
	if err := json.Unmarshal([]byte(out), &ai); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if ai.Rank != 4 || ai.Alpha != 8 || len(ai.Targets) != 7 || len(ai.Layers) != 5 || ai.BaseModel != "stories260K.gguf" {
		t.Fatalf("info --json: %+v", ai)
	}
}

func TestExportCommands(t *testing.T) {
	dir := t.TempDir()
	adapter := storiesAdapter(t, dir)
	merged := filepath.Join(dir, "merged.gguf")
	// stories260K's feed-forward rows have 172 values: no q8_0 block size fits them.
	if _, err := runLlamaCLI(t, "export", "merge", "--model", cliStories(t), "--adapter", adapter, "--type", "q8_0", "--out", merged); err == nil ||
		!strings.Contains(err.Error(), "blk.0.ffn_down.weight (f32 [172 64]) cannot be written as q8_0") {
		t.Fatalf("merge into q8_0: got %v", err)
	}
	out, err := runLlamaCLI(t, "export", "merge", "--model", cliStories(t), "--adapter", adapter, "--type", "f16", "--out", merged)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "merged 35 LoRA pairs (rank 4, alpha 8)") {
		t.Fatalf("export merge output:\n%s", out)
	}
	out, err = runLlamaCLI(t, "info", merged)
	if err != nil || !strings.Contains(out, "file type:       f16") || !strings.Contains(out, "layers:          5") {
		t.Fatalf("info of the merged model: %v\n%s", err, out)
	}

	peftDir := filepath.Join(dir, "peft")
	if _, err := runLlamaCLI(t, "export", "peft", "--adapter", adapter, "--out", peftDir); err == nil || !strings.Contains(err.Error(), "need --model") {
		t.Fatalf("llama export without --model: got %v", err)
	}
	if _, err := runLlamaCLI(t, "export", "peft", "--model", cliStories(t), "--adapter", adapter, "--base-model", "karpathy/tinyllamas", "--out", peftDir); err != nil {
		t.Fatal(err)
	}
	back := filepath.Join(dir, "back.gguf")
	if _, err := runLlamaCLI(t, "import", "peft", "--model", cliStories(t), "--out", back, peftDir); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(adapter)
	b, _ := os.ReadFile(back)
	if !bytes.Equal(a, b) {
		t.Fatal("export peft + import peft changed the adapter")
	}

	// Training continues from a PEFT folder: with a learning rate of 1e-30 (Adam steps of ~1e-30,
	// far below float32's resolution at these values) the saved adapter is the imported one.
	sft, _ := writeStoryData(t, dir)
	run := filepath.Join(dir, "run")
	if _, err := runLlamaCLI(t, "sft", "--model", cliStories(t), "--data", sft, "--out", run, "--init-adapter", peftDir,
		"--lr", "1e-30", "--max-steps", "1", "--batch-size", "2", "--threads", "1"); err != nil {
		t.Fatal(err)
	}
	trained, err := llama.ReadAdapterFile(filepath.Join(run, "adapter.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	orig, err := llama.ReadAdapterFile(adapter)
	if err != nil {
		t.Fatal(err)
	}
	if len(trained.Tensors) != len(orig.Tensors) || trained.Alpha != orig.Alpha {
		t.Fatalf("sft --init-adapter PEFT: %d tensors alpha %v, want %d alpha %v", len(trained.Tensors), trained.Alpha, len(orig.Tensors), orig.Alpha)
	}
	for i, lt := range orig.Tensors {
		got := trained.Tensors[i]
		if got.Base != lt.Base || !equalSlices(got.A, lt.A) || !equalSlices(got.B, lt.B) {
			d := 0.0
			for j := range lt.A {
				d = max(d, math.Abs(float64(got.A[j]-lt.A[j])))
			}
			for j := range lt.B {
				d = max(d, math.Abs(float64(got.B[j]-lt.B[j])))
			}
			t.Fatalf("sft --init-adapter PEFT: %s differs from the imported adapter by up to %g", lt.Base, d)
		}
	}

	// A PEFT folder naming modules bpo does not know is refused with the names.
	cfgPath := filepath.Join(peftDir, peft.ConfigFile)
	raw, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, bytes.Replace(raw, []byte(`"q_proj"`), []byte(`"c_attn"`), 1), 0o644)
	if _, err := runLlamaCLI(t, "import", "peft", "--model", cliStories(t), "--out", back, peftDir); err == nil || !strings.Contains(err.Error(), `unknown target_modules ["c_attn"]`) {
		t.Fatalf("unknown target: got %v", err)
	}
}
