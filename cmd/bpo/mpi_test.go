package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/llama"
)

// mpiBinary builds bpo with the mpi build tag (make build-mpi) for the tests that launch it with
// mpirun. Without Open MPI the tests cannot run: they say so loudly and are skipped, so that the
// rest of `make test` does not depend on MPI (make test installs Open MPI where it can).
func mpiBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("MPI tests skipped in -short mode")
	}
	_, errRun := exec.LookPath("mpirun")
	errPkg := exec.Command("pkg-config", "--exists", "ompi-c").Run()
	if errRun != nil || errPkg != nil {
		msg := "*** MPI TESTS NOT RUN: Open MPI is not installed (mpirun or pkg-config ompi-c missing); install it with apt-get install -y openmpi-bin libopenmpi-dev pkg-config ***"
		fmt.Fprintln(os.Stderr, msg)
		t.Skip(msg)
	}
	bin, err := buildMPIBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// buildMPIBinary builds bpo with the mpi tag once for all the MPI tests of this test binary, into a
// folder that TestMain removes.
var buildMPIBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "bpo-mpi-test-")
	if err != nil {
		return "", err
	}
	mpiTestDirs = append(mpiTestDirs, dir)
	bin := filepath.Join(dir, "bpo-mpi")
	t0 := time.Now()
	if out, err := exec.Command("go", "build", "-tags", "mpi", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -tags mpi: %v\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "MPI tests: built bpo with -tags mpi in %s\n", time.Since(t0).Round(time.Millisecond))
	return bin, nil
})

// mpiTestDirs are removed by TestMain after the tests.
var mpiTestDirs []string

// mpirun launches bin with n ranks on this machine over loopback (as root where needed).
func mpirun(bin string, n int, args ...string) *exec.Cmd {
	full := append([]string{"--oversubscribe", "-np", fmt.Sprint(n)}, bin)
	if os.Geteuid() == 0 {
		full = append([]string{"--allow-run-as-root"}, full...)
	}
	cmd := exec.Command("mpirun", append(full, args...)...)
	cmd.Env = append(os.Environ(), "OMPI_MCA_btl=self,tcp", "OMPI_MCA_btl_tcp_if_include=lo", "OMPI_MCA_oob_tcp_if_include=lo",
		"OMPI_MCA_btl_vader_single_copy_mechanism=none", "OMPI_MCA_rmaps_base_oversubscribe=1")
	return cmd
}

