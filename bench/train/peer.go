package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/bpo-dev/bpo/bench"
	"github.com/bpo-dev/bpo/nn"
)

// The PyTorch peer (torchpeer.py) does the engine job's work with PyTorch: Debian's python3-torch,
// with OpenBLAS (libopenblas0-openmp, put first on LD_LIBRARY_PATH: the default BLAS of Debian's
// torch is the 25x slower reference one). Its runs alternate with ours.

const (
	debianPython   = "/usr/bin/python3"
	openblasOpenMP = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
)

// torchRun is one torchpeer.py process's result: [CPU s, wall s] pairs.
type torchRun struct {
	Torch         string       `json:"torch"`
	Threads       int          `json:"threads"`
	Dtype         string       `json:"dtype"`
	WarmupForward [2]float64   `json:"warmup_forward"`
	WarmupStep    [2]float64   `json:"warmup_step"`
	Forward       [][2]float64 `json:"forward"`
	Step          [][2]float64 `json:"step"`
}

// ensureTorch makes Debian's python3-torch and OpenBLAS available, installing them with apt-get
// when missing and allowed (root); it returns why the peer cannot run, or "".
func ensureTorch() string {
	check := func() error {
		return exec.Command(debianPython, "-c", "import torch").Run()
	}
	if check() == nil {
		if _, err := os.Stat(openblasOpenMP); err == nil {
			return ""
		}
	}
	if os.Geteuid() != 0 {
		return "python3-torch or libopenblas0-openmp is missing and this is not root (apt-get install -y python3-torch libopenblas0-openmp)"
	}
	fmt.Fprintln(os.Stderr, "train: installing python3-torch and libopenblas0-openmp for the PyTorch peer")
	cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "python3-torch", "libopenblas0-openmp")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Sprintf("apt-get install python3-torch libopenblas0-openmp failed: %v (%.200s)", err, out)
	}
	if err := check(); err != nil {
		return fmt.Sprintf("python3-torch installed but does not import: %v", err)
	}
	return ""
}

// runTorch runs torchpeer.py once (its own warm-up, then one timed forward and step).
func runTorch(script string, ec engineConfig, dtype string) (torchRun, error) {
	cmd := exec.Command(
		debianPython,
		script,
		"--prompt",
		strconv.Itoa(ec.prompt),
		"--completion",
		strconv.Itoa(ec.complete),
		"--threads",
		strconv.Itoa(ec.threads),
		"--dtype",
		dtype,
		"--reps",
		"1",
		"--seed",
		strconv.FormatUint(ec.seed, 10),
	)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+openblasOpenMP, "OMP_NUM_THREADS="+strconv.Itoa(ec.threads))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return torchRun{}, fmt.Errorf("torchpeer.py: %w", err)
	}
	var r torchRun
	if err := json.Unmarshal(out, &r); err != nil {
		return torchRun{}, fmt.Errorf("torchpeer.py output %q: %w", out, err)
	}
	if len(r.Forward) != 1 || len(r.Step) != 1 {
		return torchRun{}, fmt.Errorf(
			"torchpeer.py: %d forward and %d step timings, want 1 each",
			len(r.Forward),
			len(r.Step),
		)
	}
	return r, nil
}

// peerScript is the path of torchpeer.py next to this program's source (run from the repository root).
func peerScript() string { return filepath.Join("bench", "train", "torchpeer.py") }

// contention measures the wall time of one forward+backward step with 1 and with 2 threads while a
// CPU-bound process started here competes for the cores, alternating the two settings.
func contention(res *bench.Result, tm *nn.TrainModel, seqs []nn.TrainSeq, reps int, job string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	spin := exec.Command(self, "-spin")
	if err := spin.Start(); err != nil {
		return fmt.Errorf("competing process: %w", err)
	}
	defer func() {
		spin.Process.Kill()
		spin.Wait()
	}()
	time.Sleep(time.Second)
	var one, two series
	for r := 0; r < reps; r++ {
		for _, n := range []int{1, 2} {
			tm.SetThreads(n)
			load := bench.LoadAvg()[0]
			a, _, c, _, err := timedGradient(tm, seqs)
			if err != nil {
				return err
			}
			wall, _ := a.to(c)
			if n == 1 {
				one.add(wall, load)
			} else {
				two.add(wall, load)
			}
			fmt.Fprintf(
				os.Stderr,
				"train: %s with a competing process, %d thread(s): forward+backward %.2f s wall, load %.2f\n",
				job,
				n,
				wall,
				load,
			)
		}
	}
	n1, n2 := job+"/forward+backward wall with a competing process, 1 thread", job+"/forward+backward wall with a competing process, 2 threads"
	res.Metrics = append(
		res.Metrics,
		bench.NewMetric(n1, "s", false, one.samples, one.loads),
		bench.NewMetric(n2, "s", false, two.samples, two.loads),
	)
	ratio, err := res.NewRatio(
		job+" with a competing process: 1-thread wall / 2-thread wall (goal >= 1: two threads no slower)",
		n1,
		n2,
		1,
	)
	if err != nil {
		return err
	}
	res.Ratios = append(res.Ratios, ratio)
	return nil
}

// spinForever is the -spin process: one CPU-bound thread until killed.
func spinForever() {
	x := 0
	for {
		x++
	}
}
