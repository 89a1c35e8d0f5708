package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bpo-dev/bpo/align"
)

// grpoFixture makes a tiny random model with the math vocabulary and a question file whose answers
// are 0, 1 or 2, so that the random model's last number is sometimes right: groups get mixed rewards
// and the adapter moves.
func grpoFixture(t *testing.T, dir string) (model, data string) {
	t.Helper()
	model = filepath.Join(dir, "math.gguf")
	if out, err := bpoCmd("model", "random", "--vocab", "math", "--layers", "1", "--embedding", "32", "--ff", "64",
		"--heads", "2", "--seed", "3", "--out", model).CombinedOutput(); err != nil {
		t.Fatalf("model random: %v\n%s", err, out)
	}
	var b strings.Builder
	for i := range 24 {
		x, y := i%2, i%3%2
		fmt.Fprintf(&b, `{"question":"What is %d + %d?","answer":"%d + %d = %d\n#### %d"}`+"\n", x, y, x, y, x+y, x+y)
	}
	data = filepath.Join(dir, "q.jsonl")
	if err := os.WriteFile(data, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return model, data
}

func grpoArgs(model, data, out string, extra ...string) []string {
	return append([]string{"grpo", "--model", model, "--benchmark", "gsm8k", "--data", data, "--prompt", "gsm8k-fewshot",
		"--method", "flexible", "--max-new-tokens", "32", "--parallel", "4", "--threads", "1", "--n", "4", "--rounds", "4",
		"--questions-per-round", "6", "--batch-questions", "2", "--iterations", "2", "--lora-rank", "4", "--lora-alpha", "8",
		"--lr", "5e-2", "--beta", "0.05", "--epsilon-high", "0.28", "--save-every", "1", "--seed", "7", "--out", out}, extra...)
}

// TestGRPOKillAndResume runs `bpo grpo` uninterrupted, then killed with SIGKILL and, in another
// folder, stopped with SIGINT, in both cases mid-run; re-running the command must reproduce the
// uninterrupted run's metrics and final adapter exactly.
func TestGRPOKillAndResume(t *testing.T) {
	dir := t.TempDir()
	model, data := grpoFixture(t, dir)
	full := filepath.Join(dir, "full")
	if out, err := bpoCmd(grpoArgs(model, data, full)...).CombinedOutput(); err != nil {
		t.Fatalf("grpo: %v\n%s", err, out)
	}
	want, err := os.ReadFile(filepath.Join(full, align.MetricsFileName))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := align.ReadGRPOMetrics(filepath.Join(full, align.MetricsFileName))
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 24 { // 4 rounds x 2 iterations x 3 steps
		t.Fatalf("%d metrics lines, want 24", len(steps))
	}
	moved := 0
	for _, s := range steps {
		if s.RewardStd > 0 && s.GradNorm > 0 {
			moved++
		}
	}
	t.Logf("%d of %d steps had groups with mixed rewards; last kl %.4g", moved, len(steps), steps[len(steps)-1].KL)
	if moved == 0 || steps[len(steps)-1].KL <= 0 {
		t.Fatalf("the fixture gives no training signal (steps with mixed rewards %d, kl %v)", moved, steps[len(steps)-1].KL)
	}
	wantAdapter, err := os.ReadFile(filepath.Join(full, align.AdapterFileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			run := filepath.Join(dir, strings.ReplaceAll(sig.String(), " ", "-"))
			cmd := bpoCmd(grpoArgs(model, data, run)...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(2 * time.Minute)
			for {
				raw, _ := os.ReadFile(filepath.Join(run, align.MetricsFileName))
				if bytes.Count(raw, []byte("\n")) >= 8 || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			cmd.Process.Signal(sig)
			cmd.Wait()
			partial, _ := os.ReadFile(filepath.Join(run, align.MetricsFileName))
			t.Logf("stopped with %d metrics lines", bytes.Count(partial, []byte("\n")))
			if n := bytes.Count(partial, []byte("\n")); n >= 24 {
				t.Fatalf("the run finished (%d lines) before the signal", n)
			}
			out, err := bpoCmd(grpoArgs(model, data, run)...).CombinedOutput()
			if err != nil {
				t.Fatalf("resume: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "resumed from") || strings.Contains(string(out), "resumed from 0)") {
				t.Errorf("no resume in the output:\n%s", out)
			}
			got, _ := os.ReadFile(filepath.Join(run, align.MetricsFileName))
			if !bytes.Equal(got, want) {
				t.Errorf("metrics after resume differ from the uninterrupted run's:\n%s\nwant\n%s", got, want)
			}
			gotAdapter, _ := os.ReadFile(filepath.Join(run, align.AdapterFileName))
			if !bytes.Equal(gotAdapter, wantAdapter) {
				t.Errorf("final adapter differs from the uninterrupted run's")
			}
		})
	}
}

// TestGRPOSettingsChecked refuses bad settings before any model is loaded or sample drawn, and a
// resume with changed settings.
func TestGRPOSettingsChecked(t *testing.T) {
	dir := t.TempDir()
	model, data := grpoFixture(t, dir)
	for _, tc := range []struct {
		extra []string
		want  string
	}{
		{[]string{"--n", "1"}, "group size must be >= 2"},
		{[]string{"--epsilon", "1.5"}, "epsilon"},
		{[]string{"--epsilon-high", "-1"}, "epsilon-high"},
		{[]string{"--beta", "NaN"}, "beta"},
		{[]string{"--beta", "+Inf"}, "beta"},
		{[]string{"--loss-type", "ppo"}, "unknown loss type"},
		{[]string{"--temperature", "0"}, "sampling must be random"},
		{[]string{"--batch-questions", "9"}, "questions per step"},
		{[]string{"--max-new-tokens", "2100"}, "exceed the model's"},
	} {
		run := filepath.Join(dir, "bad")
		out, err := bpoCmd(grpoArgs(model, data, run, tc.extra...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: err %v, output %q, want %q", tc.extra, err, out, tc.want)
		}
		if _, err := os.Stat(filepath.Join(run, "round-001")); err == nil {
			t.Errorf("%v: sampled before refusing", tc.extra)
		}
	}
	run := filepath.Join(dir, "run")
	if out, err := bpoCmd(grpoArgs(model, data, run, "--rounds", "1")...).CombinedOutput(); err != nil {
		t.Fatalf("grpo: %v\n%s", err, out)
	}
	out, err := bpoCmd(grpoArgs(model, data, run, "--rounds", "1", "--lr", "1e-3")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "lr=") {
		t.Errorf("resume with another --lr: err %v, output %s", err, out)
	}
}
