// Command evalscale measures how `bpo eval` throughput (problems/s) scales from one process to two
// MPI ranks: 1 rank with 1 thread, 1 rank with 2 threads, and 2 ranks (mpirun over loopback) with 1
// thread each, on the benchmarks' Qwen2.5-0.5B-shaped model. It runs the bpo binary built with MPI
// (make build-mpi) as a user would and writes bench/results/evalscale.json.
//
// Three rates are kept per setting: end to end (questions / wall time of the whole command, model
// loading included), generation only (questions / the run's session_seconds in summary.json, which
// on 2 ranks covers the generation of all ranks, since rank 0 waits for every share), and per CPU
// second (questions / user + system time of the command with all its processes, the ranks included:
// nearly immune to other load, it shows what running as 2 ranks costs in CPU).
//
//	evalscale -bpo bin/bpo-mpi [-questions 8] [-max-new-tokens 32] [-reps 2]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/bpo-dev/bpo/bench"
	"github.com/bpo-dev/bpo/bench/benchmodel"
)

// setting is one way of running the eval.
type setting struct {
	name           string
	ranks, threads int
}

var settings = []setting{
	{"1 rank x 1 thread", 1, 1},
	{"1 rank x 2 threads", 1, 2},
	{"2 ranks x 1 thread", 2, 1},
}

func main() {
	bpo := flag.String("bpo", "bin/bpo-mpi", "bpo built with MPI (make build-mpi)")
	model := flag.String("model", "", "GGUF model (default: the benchmarks' shared Qwen2.5-0.5B-shaped model)")
	cache := flag.String("cache", "bench/.cache", "directory of the generated benchmark model")
	questions := flag.Int("questions", 8, "MATH-500 questions per run (the embedded test set)")
	maxNew := flag.Int("max-new-tokens", 32, "tokens generated per answer")
	parallel := flag.Int("parallel", 8, "sequences decoded in parallel per rank")
	reps := flag.Int("reps", 2, "runs per setting")
	out := flag.String("out", "bench/results", "result directory")
	command := flag.String("command", "make bench", "command recorded in the result")
	flag.Parse()
	path, err := benchmodel.Default(*model, *cache, "")
	if err == nil {
		err = run(*bpo, path, *questions, *maxNew, *parallel, *reps, *out, *command)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "evalscale:", err)
		os.Exit(1)
	}
}

// evalCommand returns the command line of one eval run of s into dir.
func evalCommand(bpo string, s setting, args []string) *exec.Cmd {
	args = append(args, "--threads", fmt.Sprint(s.threads))
	if s.ranks == 1 {
		return exec.Command(bpo, args...)
	}
	launcher := []string{"--oversubscribe", "-np", fmt.Sprint(s.ranks)}
	if os.Geteuid() == 0 {
		launcher = append(launcher, "--allow-run-as-root")
	}
	cmd := exec.Command("mpirun", append(append(launcher, bpo), args...)...)
	cmd.Env = append(os.Environ(), "OMPI_MCA_btl=self,tcp", "OMPI_MCA_btl_tcp_if_include=lo",
		"OMPI_MCA_oob_tcp_if_include=lo")
	return cmd
}

func run(bpo, model string, questions, maxNew, parallel, reps int, outDir, command string) error {
	res := bench.Start("evalscale", "bpo eval over MPI: problems/s from 1 process to 2 ranks", command)
	res.Config["model"] = filepath.Base(model)
	res.Config["work"] = fmt.Sprintf(
		"%d MATH-500 questions, boxed chat prompt, greedy, up to %d new tokens each, %d sequences in parallel per rank",
		questions, maxNew, parallel)
	res.Config["launcher"] = "2 ranks: mpirun --oversubscribe over loopback TCP on this machine"
	work, err := os.MkdirTemp("", "bpo-bench-evalscale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var first []byte // the first run's samples, to check that every setting answers the same
	// Settings take turns (rep 1 of each, then rep 2, ...) so that other load on the machine falls
	// on all of them alike.
	n := len(settings)
	e2e, gen, cpu, loads := make([][]float64, n), make([][]float64, n), make([][]float64, n), make([][]float64, n)
	for r := range reps {
		for k, s := range settings {
			dir := filepath.Join(work, fmt.Sprintf("%s-%d", strings.ReplaceAll(s.name, " ", ""), r))
			cmd := evalCommand(bpo, s, []string{"eval", "--model", model, "--benchmark", "math500",
				"--limit", fmt.Sprint(questions), "--max-new-tokens", fmt.Sprint(maxNew),
				"--parallel", fmt.Sprint(parallel), "--out", dir})
			load := bench.LoadAvg()[0]
			t0 := time.Now()
			out, err := cmd.CombinedOutput()
			secs := time.Since(t0).Seconds()
			if err != nil {
				return fmt.Errorf("%s: %v\n%s", s.name, err, out)
			}
			var sum struct {
				N              int     `json:"n"`
				SessionSeconds float64 `json:"session_seconds"`
			}
			raw, err := os.ReadFile(filepath.Join(dir, "summary.json"))
			if err == nil {
				err = json.Unmarshal(raw, &sum)
			}
			if err != nil || sum.N != questions || sum.SessionSeconds <= 0 {
				return fmt.Errorf(
					"%s: summary of %s: %v (%d questions, %v s)",
					s.name,
					dir,
					err,
					sum.N,
					sum.SessionSeconds,
				)
			}
			samples, err := os.ReadFile(filepath.Join(dir, "samples.jsonl"))
			if err != nil {
				return err
			}
			if first == nil {
				first = samples
			} else if string(samples) != string(first) {
				res.Notes = append(res.Notes, fmt.Sprintf("%s run %d: samples.jsonl differs from the first run's", s.name, r+1))
			}
			// The rusage of the waited-for command includes its waited-for children (mpirun's ranks).
			csecs := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
			cpu[k] = append(cpu[k], float64(questions)/csecs)
			e2e[k] = append(e2e[k], float64(questions)/secs)
			gen[k] = append(gen[k], float64(questions)/sum.SessionSeconds)
			loads[k] = append(loads[k], load)
			fmt.Fprintf(os.Stderr, "evalscale: %s: %d questions in %.1f s (generation %.1f s, %.1f CPU s), load %.1f\n",
				s.name, questions, secs, sum.SessionSeconds, csecs, load)
		}
	}
	for k, s := range settings {
		res.Metrics = append(res.Metrics,
			bench.NewMetric(s.name+" (end to end)", "problems/s", true, e2e[k], loads[k]),
			bench.NewMetric(s.name+" (generation)", "problems/s", true, gen[k], loads[k]),
			bench.NewMetric(s.name+" (cpu time)", "problems/cpu-s", true, cpu[k], loads[k]))
	}
	for _, kind := range []string{"end to end", "generation", "cpu time"} {
		for _, den := range settings[:2] {
			num := settings[2]
			q, err := res.NewRatio(
				fmt.Sprintf("%s / %s (%s)", num.name, den.name, kind),
				fmt.Sprintf("%s (%s)", num.name, kind),
				fmt.Sprintf("%s (%s)", den.name, kind),
				0,
			)
			if err != nil {
				return err
			}
			res.Ratios = append(res.Ratios, q)
		}
	}
	if len(res.Notes) == 0 {
		res.Notes = append(
			res.Notes,
			"every run wrote the same samples.jsonl (greedy answers do not depend on the ranks)",
		)
	}
	path, err := res.Finish(outDir)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "evalscale: wrote", path)
	return nil
}
