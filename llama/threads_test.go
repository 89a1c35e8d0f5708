package llama

import "testing"

func TestIdleCoresOf(t *testing.T) {
	cases := []struct {
		loadavg string
		cpus    int
		want    int
	}{
		{"0.31 0.09 0.03 1/345 1234\n", 2, 2},  // only the caller runs
		{"1.00 0.50 0.20 2/345 1234\n", 2, 1},  // one other runnable task
		{"9.00 8.50 8.20 12/345 1234\n", 2, 1}, // busy machine: never below one
		{"0.00 0.00 0.00 3/345 1234\n", 16, 14},
		{"garbled", 4, 4}, // unreadable: assume all cores
		{"0.1 0.1 0.1 x/10 1\n", 4, 4},
	}
	for _, c := range cases {
		if got := idleCoresOf(c.loadavg, c.cpus); got != c.want {
			t.Errorf("idleCoresOf(%q, %d) = %d, want %d", c.loadavg, c.cpus, got, c.want)
		}
	}
	if got := computeThreads(1); got != 1 {
		t.Errorf("computeThreads(1) = %d", got)
	}
}
