package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/internal/vulkantest"
	"github.com/bpo-dev/bpo/llama"
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
	var lp [2]logprobsOutput
	for i, device := range []string{"cpu", "vulkan0"} {
		out, _, err := runCLI(t, "logprobs", "--model", cliStories(t), "--text", "Once upon a time, there was a little girl",
			"--device", device, "--backend-dir", dir, "--json")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(out), &lp[i]); err != nil {
			t.Fatal(err)
		}
	}
	if len(lp[0].LogProbs) != len(lp[1].LogProbs) || len(lp[0].LogProbs) < 10 {
		t.Fatalf("%d vs %d log-probs", len(lp[0].LogProbs), len(lp[1].LogProbs))
	}
	for i := range lp[0].LogProbs {
		if d := math.Abs(lp[0].LogProbs[i] - lp[1].LogProbs[i]); d > 1e-2 {
			t.Fatalf("token %d: cpu %v, vulkan0 %v", i, lp[0].LogProbs[i], lp[1].LogProbs[i])
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
		{[]string{"train", "--model", cliStories(t), "--data", "pairs.jsonl", "--out", t.TempDir(), "--device", "gpu9"}, `--device gpu9: device error: unknown device "gpu9"`},
		{[]string{"sft", "--model", cliStories(t), "--data", "sft.jsonl", "--out", t.TempDir(), "--full", "--device", "vulkan0", "--backend-dir", t.TempDir()}, "no libggml-<backend>.so in it"},
	} {
		_, _, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestTrainOnVulkanMatchesCPU: `bpo train --loss bpo --device vulkan0` on stories260K (LoRA on every
// target, micro-batches of 2 pairs, so 4 sequences of different lengths per graph) gives the CPU run's
// loss at every step and its adapter, to 1e-4.
func TestTrainOnVulkanMatchesCPU(t *testing.T) {
	dir := vulkantest.Dir(t)
	tmp := t.TempDir()
	_, pairs := writeStoryData(t, tmp)
	var runs [2]string
	for i, device := range []string{"cpu", "vulkan0"} {
		runs[i] = filepath.Join(tmp, device)
		out, err := bpoCmd("train", "--model", cliStories(t), "--data", pairs, "--loss", "bpo", "--out", runs[i],
			"--lr", "1e-3", "--max-steps", "3", "--batch-size", "4", "--micro-batch", "2", "--lora-rank", "4", "--lora-alpha", "8",
			"--threads", "1", "--warmup-ratio", "0", "--eval-split", "0", "--device", device, "--backend-dir", dir).CombinedOutput()
		if err != nil {
			t.Fatalf("train --device %s: %v\n%s", device, err, out)
		}
	}
	var steps [2][]align.StepMetrics
	for i, run := range runs {
		var err error
		if steps[i], err = align.ReadMetrics(filepath.Join(run, align.MetricsFileName)); err != nil {
			t.Fatal(err)
		}
	}
	if len(steps[0]) != 3 || len(steps[1]) != 3 {
		t.Fatalf("%d and %d steps, want 3", len(steps[0]), len(steps[1]))
	}
	worstLoss := 0.0
	for s := range steps[0] {
		worstLoss = max(worstLoss, math.Abs(steps[0][s].Loss-steps[1][s].Loss))
	}
	adapters := [2]*llama.AdapterFile{}
	for i, run := range runs {
		var err error
		if adapters[i], err = llama.ReadAdapterFile(filepath.Join(run, align.AdapterFileName)); err != nil {
			t.Fatal(err)
		}
	}
	worst := 0.0
	for i, ta := range adapters[0].Tensors {
		tb := adapters[1].Tensors[i]
		for _, pair := range [][2][]float32{{ta.A, tb.A}, {ta.B, tb.B}} {
			for j := range pair[0] {
				worst = max(worst, math.Abs(float64(pair[0][j]-pair[1][j])))
			}
		}
	}
	t.Logf("3 BPO steps: largest |loss(cpu) - loss(vulkan0)| %.2e, largest adapter difference %.2e", worstLoss, worst)
	if worstLoss > 1e-4 || worst > 1e-4 {
		t.Fatalf("vulkan0 run differs from the CPU's: loss by %.2e, adapter by %.2e (want <= 1e-4)", worstLoss, worst)
	}
}
