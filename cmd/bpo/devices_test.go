package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/internal/vulkantest"
)

// TestDevicesAndLogprobsOnVulkan: `bpo devices` lists lavapipe, and `bpo logprobs --device vulkan0`
// scores like the CPU.
func TestDevicesAndLogprobsOnVulkan(t *testing.T) {
	dir := vulkantest.Dir(t)
	out, _, err := runCLI(t, "devices", "--backend-dir", dir, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var devs devicesOutput
	if err := json.Unmarshal([]byte(out), &devs); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(devs.Libraries) != 1 || len(devs.Devices) < 2 || devs.Devices[1].Name != "Vulkan0" || !strings.Contains(devs.Devices[1].Description, "llvmpipe") {
		t.Fatalf("devices: %s", out)
	}
	qwen2 := filepath.Join(t.TempDir(), "qwen2.gguf")
	if _, err := runLlamaCLI(t, "model", "random", "--arch", "qwen2", "--vocab-from", cliVocabQwen2(t), "--layers", "2", "--embedding", "64",
		"--ff", "128", "--heads", "4", "--heads-kv", "2", "--tied-output", "--out", qwen2); err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{cliStories(t), qwen2} {
		var lp [2]logprobsOutput
		for i, device := range []string{"cpu", "vulkan0"} {
			out, _, err := runCLI(t, "logprobs", "--model", model, "--text", "Once upon a time, there was a little girl who liked to play.",
				"--device", device, "--backend-dir", dir, "--threads", "1", "--json")
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(out), &lp[i]); err != nil {
				t.Fatal(err)
			}
		}
		if len(lp[0].LogProbs) != len(lp[1].LogProbs) || len(lp[0].LogProbs) < 10 {
			t.Fatalf("%s: %d vs %d log-probs", model, len(lp[0].LogProbs), len(lp[1].LogProbs))
		}
		worst := 0.0
		for i := range lp[0].LogProbs {
			worst = math.Max(worst, math.Abs(lp[0].LogProbs[i]-lp[1].LogProbs[i]))
		}
		t.Logf("%s: largest |log p(cpu) - log p(vulkan0)| = %.2e", filepath.Base(model), worst)
		// The bound; see llama.TestVulkanLogProbsMatchCPU for why it holds.
		if worst > 1e-3 {
			t.Fatalf("%s: log-probs on cpu and vulkan0 differ by %.2e > 1e-3", model, worst)
		}
	}
}

// TestDeviceFlagErrors: a bad --device or --backend-dir is a clear error, with or without Vulkan.
func TestDeviceFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"logprobs", "--model", cliStories(t), "--text", "Once upon a time", "--device", "gpu9"}, `--device gpu9: device error: unknown device "gpu9"`},
		{[]string{"generate", "--model", cliStories(t), "--prompt", "Once", "--device", "vulkan0", "--backend-dir", t.TempDir()}, "no libggml-<backend>.so in it"},
		{[]string{"devices", "--backend-dir", t.TempDir()}, "no libggml-<backend>.so in it"},
		{[]string{"eval", "--model", cliStories(t), "--benchmark", "gsm8k", "--limit", "1", "--out", t.TempDir(), "--device", "gpu9"}, `--device gpu9: device error: unknown device "gpu9"`},
		{[]string{"pairs", "--model", cliStories(t), "--benchmark", "gsm8k", "--limit", "1", "--out", t.TempDir() + "/p.jsonl", "--device", "gpu9"}, `--device gpu9: device error: unknown device "gpu9"`},
		{[]string{"train", "--model", cliStories(t), "--data", "pairs.jsonl", "--out", t.TempDir(), "--device", "vulkan0"}, "--device vulkan0: device error: training runs on the CPU only for now"},
	} {
		_, _, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
