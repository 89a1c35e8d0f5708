package ggml

import "testing"

func TestIdleCoresOf(t *testing.T) {
	cases := []struct {
		loadavg   string
		cpus, own int
		want      int
	}{
		{"0.31 0.09 0.03 1/345 1234\n", 2, 1, 2},  // only the caller runs
		{"1.00 0.50 0.20 2/345 1234\n", 2, 1, 1},  // one other runnable task
		{"1.00 0.50 0.20 2/345 1234\n", 2, 2, 2},  // the other runnable thread is ours
		{"9.00 8.50 8.20 12/345 1234\n", 2, 1, 1}, // busy machine: never below one
		{"0.00 0.00 0.00 3/345 1234\n", 16, 1, 14},
		{"0.00 0.00 0.00 1/345 1234\n", 4, 3, 4}, // counts read at different moments: never above the cores
		{"garbled", 4, 1, 4},                     // unreadable: assume all cores
		{"0.1 0.1 0.1 x/10 1\n", 4, 1, 4},
	}
	for _, c := range cases {
		if got := idleCoresOf(c.loadavg, c.cpus, c.own); got != c.want {
			t.Errorf("idleCoresOf(%q, %d, %d) = %d, want %d", c.loadavg, c.cpus, c.own, got, c.want)
		}
	}
	if n := ownRunnable(); n < 1 {
		t.Errorf("ownRunnable() = %d, want >= 1 (the caller runs)", n)
	}
	if got := computeThreads(1); got != 1 {
		t.Errorf("computeThreads(1) = %d", got)
	}
}
