package llama

import (
	"os"
	"runtime"
	"strconv"
	"strings"
)

// ggml's CPU threads wait for each other at a barrier after every operation by spinning, never
// yielding. When other programs keep cores busy, a thread that the kernel has descheduled holds up
// the others for a whole time slice at each of the thousands of barriers of a training step, which
// makes a step several times slower than with fewer threads. So every compute call uses at most as
// many threads as there are cores not busy with other work at that moment (at least one).

// idleCores estimates how many cores are not running other work now, from the kernel's count of
// runnable tasks (/proc/loadavg, 4th field), which includes the calling thread. It returns
// runtime.NumCPU() when the count cannot be read.
func idleCores() int {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return runtime.NumCPU()
	}
	return idleCoresOf(string(b), runtime.NumCPU())
}

// idleCoresOf is idleCores for the contents of /proc/loadavg on a machine of cpus cores.
func idleCoresOf(loadavg string, cpus int) int {
	f := strings.Fields(loadavg)
	if len(f) < 4 {
		return cpus
	}
	running, _, ok := strings.Cut(f[3], "/")
	r, err := strconv.Atoi(running)
	if !ok || err != nil || r < 1 {
		return cpus
	}
	return max(1, cpus-(r-1))
}

// computeThreads is the thread count for one compute call when requested threads are asked for.
func computeThreads(requested int) int {
	if requested <= 1 {
		return 1
	}
	return min(requested, idleCores())
}
