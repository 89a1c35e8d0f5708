package ggml

import (
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ggml's CPU threads wait for each other at a barrier after every operation by spinning, never
// yielding. When other programs keep cores busy, a thread that the kernel has descheduled holds up
// the others for a whole time slice at each of the thousands of barriers of a training step, which
// makes a step several times slower than with fewer threads. So every compute call uses at most as
// many threads as there are cores not busy with other work at that moment (at least one).

// idleCores estimates how many cores are not running other programs' work now: the cores minus the
// kernel's count of runnable tasks (/proc/loadavg, 4th field) that are not this process's own threads
// (/proc/self/task/*/stat). Both counts are instantaneous and read one after the other, so a thread of
// ours that changes state in between makes one sample wrong either way; the median of three samples 1 ms
// apart is used. It returns runtime.NumCPU() when the counts cannot be read.
func idleCores() int {
	cpus := runtime.NumCPU()
	var samples [3]int
	for i := range samples {
		if i > 0 {
			time.Sleep(time.Millisecond)
		}
		b, err := os.ReadFile("/proc/loadavg")
		if err != nil {
			return cpus
		}
		samples[i] = idleCoresOf(string(b), cpus, ownRunnable())
	}
	slices.Sort(samples[:])
	return samples[1]
}

// ownRunnable counts this process's threads in state R (running or runnable), at least 1 (the caller).
func ownRunnable() int {
	dirs, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 1
	}
	n := 0
	for _, d := range dirs {
		b, err := os.ReadFile("/proc/self/task/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// The state follows the command name, which is in parentheses and may contain spaces.
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'R' {
			n++
		}
	}
	return max(n, 1)
}

// idleCoresOf is idleCores for the contents of /proc/loadavg on a machine of cpus cores, own of the
// runnable tasks being this process's threads.
func idleCoresOf(loadavg string, cpus, own int) int {
	f := strings.Fields(loadavg)
	if len(f) < 4 {
		return cpus
	}
	running, _, ok := strings.Cut(f[3], "/")
	r, err := strconv.Atoi(running)
	if !ok || err != nil || r < 1 {
		return cpus
	}
	return min(cpus, max(1, cpus-(r-own)))
}

// computeThreads is the thread count for one compute call when requested threads are asked for.
func computeThreads(requested int) int {
	if requested <= 1 {
		return 1
	}
	return min(requested, idleCores())
}

// DefaultThreads is half the logical CPUs (at least 1): about the physical cores, as llama.cpp picks.
// ggml's worker threads spin-wait, so more threads than free cores makes every op slower, badly so on
// a busy machine.
func DefaultThreads() int { return max(1, runtime.NumCPU()/2) }
