package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/internal/fixture"
)

// TestMain lets the tests run this test binary as the bpo command (BPO_TEST_MAIN=1), so a real
// process can be killed mid-run.
func TestMain(m *testing.M) {
	if os.Getenv("BPO_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	for _, dir := range mpiTestDirs {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// stories is the path of the stories260K fixture (testdata/).
func stories(t testing.TB) string { return fixture.File(t, "models/stories260K.gguf") }

// writeStoryData writes small SFT and preference files in stories260K's domain.
func writeStoryData(t *testing.T, dir string) (sft, pairs string) {
	t.Helper()
	names := []string{"Lily", "Tom", "Ben", "Sue", "Max", "Anna"}
	things := []string{"ball", "cat", "tree", "cake", "boat", "kite"}
	var a, b strings.Builder
	for i := 0; i < 32; i++ {
		n, th, u := names[i%6], things[(i*5)%6], things[(i*5+1)%6]
		fmt.Fprintf(&a, `{"prompt":"Once upon a time, there was a girl named %s.","completion":" She had a big %s. She liked to play with the %s every day."}`+"\n", n, th, th)
		fmt.Fprintf(&b, `{"prompt":"%s saw a %s.","chosen":" %s was happy and played with the %s.","rejected":" The %s was sad and %s ran away from the %s."}`+"\n", n, th, n, th, u, n, th)
	}
	sft, pairs = filepath.Join(dir, "sft.jsonl"), filepath.Join(dir, "pairs.jsonl")
	if err := os.WriteFile(sft, []byte(a.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pairs, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return sft, pairs
}

func bpoCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "BPO_TEST_MAIN=1")
	cmd.Args[0] = "bpo"
	return cmd
}

func readLosses(t *testing.T, path string) []float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var s align.SFTStep
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		if s.Step != len(out)+1 {
			t.Fatalf("%s: step %d after %d lines", path, s.Step, len(out))
		}
		out = append(out, s.Loss)
	}
	return out
}

// TestSFTKillAndResume runs `bpo sft --full` uninterrupted, then again killed with SIGKILL mid-run and
// re-run: the resumed run must reproduce the uninterrupted losses exactly, and the NLL must fall.
func TestSFTKillAndResume(t *testing.T) {
	dir := t.TempDir()
	sft, _ := writeStoryData(t, dir)
	args := func(out string) []string {
		return []string{"sft", "--model", stories(t), "--data", sft, "--out", out, "--full", "--lr", "2e-3", "--epochs", "3",
			"--batch-size", "4", "--save-every", "2", "--threads", "1", "--warmup-ratio", "0"}
	}
	full := filepath.Join(dir, "full")
	if out, err := bpoCmd(args(full)...).CombinedOutput(); err != nil {
		t.Fatalf("sft: %v\n%s", err, out)
	}
	want := readLosses(t, filepath.Join(full, "metrics.jsonl"))
	if len(want) != 24 {
		t.Fatalf("%d steps, want 24", len(want))
	}
	first, last := want[0], want[len(want)-1]
	t.Logf("NLL %.4f -> %.4f over %d steps", first, last, len(want))
	if last > first/2 {
		t.Errorf("NLL did not fall: %.4f -> %.4f", first, last)
	}

	killed := filepath.Join(dir, "killed")
	cmd := bpoCmd(args(killed)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		raw, _ := os.ReadFile(filepath.Join(killed, "metrics.jsonl"))
		if strings.Count(string(raw), "\n") >= 7 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	partial := readLosses(t, filepath.Join(killed, "metrics.jsonl"))
	if len(partial) >= len(want) {
		t.Fatalf("the run finished (%d steps) before it was killed", len(partial))
	}
	if out, err := bpoCmd(args(killed)...).CombinedOutput(); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "resumed from") {
		t.Fatalf("no resume in output:\n%s", out)
	}
	got := readLosses(t, filepath.Join(killed, "metrics.jsonl"))
	t.Logf("killed after %d logged steps; resumed run logged %d steps", len(partial), len(got))
	if len(got) != len(want) {
		t.Fatalf("resumed run has %d steps, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("step %d: resumed loss %v, uninterrupted %v", i+1, got[i], want[i])
		}
	}
	if _, err := os.Stat(filepath.Join(killed, "model.gguf")); err != nil {
		t.Errorf("no final model: %v", err)
	}
}

