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
		{[]string{"train", "--model", cliStories(t), "--data", "pairs.jsonl", "--out", t.TempDir(), "--device", "gpu9"}, `--device gpu9: device error: unknown device "gpu9"`},
		{[]string{"sft", "--model", cliStories(t), "--data", "sft.jsonl", "--out", t.TempDir(), "--full", "--device", "vulkan0", "--backend-dir", t.TempDir()}, "no libggml-<backend>.so in it"},
	} {
		_, _, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// placementOf runs `bpo devices --placement --json` for model on device.
func placementOf(t *testing.T, model, device string, extra ...string) placementOutput {
	t.Helper()
	args := append([]string{"devices", "--placement", "--model", model, "--device", device, "--threads", "1", "--json"}, extra...)
	out, _, err := runCLI(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	var pl placementOutput
	if err := json.Unmarshal([]byte(out), &pl); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(pl.Graphs) != 2 {
		t.Fatalf("%d graphs, want the training step and llama.cpp's: %s", len(pl.Graphs), out)
	}
	return pl
}

// TestDevicesPlacementCPU: on the CPU both graphs run wholly on the CPU; --placement without --model
// and --model without --placement are errors.
func TestDevicesPlacementCPU(t *testing.T) {
	pl := placementOf(t, cliStories(t), "cpu")
	for _, g := range pl.Graphs {
		if g.Placement == nil || g.Placement.Device != "CPU" || g.Placement.Nodes("CPU") != g.Placement.Nodes("") || g.Placement.Nodes("") < 100 {
			t.Fatalf("%s: %+v", g.Graph, g)
		}
	}
	out, _, err := runCLI(t, "devices", "--placement", "--model", cliStories(t), "--threads", "1")
	if err != nil || !strings.Contains(out, "OP        BACKEND  NODES  WHY ON THE CPU") || !strings.Contains(out, "custom") {
		t.Fatalf("table: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"devices", "--placement"}, "--placement needs --model FILE.gguf"},
		{[]string{"devices", "--placement", "--model", cliNotGGUF(t)}, "not a GGUF file"},
		{[]string{"devices", "--placement", "--model", cliStories(t), "--device", "gpu9"}, `--device gpu9: device error: unknown device "gpu9"`},
		{[]string{"devices", "--model", cliStories(t)}, "--model, --device and --kv-f16 go with --placement"},
	} {
		if _, _, err := runCLI(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestDevicesPlacementOnVulkan: on vulkan0 the training step runs on the device except views of its
// host inputs (its graph is built from portable ops: no custom CPU op, no get_rows_back), and
// llama.cpp's graph leaves the attention (F32 cache in host memory) on the CPU, each CPU node with its
// reason.
func TestDevicesPlacementOnVulkan(t *testing.T) {
	dir := vulkantest.Dir(t)
	pl := placementOf(t, cliStories(t), "vulkan0", "--backend-dir", dir)
	want := [2]map[string]string{
		{"view": "a view: it goes where the tensor it views is"},
		{"set_rows": "held in host memory", "get_rows": "reads token_embd.weight, held in host memory"},
	}
	for i, g := range pl.Graphs {
		p := g.Placement
		if p == nil || p.Device != "Vulkan0" || p.Nodes("Vulkan0") == 0 || p.Nodes("CPU") == 0 || p.Nodes("Vulkan0")+p.Nodes("CPU") != p.Nodes("") {
			t.Fatalf("%s: %+v", g.Graph, g)
		}
		found := map[string]bool{}
		for _, r := range p.Rows {
			if r.Backend == "CPU" && r.Reason == "" {
				t.Errorf("%s: %+v on the CPU without a reason", g.Graph, r)
			}
			if op := strings.ToLower(r.Op); i == 0 && r.Backend == "CPU" && op != "view" && op != "reshape" {
				t.Errorf("%s: %+v on the CPU: the training step should leave only views of its inputs there", g.Graph, r)
			}
			if w, ok := want[i][strings.ToLower(r.Op)]; ok && r.Backend == "CPU" && strings.Contains(r.Reason, w) {
				found[strings.ToLower(r.Op)] = true
			}
		}
		if len(found) != len(want[i]) {
			t.Errorf("%s: CPU reasons found for %v, want %v", g.Graph, found, want[i])
		}
	}
	// qwen3 (QK-norm) places both graphs on the device too.
	qwen3 := filepath.Join(t.TempDir(), "qwen3.gguf")
	if _, err := runLlamaCLI(t, "model", "random", "--arch", "qwen3", "--vocab-from", cliVocabSPM(t), "--layers", "2", "--embedding", "64",
		"--ff", "96", "--heads", "4", "--heads-kv", "2", "--head-dim", "32", "--tied-output", "--out", qwen3); err != nil {
		t.Fatal(err)
	}
	pl = placementOf(t, qwen3, "vulkan0", "--backend-dir", dir)
	if pl.Graphs[0].Placement == nil || pl.Graphs[0].Placement.Nodes("Vulkan0") == 0 || pl.Graphs[1].Placement == nil || pl.Graphs[1].Placement.Nodes("Vulkan0") == 0 {
		t.Fatalf("qwen3 on vulkan0: %+v", pl.Graphs)
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
		if onDevice := strings.Contains(string(out), "train: LoRA training on vulkan0"); onDevice != (device == "vulkan0") {
			t.Fatalf("train --device %s: output says LoRA training on vulkan0: %v\n%s", device, onDevice, out)
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

// TestGRPOOnVulkan: `bpo grpo --device vulkan0` samples and trains its policy on the device; one round
// writes its optimizer steps and the adapter. (Its samples come from an F16 KV cache, which rounds
// differently on the two backends, so the run is not compared with the CPU's; the training step itself
// is, in TestTrainOnVulkanMatchesCPU and nn's TestVulkanTrainStepMatchesCPU.)
func TestGRPOOnVulkan(t *testing.T) {
	dir := vulkantest.Dir(t)
	tmp := t.TempDir()
	model, data := grpoFixture(t, tmp)
	out := filepath.Join(tmp, "run")
	args := grpoArgs(model, data, out, "--device", "vulkan0", "--backend-dir", dir)
	for i, a := range args {
		switch a {
		case "--rounds", "--iterations":
			args[i+1] = "1"
		case "--questions-per-round":
			args[i+1] = "2"
		}
	}
	msg, err := bpoCmd(args...).CombinedOutput()
	if err != nil {
		t.Fatalf("grpo --device vulkan0: %v\n%s", err, msg)
	}
	if !strings.Contains(string(msg), "grpo: LoRA training on vulkan0") {
		t.Fatalf("grpo --device vulkan0 does not say it trains there:\n%s", msg)
	}
	steps, err := align.ReadGRPOMetrics(filepath.Join(out, align.MetricsFileName))
	if err != nil || len(steps) != 1 {
		t.Fatalf("metrics: %d steps, %v; want 1", len(steps), err)
	}
	if _, err := llama.ReadAdapterFile(filepath.Join(out, align.AdapterFileName)); err != nil {
		t.Fatal(err)
	}
}
