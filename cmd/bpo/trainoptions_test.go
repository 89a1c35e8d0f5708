package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/align"
)

// TestTrainBadSpecsRefusedFirst: a bad loss spec or setting is refused before any work (the data
// file is not even read, the run directory not created), naming the offending part.
func TestTrainBadSpecsRefusedFirst(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--loss", "bpo:1,foo:0.2"}, `--loss: loss spec "bpo:1,foo:0.2": term 2 "foo:0.2": unknown loss "foo"`},
		{[]string{"--loss", "bpo:1,sft:-0.5"}, `term 2 "sft:-0.5": weight must be a finite number >= 0, got -0.5`},
		{[]string{"--loss", "bpo:Inf"}, `weight must be a finite number >= 0, got +Inf`},
		{[]string{"--loss", "dpo(gamma=1):1,sft:0.1"}, `term 1 "dpo(gamma=1):1": parameter gamma does not apply to loss dpo`},
		{[]string{"--loss", "bpo:1,sft:0.2", "--gamma", "2"}, `--gamma: no loss in "bpo:1,sft:0.2" uses it`},
		{[]string{"--loss", "sft", "--label-smoothing", "0.1"}, `--label-smoothing: no loss in "sft" uses it`},
		{[]string{"--loss", "dpo", "--beta", "abc"}, `--beta: loss parameter beta: expected a number, got "abc"`},
		{[]string{"--loss", "dpo", "--divergence", "tv"}, `unknown divergence "tv"`},
		{[]string{"--loss", "simpo", "--ref-refresh", "hard:5"}, "--ref-refresh: loss simpo uses no reference model"},
		{[]string{"--loss", "dpo", "--ref-refresh", "soft:0:5"}, "--ref-refresh: reference refresh \"soft:0:5\": ALPHA must be a number in (0, 1]"},
		{[]string{"--loss", "dpo", "--dcr-alarm", "0.5:x"}, `--dcr-alarm: DCR alarm "0.5:x": STEPS must be an integer > 0, got "x"`},
		{[]string{"--loss", "dpo", "--dcr-threshold", "-1"}, "--dcr-threshold must be a finite number >= 0"},
	}
	for _, tc := range tests {
		out := filepath.Join(dir, "run")
		args := append([]string{"train", "--model", stories(t), "--data", filepath.Join(dir, "missing.jsonl"), "--out", out}, tc.args...)
		res, err := bpoCmd(args...).CombinedOutput()
		if err == nil || !strings.Contains(string(res), tc.wantErr) {
			t.Errorf("%v: %v\n%s\nwant %q", tc.args, err, res, tc.wantErr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%v: the run directory was created", tc.args)
		}
	}
}