// TestDPOvsBPO trains DPO and BPO from the same pairs and seed and checks the paper's claim on this
// data: DPO lowers the chosen reward below zero (DCR) while BPO keeps it >= 0.
func TestDPOvsBPO(t *testing.T) {
	dir := t.TempDir()
	_, pairs := writeStoryData(t, dir)
	final := map[string]align.StepMetrics{}
	for _, loss := range []string{"dpo", "bpo"} {
		out := filepath.Join(dir, loss)
		res, err := bpoCmd("train", "--model", stories(t), "--data", pairs, "--loss", loss, "--out", out, "--lr", "5e-3",
			"--epochs", "2", "--batch-size", "8", "--lora-rank", "4", "--lora-alpha", "8", "--threads", "1", "--warmup-ratio", "0").CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", loss, err, res)
		}
		ms, err := align.ReadMetrics(filepath.Join(out, align.MetricsFileName))
		if err != nil {
			t.Fatal(err)
		}
		final[loss] = ms[len(ms)-1]
		t.Logf("%s: rewards/chosen %+.3f rewards/rejected %+.3f logps/chosen %.3f dcr_rate %.2f", loss, ms[len(ms)-1].RewardsChosen,
			ms[len(ms)-1].RewardsRejected, ms[len(ms)-1].LogpsChosen, ms[len(ms)-1].DCRRate)
		if _, err := os.Stat(filepath.Join(out, "adapter.gguf")); err != nil {
			t.Fatal(err)
		}
	}
	if d, b := final["dpo"], final["bpo"]; !(d.RewardsChosen < 0 && b.RewardsChosen >= 0 && b.DCRRate < d.DCRRate) || math.IsNaN(d.Loss) {
		t.Errorf("want DPO chosen reward < 0 and BPO's >= 0 with a lower DCR rate; got DPO %+.3f (dcr %.2f), BPO %+.3f (dcr %.2f)",
			d.RewardsChosen, d.DCRRate, b.RewardsChosen, b.DCRRate)
	}
	// The second run reused the reference cache beside the runs.
	entries, _ := os.ReadDir(filepath.Join(dir, ".bpo-refcache"))
	if len(entries) != 1 {
		t.Errorf("reference cache holds %d files, want 1 shared by both runs", len(entries))
	}
}

// TestTrainKillWithDefaultsAndLock: `bpo train` without --save-every checkpoints on a timer
// (--save-minutes, shortened here from its 10-minute default), so a SIGKILL loses little and the
// re-run resumes from the last checkpoint; while the first run holds the directory a second run on
// it is refused; a directory holding only the metrics of a run killed before its first checkpoint
// restarts cleanly.
func TestTrainKillWithDefaultsAndLock(t *testing.T) {
	dir := t.TempDir()
	_, pairs := writeStoryData(t, dir)
	run := filepath.Join(dir, "run")
	trainArgs := func(out, epochs, saveMinutes string) []string {
		return []string{"train", "--model", stories(t), "--data", pairs, "--loss", "dpo", "--out", out, "--lr", "5e-3",
			"--epochs", epochs, "--batch-size", "2", "--lora-rank", "2", "--threads", "1", "--warmup-ratio", "0", "--save-minutes", saveMinutes}
	}
	args := trainArgs(run, "3", "0.003")
	cmd := bpoCmd(args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	metrics := filepath.Join(run, align.MetricsFileName)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		raw, _ := os.ReadFile(metrics)
		_, cerr := os.Stat(filepath.Join(run, "latest-checkpoint"))
		if (strings.Count(string(raw), "\n") >= 6 && cerr == nil) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	out, err := bpoCmd(args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by another run") {
		t.Errorf("second run on the same --out while the first runs: %v\n%s", err, out)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	ms, err := align.ReadMetrics(metrics)
	if err != nil || len(ms) >= 48 {
		t.Fatalf("killed run: %d steps logged (of 48), %v", len(ms), err)
	}
	if _, err := os.Stat(filepath.Join(run, "latest-checkpoint")); err != nil {
		t.Fatalf("no timed checkpoint before the kill: %v", err)
	}
	killedAt := len(ms)
	out, err = bpoCmd(args...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "resuming at step") {
		t.Fatalf("re-run after SIGKILL: %v\n%s", err, out)
	}
	if ms, err = align.ReadMetrics(metrics); err != nil || ms[len(ms)-1].Step != 48 {
		t.Fatalf("resumed run ends at step %d, want 48 (%v)", ms[len(ms)-1].Step, err)
	}
	t.Logf("killed after %d steps, then %s", killedAt, string(out)[strings.Index(string(out), "resuming at step"):][:25])

	// Metrics but no checkpoint: the earlier run was killed before its first checkpoint.
	fresh := filepath.Join(dir, "fresh")
	os.MkdirAll(fresh, 0o755)
	os.WriteFile(filepath.Join(fresh, align.MetricsFileName), []byte(`{"step":1,"split":"train","loss":0.69}`+"\n"), 0o644)
	if out, err := bpoCmd(trainArgs(fresh, "1", "0")...).CombinedOutput(); err != nil {
		t.Fatalf("run over metrics without a checkpoint: %v\n%s", err, out)
	}
	if ms, err := align.ReadMetrics(filepath.Join(fresh, align.MetricsFileName)); err != nil || len(ms) != 16 || ms[0].Loss == 0.69 {
		t.Fatalf("restarted run: %d steps (%v), want 16 fresh ones", len(ms), err)
	}
}
