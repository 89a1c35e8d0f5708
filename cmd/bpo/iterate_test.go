package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/eval"
)

func iterateArgs(model, data, out string, extra ...string) []string {
	return append([]string{"iterate", "--model", model, "--benchmark", "gsm8k", "--data", data, "--prompt", "gsm8k-fewshot",
		"--method", "flexible", "--max-new-tokens", "32", "--parallel", "4", "--threads", "1", "--n", "4", "--rounds", "2",
		"--loss", "dpo", "--lora-rank", "4", "--lora-alpha", "8", "--lr", "5e-2", "--batch-size", "1", "--epochs", "6",
		"--save-every", "1", "--seed", "7", "--eval-data", data, "--eval-limit", "4", "--out", out}, extra...)
}

// iterateResult is what a finished iterate run leaves: the final adapter and every round's pairs,
// training metrics, trained adapter and eval samples.
func iterateResult(t *testing.T, run string) map[string][]byte {
	t.Helper()
	files := []string{align.AdapterFileName}
	for _, r := range []string{"round-001", "round-002"} {
		files = append(files, filepath.Join(r, "pairs.jsonl"), filepath.Join(r, "train", align.MetricsFileName),
			filepath.Join(r, "train", align.AdapterFileName))
	}
	m := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(run, f))
		if err != nil {
			t.Fatal(err)
		}
		m[f] = b
	}
	// The eval answers, in question order (samples.jsonl is in finishing order; summary.json has timings).
	for _, r := range []string{"round-001", "round-002"} {
		recs, err := eval.ReadRecords(filepath.Join(run, r, "eval"))
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 4 {
			t.Fatalf("%s/eval: %d records, want 4", r, len(recs))
		}
		slices.SortFunc(recs, func(a, b eval.Record) int { return strings.Compare(a.ID, b.ID) })
		var b bytes.Buffer
		for _, rec := range recs {
			fmt.Fprintf(&b, "%s %q %v\n", rec.ID, rec.Responses, rec.Corrects)
		}
		m[filepath.Join(r, "eval")] = b.Bytes()
	}
	return m
}

// TestIterateKillAndResume runs two rounds of `bpo iterate` uninterrupted, checks that round 2
// sampled with round 1's adapter and trained from it, then kills a second run with SIGKILL during
// round 2's training: re-running the command must give the uninterrupted run's files byte for byte.
func TestIterateKillAndResume(t *testing.T) {
	dir := t.TempDir()
	model, data := grpoFixture(t, dir)
	full := filepath.Join(dir, "full")
	if out, err := bpoCmd(iterateArgs(model, data, full)...).CombinedOutput(); err != nil {
		t.Fatalf("iterate: %v\n%s", err, out)
	}
	want := iterateResult(t, full)
	for _, r := range []string{"round-001", "round-002"} {
		steps, err := align.ReadMetrics(filepath.Join(full, r, "train", align.MetricsFileName))
		if err != nil {
			t.Fatal(err)
		}
		if len(steps) == 0 {
			t.Fatalf("%s: no training steps", r)
		}
		if n := bytes.Count(want[filepath.Join(r, "pairs.jsonl")], []byte("\n")); n == 0 {
			t.Fatalf("%s: no pairs: the fixture gives no training signal", r)
		}
	}
	if !bytes.Equal(want[align.AdapterFileName], want[filepath.Join("round-002", "train", align.AdapterFileName)]) {
		t.Errorf("the final adapter is not round 2's")
	}
	if bytes.Equal(want[filepath.Join("round-001", "train", align.AdapterFileName)], want[align.AdapterFileName]) {
		t.Errorf("round 2 did not change the adapter")
	}
	// Round 2 sampled with round 1's adapter (its fingerprint is in the samples' settings).
	var settings struct{ Adapters []string }
	raw, err := os.ReadFile(filepath.Join(full, "round-002", "samples", "settings.json"))
	if err == nil {
		err = json.Unmarshal(raw, &settings)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(settings.Adapters) != 1 {
		t.Errorf("round 2 sampled with adapters %v, want round 1's", settings.Adapters)
	}

	run := filepath.Join(dir, "killed")
	cmd := bpoCmd(iterateArgs(model, data, run)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		raw, _ := os.ReadFile(filepath.Join(run, "round-002", "train", align.MetricsFileName))
		if bytes.Count(raw, []byte("\n")) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(run, "round-002", iterateDoneFile)); err == nil {
		t.Fatalf("the run finished round 2 before the kill")
	}
	if _, err := os.Stat(filepath.Join(run, "round-001", iterateDoneFile)); err != nil {
		t.Fatalf("killed before round 1 was done: %v", err)
	}
	out, err := bpoCmd(iterateArgs(model, data, run)...).CombinedOutput()
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	for _, w := range []string{"round 1 already done", "resuming at step"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("no %q in the resumed run's output:\n%s", w, out)
		}
	}
	got := iterateResult(t, run)
	for f, w := range want {
		if !bytes.Equal(got[f], w) {
			t.Errorf("%s after resume differs from the uninterrupted run's", f)
		}
	}
}

// TestIterateSettingsChecked refuses bad settings before the run folder is made, and a resume with
// a changed setting, naming it.
func TestIterateSettingsChecked(t *testing.T) {
	dir := t.TempDir()
	model, data := grpoFixture(t, dir)
	for _, tc := range []struct {
		extra []string
		want  string
	}{
		{[]string{"--rounds", "0"}, "--rounds 0"},
		{[]string{"--loss", "nosuchloss"}, "nosuchloss"},
	} {
		run := filepath.Join(dir, "bad")
		out, err := bpoCmd(iterateArgs(model, data, run, tc.extra...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: err %v, output %q, want %q", tc.extra, err, out, tc.want)
		}
		if _, err := os.Stat(run); err == nil {
			t.Errorf("%v: run folder made before refusing", tc.extra)
		}
	}
	run := filepath.Join(dir, "run")
	if out, err := bpoCmd(iterateArgs(model, data, run, "--rounds", "1")...).CombinedOutput(); err != nil {
		t.Fatalf("iterate: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		extra []string
		want  string
	}{
		{[]string{"--rounds", "1", "--lr", "1e-3"}, `--lr="0.05", now "0.001"`},
		{[]string{"--rounds", "1", "--loss", "ipo"}, `--loss="dpo", now "ipo"`},
		{[]string{"--rounds", "2"}, `--rounds="1", now "2"`},
	} {
		out, err := bpoCmd(iterateArgs(model, data, run, tc.extra...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("resume with %v: err %v, output %s, want %q", tc.extra, err, out, tc.want)
		}
	}
}