// TestTrainComposedRefreshAlarm runs `bpo train` on stories260K with a composed loss, TR-DPO
// refreshes and the DCR alarm in warning mode: the metrics log each component (their weighted sum
// is the loss), the refresh steps, and a step-1 dcr_rate of 0 (the LoRA is zero then; policy and
// reference differ only by float rounding).
func TestTrainComposedRefreshAlarm(t *testing.T) {
	dir := t.TempDir()
	_, pairs := writeStoryData(t, dir)
	out := filepath.Join(dir, "run")
	res, err := bpoCmd("train", "--model", stories(t), "--data", pairs, "--loss", "bpo:1,sft:0.2", "--out", out, "--lr", "5e-3",
		"--epochs", "2", "--batch-size", "8", "--lora-rank", "4", "--lora-alpha", "8", "--threads", "1", "--warmup-ratio", "0",
		"--ref-refresh", "hard:3", "--dcr-alarm", "0.3:1:warn").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, res)
	}
	if !strings.Contains(string(res), "loss components (unweighted): bpo ") || !strings.Contains(string(res), "reference refreshed (TR-DPO)") {
		t.Errorf("output lacks the components or the refresh:\n%s", res)
	}
	ms, err := align.ReadMetrics(filepath.Join(out, align.MetricsFileName))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 8 {
		t.Fatalf("%d steps, want 8", len(ms))
	}
	if ms[0].DCRRate != 0 {
		t.Errorf("step 1 dcr_rate %v, want 0 (rewards/chosen %v)", ms[0].DCRRate, ms[0].RewardsChosen)
	}
	for _, m := range ms {
		bpo, sft := m.Components["bpo"], m.Components["sft"]
		if len(m.Components) != 2 || math.Abs(bpo+0.2*sft-m.Loss) > 1e-9*(1+math.Abs(m.Loss)) {
			t.Errorf("step %d: components %v, loss %v", m.Step, m.Components, m.Loss)
		}
		refresh := m.Step == 4 || m.Step == 7
		if strings.Contains(m.Event, "ref_refresh") != refresh {
			t.Errorf("step %d: event %q", m.Step, m.Event)
		}
		if refresh && (math.Abs(m.RewardsChosen) > 1e-3 || m.DCRRate != 0) {
			t.Errorf("step %d right after a hard refresh: rewards/chosen %v dcr %v, want about 0", m.Step, m.RewardsChosen, m.DCRRate)
		}
		if strings.Contains(m.Event, "dcr_alarm") != (m.DCRRate > 0.3) {
			t.Errorf("step %d: dcr_rate %v, event %q", m.Step, m.DCRRate, m.Event)
		}
		t.Logf("step %d loss %.4f bpo %.4f sft %.4f chosen %+.4f dcr %.2f %s", m.Step, m.Loss, bpo, sft, m.RewardsChosen, m.DCRRate, m.Event)
	}
	if _, err := os.Stat(filepath.Join(out, "adapter.gguf")); err != nil {
		t.Fatal(err)
	}
}

// TestTrainIncludePromptFlag: --include-prompt reaches ORPO only; with another loss it is refused.
func TestTrainIncludePromptFlag(t *testing.T) {
	dir := t.TempDir()
	res, err := bpoCmd("train", "--model", stories(t), "--data", filepath.Join(dir, "missing.jsonl"), "--out", filepath.Join(dir, "run"),
		"--loss", "dpo", "--include-prompt").CombinedOutput()
	if err == nil || !strings.Contains(string(res), `--include-prompt: no loss in "dpo" uses it`) {
		t.Errorf("%v\n%s", err, res)
	}
}

// TestTrainLDAlpha runs LD-DPO on stories260K: the reference's shared-prefix sums come from llama.cpp
// and the policy's from the training graph, so step 1 (LoRA B zero) must log DPO's log 2 and
// rewards of about 0; a bad --ld-alpha is refused first.
func TestTrainLDAlpha(t *testing.T) {
	dir := t.TempDir()
	_, pairs := writeStoryData(t, dir)
	out := filepath.Join(dir, "run")
	res, err := bpoCmd("train", "--model", stories(t), "--data", pairs, "--loss", "dpo", "--ld-alpha", "0.5", "--out", out, "--lr", "5e-3",
		"--max-steps", "4", "--batch-size", "8", "--lora-rank", "4", "--lora-alpha", "8", "--threads", "1", "--warmup-ratio", "0").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, res)
	}
	ms, err := align.ReadMetrics(filepath.Join(out, align.MetricsFileName))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(ms[0].Loss-math.Ln2) > 1e-4 || math.Abs(ms[0].RewardsChosen) > 1e-4 || math.Abs(ms[0].RewardsRejected) > 1e-4 {
		t.Errorf("step 1: loss %v rewards %v %v, want log 2 and 0", ms[0].Loss, ms[0].RewardsChosen, ms[0].RewardsRejected)
	}
	if last := ms[len(ms)-1]; last.RewardsMargins <= ms[0].RewardsMargins {
		t.Errorf("margin did not grow: %v -> %v", ms[0].RewardsMargins, last.RewardsMargins)
	}
	res, err = bpoCmd("train", "--model", stories(t), "--data", filepath.Join(dir, "missing.jsonl"), "--out", filepath.Join(dir, "x"),
		"--loss", "dpo", "--ld-alpha", "1").CombinedOutput()
	if err == nil || !strings.Contains(string(res), "--ld-alpha must be in (0, 1)") {
		t.Errorf("--ld-alpha 1: %v %s", err, res)
	}
}