// maxRelDiff is the largest |a-b| / max(|a|, |b|, 1e-30) over the adapters' tensors.
func maxRelDiff(t *testing.T, a, b string) float64 {
	t.Helper()
	fa, err := llama.ReadAdapterFile(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := llama.ReadAdapterFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(fa.Tensors) != len(fb.Tensors) || len(fa.Tensors) == 0 {
		t.Fatalf("adapters hold %d and %d tensors", len(fa.Tensors), len(fb.Tensors))
	}
	worst := 0.0
	for i, ta := range fa.Tensors {
		tb := fb.Tensors[i]
		if ta.Base != tb.Base || len(ta.A) != len(tb.A) || len(ta.B) != len(tb.B) {
			t.Fatalf("tensor %d: %s (%d, %d values) vs %s (%d, %d)", i, ta.Base, len(ta.A), len(ta.B), tb.Base, len(tb.A), len(tb.B))
		}
		for _, pair := range [][2][]float32{{ta.A, tb.A}, {ta.B, tb.B}} {
			for j, x := range pair[0] {
				y := float64(pair[1][j])
				d := math.Abs(float64(x)-y) / max(math.Abs(float64(x)), math.Abs(y), 1e-30)
				if x != pair[1][j] {
					worst = max(worst, d)
				}
			}
		}
	}
	return worst
}

// TestMPITrain: `bpo train` on 2 MPI ranks (mpirun over loopback) equals the single-process run
// with the same batch and micro-batch: the adapter to <= 1e-6 relative (bit for bit in practice),
// the metrics line for line, the reference cache value for value. The job is interrupted (SIGTERM
// to mpirun) midway: the run folder keeps a whole checkpoint and nothing half-written, and the
// relaunched job resumes to the same result.
func TestMPITrain(t *testing.T) {
	bin := mpiBinary(t)
	dir := t.TempDir()
	_, pairs := writeStoryData(t, dir)
	args := func(out string) []string {
		return []string{"train", "--model", stories(t), "--data", pairs, "--loss", "dpo", "--out", out, "--lr", "5e-3",
			"--epochs", "40", "--batch-size", "8", "--micro-batch", "2", "--lora-rank", "4", "--lora-alpha", "8", "--threads", "1",
			"--warmup-ratio", "0", "--eval-split", "0.25", "--eval-every", "3", "--save-every", "1", "--keep-checkpoints", "2"}
	}
	single := filepath.Join(dir, "single", "run")
	t0 := time.Now()
	if out, err := bpoCmd(args(single)...).CombinedOutput(); err != nil {
		t.Fatalf("single process: %v\n%s", err, out)
	}
	t.Logf("single process: %s", time.Since(t0).Round(time.Millisecond))

	// 2 ranks, interrupted after a few steps.
	run := filepath.Join(dir, "mpi", "run")
	metrics := filepath.Join(run, align.MetricsFileName)
	cmd := mpirun(bin, 2, args(run)...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	t0 = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for {
		if raw, _ := os.ReadFile(metrics); bytes.Count(raw, []byte("\n")) >= 3 {
			break
		}
		if time.Since(t0) > 2*time.Minute {
			cmd.Process.Kill()
			t.Fatalf("the MPI job wrote no metrics in 2 minutes:\n%s", log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	t.Logf("interrupted job (exit %v):\n%s", err, tail(log.String(), 6))
	entries, _ := os.ReadDir(run)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") && e.Name() != ".lock" {
			t.Errorf("interrupted job left %s in the run folder", e.Name())
		}
	}
	steps, err := align.ReadMetrics(metrics)
	if err != nil {
		t.Fatal(err)
	}
	last := steps[len(steps)-1].Step
	if last >= 120 { // 40 epochs of 3 steps: a step takes ~5 ms here, so the job must be long enough to interrupt
		t.Fatalf("the job finished (step %d) before the interruption: the test needs a longer run", last)
	}
	cp, err := os.ReadFile(filepath.Join(run, "latest-checkpoint"))
	if err != nil {
		t.Fatalf("interrupted job left no checkpoint: %v", err)
	}
	t.Logf("interrupted at step %d, latest checkpoint %s", last, strings.TrimSpace(string(cp)))

	// Relaunch: resumes from the checkpoint and finishes.
	out, err := mpirun(bin, 2, args(run)...).CombinedOutput()
	if err != nil {
		t.Fatalf("relaunched job: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "resuming at step") {
		t.Errorf("the relaunched job did not resume:\n%s", out)
	}
	t.Logf("2 ranks, interrupted and resumed: %s", time.Since(t0).Round(time.Millisecond))
	if d := maxRelDiff(t, filepath.Join(single, "adapter.gguf"), filepath.Join(run, "adapter.gguf")); d > 1e-6 {
		t.Errorf("adapter of 2 ranks differs from the single-process one by %g relative (want <= 1e-6)", d)
	} else {
		t.Logf("adapter: max relative difference %g", d)
	}
	if a, b := readTrimmed(t, filepath.Join(single, align.MetricsFileName)), readTrimmed(t, metrics); a != b {
		t.Errorf("metrics differ:\nsingle:\n%s\n2 ranks:\n%s", a, b)
	}
	// The reference log-probs scored in shards equal the single process's.
	for _, split := range []string{"single", "mpi"} {
		if es, _ := os.ReadDir(filepath.Join(dir, split, ".bpo-refcache")); len(es) != 2 {
			t.Fatalf("%s: %d reference cache files, want train and eval", split, len(es))
		}
	}
	es, _ := os.ReadDir(filepath.Join(dir, "single", ".bpo-refcache"))
	for _, e := range es {
		a, b := readTrimmed(t, filepath.Join(dir, "single", ".bpo-refcache", e.Name())), readTrimmed(t, filepath.Join(dir, "mpi", ".bpo-refcache", e.Name()))
		if a != b {
			t.Errorf("reference cache %s differs between the single process and the 2 ranks", e.Name())
		}
	}
}

// TestMPIRefusesOtherCommands: a command that does not run data-parallel refuses under mpirun
// instead of each rank running the whole job.
func TestMPIRefusesOtherCommands(t *testing.T) {
	bin := mpiBinary(t)
	out, err := mpirun(bin, 2, "info", stories(t)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "runs in one process; under mpirun only bpo train, sft, eval and pairs run as one job") {
		t.Errorf("bpo info under mpirun: %v\n%s", err, out)
	}
}

func readTrimmed(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// rankPID returns the pid of MPI rank rank among the descendants of the launcher's process root.
func rankPID(root, rank int) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	parent := map[int]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so fields are counted after its ")".
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 1 {
			parent[pid], _ = strconv.Atoi(fields[1])
		}
	}
	want := "OMPI_COMM_WORLD_RANK=" + strconv.Itoa(rank)
	for pid := range parent {
		for p, hops := parent[pid], 0; p > 1 && hops < 64; p, hops = parent[p], hops+1 {
			if p != root {
				continue
			}
			env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
			if err == nil && slices.Contains(strings.Split(string(env), "\x00"), want) {
				return pid, nil
			}
			break
		}
	}
	return 0, fmt.Errorf("no process of rank %d under pid %d", rank, root)
}

// checkWholeRunDir fails t if run holds a temporary file or folder (a half-written checkpoint or
// file) or a latest-checkpoint that names a missing checkpoint.
func checkWholeRunDir(t *testing.T, run string) {
	t.Helper()
	entries, err := os.ReadDir(run)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); n != ".lock" && (strings.HasPrefix(n, ".") || strings.HasSuffix(n, ".tmp")) {
			t.Errorf("the run folder holds the partial %s", n)
		}
	}
	if name, err := os.ReadFile(filepath.Join(run, "latest-checkpoint")); err == nil {
		cp := filepath.Join(run, strings.TrimSpace(string(name)))
		for _, f := range []string{"adapter.gguf", "state.bin"} {
			if _, err := os.Stat(filepath.Join(cp, f)); err != nil {
				t.Errorf("checkpoint %s: %v", cp, err)
			}
		}
	}
}

// withoutFields returns the JSON lines of path with the named fields removed (timings).
func withoutFields(t *testing.T, path string, fields ...string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(readTrimmed(t, path), "\n") {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, f := range fields {
			delete(m, f)
		}
		out = append(out, m)
	}
	return out
}

// TestMPISFTRankDies: `bpo sft` on 2 MPI ranks equals the single-process run with the same batch
// and micro-batch (adapter <= 1e-6 relative, bit for bit in practice; metrics equal but for the
// step's seconds). Rank 1 is killed (SIGKILL, by pid) mid-run: the job ends within a minute with a
// message naming rank 1, the run folder holds only whole checkpoints, and the relaunched job
// resumes from the last one and finishes equal to the uninterrupted run.
func TestMPISFTRankDies(t *testing.T) {
	bin := mpiBinary(t)
	dir := t.TempDir()
	sft, _ := writeStoryData(t, dir)
	args := func(out string, extra ...string) []string {
		return append([]string{"sft", "--model", stories(t), "--data", sft, "--out", out, "--lr", "5e-3", "--epochs", "10",
			"--batch-size", "8", "--lora-rank", "4", "--lora-alpha", "8", "--threads", "1", "--save-every", "1"}, extra...)
	}
	single := filepath.Join(dir, "single")
	t0 := time.Now()
	if out, err := bpoCmd(args(single, "--micro-batch", "4")...).CombinedOutput(); err != nil {
		t.Fatalf("single process: %v\n%s", err, out)
	}
	t.Logf("single process, micro-batch 4: %s", time.Since(t0).Round(time.Millisecond))

	run := filepath.Join(dir, "mpi")
	metrics := filepath.Join(run, align.MetricsFileName)
	cmd := mpirun(bin, 2, args(run)...) // micro-batch: batch / ranks = 4
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	t0 = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for {
		if raw, _ := os.ReadFile(metrics); bytes.Count(raw, []byte("\n")) >= 5 {
			break
		}
		if time.Since(t0) > 2*time.Minute {
			cmd.Process.Kill()
			t.Fatalf("the MPI job wrote no metrics in 2 minutes:\n%s", log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	pid, err := rankPID(cmd.Process.Pid, 1)
	if err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the job still ran a minute after rank 1 died:\n%s", log.String())
	}
	t.Logf("rank 1 killed: the job ended in %s (%v):\n%s", time.Since(killed).Round(time.Millisecond), err,
		tail(log.String(), 4))
	if err == nil {
		t.Errorf("the job exited 0 after rank 1 died")
	}
	if !strings.Contains(log.String(), "rank 1") || !strings.Contains(log.String(), "Killed") {
		t.Errorf("the job's output does not say that rank 1 was killed:\n%s", log.String())
	}
	checkWholeRunDir(t, run)
	steps := withoutFields(t, metrics)
	if len(steps) >= 40 {
		t.Fatalf("the job finished (%d steps) before rank 1 was killed: the test needs a longer run", len(steps))
	}

	out, err := mpirun(bin, 2, args(run)...).CombinedOutput()
	if err != nil {
		t.Fatalf("relaunched job: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "(resumed from 0)") || !strings.Contains(string(out), "resumed from") {
		t.Errorf("the relaunched job did not resume from a checkpoint:\n%s", out)
	}
	t.Logf("2 ranks, killed and relaunched: %s; %s", time.Since(t0).Round(time.Millisecond), tail(string(out), 1))
	checkWholeRunDir(t, run)
	if d := maxRelDiff(t, filepath.Join(single, "adapter.gguf"), filepath.Join(run, "adapter.gguf")); d > 1e-6 {
		t.Errorf("adapter of 2 ranks differs from the single-process one by %g relative (want <= 1e-6)", d)
	} else {
		t.Logf("adapter: max relative difference %g", d)
	}
	a, b := withoutFields(t, filepath.Join(single, align.MetricsFileName), "seconds"), withoutFields(t, metrics, "seconds")
	if !reflect.DeepEqual(a, b) {
		t.Errorf("metrics (without seconds) differ:\nsingle:  %v\n2 ranks: %v", a, b)
	}
}

// evalRunFiles are the files of an eval run folder, and the summary fields that time the session
// (the only ones allowed to differ between two runs of the same questions).
var (
	evalRunFiles   = []string{"samples.jsonl", "settings.json", "summary.json", "summary.md"}
	evalTimeFields = []string{"session_seconds", "tokens_per_sec", "updated_at"}
)

// compareEvalRuns fails t unless the run folders a and b hold the same files with the same
// records, settings and summary, timings aside.
func compareEvalRuns(t *testing.T, a, b string) {
	t.Helper()
	list := func(dir string) []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	if la, lb := list(a), list(b); !slices.Equal(la, lb) {
		t.Errorf("run folders hold %v and %v", la, lb)
	}
	for _, f := range []string{"samples.jsonl", "settings.json"} {
		if x, y := readTrimmed(t, filepath.Join(a, f)), readTrimmed(t, filepath.Join(b, f)); x != y {
			t.Errorf("%s differs:\n%s\n---\n%s", f, x, y)
		}
	}
	summary := func(dir string) map[string]any {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(readTrimmed(t, filepath.Join(dir, "summary.json"))), &m); err != nil {
			t.Fatal(err)
		}
		for _, f := range evalTimeFields {
			if _, ok := m[f]; !ok {
				t.Errorf("%s/summary.json has no %s", dir, f)
			}
			delete(m, f)
		}
		return m
	}
	if x, y := summary(a), summary(b); !reflect.DeepEqual(x, y) {
		t.Errorf("summary.json (without %v) differs:\n%v\n---\n%v", evalTimeFields, x, y)
	}
	mdWithoutTimes := func(path string) string {
		var keep []string
		for _, line := range strings.Split(readTrimmed(t, path), "\n") {
			if !strings.Contains(line, "tokens/s") {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "\n")
	}
	if x, y := mdWithoutTimes(filepath.Join(a, "summary.md")), mdWithoutTimes(filepath.Join(b, "summary.md")); x != y {
		t.Errorf("summary.md (without tokens/s) differs:\n%s\n---\n%s", x, y)
	}
}

// TestMPIEvalAndPairs: `bpo eval` (greedy) and `bpo pairs` (k = 4 samples at temperature 1) on 2
// MPI ranks write the run folder of the single-process run: the same files, the same samples.jsonl
// and settings.json byte for byte, the same summary but for the session timings (session_seconds,
// tokens_per_sec, updated_at in summary.json, the tokens/s line of summary.md), and the same pairs
// file. Every rank decodes one sequence at a time, as the single process does: its records then
// come in question order, as rank 0 writes them, and each completion is computed alone, so that
// sampling meets the same logits (llama.cpp's batched kernels are not bit-identical across batch
// compositions, which at a near-tie can change a sampled token of the random test model).
func TestMPIEvalAndPairs(t *testing.T) {
	bin := mpiBinary(t)
	dir := t.TempDir()
	model, data := grpoFixture(t, dir)
	common := []string{"--model", model, "--benchmark", "gsm8k", "--data", data, "--prompt", "gsm8k-fewshot",
		"--method", "flexible", "--max-new-tokens", "32", "--threads", "1"}
	for _, tc := range []struct {
		name string
		args func(out string) []string
		run  func(out string) string // the run folder of out
	}{
		{"eval", func(out string) []string { return append([]string{"eval", "--out", out}, common...) },
			func(out string) string { return out }},
		{"pairs", func(out string) []string {
			return append([]string{"pairs", "--out", out, "--n", "4", "--seed", "7"}, common...)
		}, func(out string) string { return out + ".samples" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			single, multi := filepath.Join(dir, tc.name+"-single"), filepath.Join(dir, tc.name+"-mpi")
			t0 := time.Now()
			if out, err := bpoCmd(append(tc.args(single), "--parallel", "1")...).CombinedOutput(); err != nil {
				t.Fatalf("single process: %v\n%s", err, out)
			}
			t.Logf("single process: %s", time.Since(t0).Round(time.Millisecond))
			t0 = time.Now()
			out, err := mpirun(bin, 2, append(tc.args(multi), "--parallel", "1")...).CombinedOutput()
			if err != nil {
				t.Fatalf("2 ranks: %v\n%s", err, out)
			}
			t.Logf("2 ranks: %s", time.Since(t0).Round(time.Millisecond))
			compareEvalRuns(t, tc.run(single), tc.run(multi))
			var sum struct{ N, Correct int }
			if err := json.Unmarshal([]byte(readTrimmed(t, filepath.Join(tc.run(multi), "summary.json"))), &sum); err != nil {
				t.Fatal(err)
			}
			if sum.N != 24 {
				t.Errorf("summary: %d questions, want 24", sum.N)
			}
			if tc.name == "pairs" {
				a, b := readTrimmed(t, single), readTrimmed(t, multi)
				if a != b || a == "" {
					t.Errorf("pairs differ or are empty:\n%s\n---\n%s", a, b)
				}
			}
		})
	}
}
