package main

import (
	"encoding/json"
	"math"
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
		{[]string{"train", "--model", cliStories(t), "--data", "pairs.jsonl", "--out", t.TempDir(), "--device", "vulkan0"}, "--device vulkan0: device error: training runs on the CPU only for now"},
	} {
		_, _, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
