package main

import (
	"bytes"
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
	bin := filepath.Join(t.TempDir(), "bpo-mpi")
	out, err := exec.Command("go", "build", "-tags", "mpi", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -tags mpi: %v\n%s", err, out)
	}
	return bin
}

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
			"--epochs", "10", "--batch-size", "8", "--micro-batch", "2", "--lora-rank", "4", "--lora-alpha", "8", "--threads", "1",
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
	if last >= 30 {
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
	out, err := mpirun(bin, 2, "eval", "--model", stories(t), "--out", filepath.Join(t.TempDir(), "e")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "runs in one process; under mpirun only `bpo train` runs data-parallel") {
		t.Errorf("bpo eval under mpirun: %v\n%s", err, out)
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
