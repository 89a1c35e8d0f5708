package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// statusKB reads a "Key:   N kB" field of a /proc/<pid>/status file, in bytes.
func statusKB(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("%s:%d: %s: want \"N kB\", got %q", path, line, key, strings.TrimSpace(v))
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s:%d: %s: %q is not a non-negative integer", path, line, key, fields[0])
		}
		return n * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return 0, fmt.Errorf("%s: no %s line", path, key)
}

// peakRSS is this process's peak resident set size (VmHWM) in bytes.
func peakRSS() (int64, error) { return statusKB("/proc/self/status", "VmHWM") }

// mib converts bytes to MiB.
func mib(b int64) float64 { return float64(b) / (1 << 20) }

// mark is a point in wall-clock time and in this process's CPU time (user + system, all threads).
// With one ggml thread, CPU seconds measure the work done even when other programs load the
// machine; with more threads they include the threads' spin-waiting.
type mark struct {
	wall time.Time
	cpu  float64
}

func now() mark {
	var ru syscall.Rusage
	cpu := 0.0
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		cpu = float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
	}
	return mark{wall: time.Now(), cpu: cpu}
}

// since returns the wall and CPU seconds from m to now.
func (m mark) since() (wall, cpu float64) {
	n := now()
	return n.wall.Sub(m.wall).Seconds(), n.cpu - m.cpu
}

// to returns the wall and CPU seconds from m to a later mark e.
func (m mark) to(e mark) (wall, cpu float64) { return e.wall.Sub(m.wall).Seconds(), e.cpu - m.cpu }
