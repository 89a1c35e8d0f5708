package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStatusKB(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, text, key string
		want            int64
		errHas          string
	}{
		{"ok", "Name:\tx\nVmPeak:\t  2048 kB\nVmHWM:\t   1234 kB\n", "VmHWM", 1234 * 1024, ""},
		{"first field", "VmHWM:\t1 kB\n", "VmHWM", 1024, ""},
		{"missing", "Name:\tx\n", "VmHWM", 0, "no VmHWM line"},
		{"no unit", "VmHWM:\t1234\n", "VmHWM", 0, ":1: VmHWM"},
		{"not a number", "Name:\tx\nVmHWM:\tlots kB\n", "VmHWM", 0, ":2: VmHWM"},
		{"negative", "VmHWM:\t-5 kB\n", "VmHWM", 0, "not a non-negative integer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := statusKB(write(strings.ReplaceAll(c.name, " ", "_"), c.text), c.key)
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("error %v, want one containing %q", err, c.errHas)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %d, %v; want %d", got, err, c.want)
			}
		})
	}
}

// TestPeakRSS reads this process's real /proc/self/status.
func TestPeakRSS(t *testing.T) {
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	hwm, err := peakRSS()
	if err != nil {
		t.Fatal(err)
	}
	if hwm < int64(len(buf)) {
		t.Fatalf("VmHWM %d bytes after touching a %d-byte buffer", hwm, len(buf))
	}
}

func TestJobs(t *testing.T) {
	cases := []struct {
		only string
		want []string
		bad  bool
	}{
		{"", []string{"engine", "llama", "trainer", "memory", "memory8b"}, false},
		{"trainer", []string{"trainer"}, false},
		{"engine, llama", []string{"engine", "llama"}, false},
		{"engines", nil, true},
	}
	for _, c := range cases {
		got, err := jobs(c.only)
		if c.bad {
			if err == nil || !strings.Contains(err.Error(), "unknown job") {
				t.Errorf("jobs(%q): error %v, want unknown job", c.only, err)
			}
			continue
		}
		if err != nil || len(got) != len(c.want) {
			t.Errorf("jobs(%q) = %v, %v; want %v", c.only, got, err, c.want)
			continue
		}
		for _, j := range c.want {
			if !got[j] {
				t.Errorf("jobs(%q) lacks %s", c.only, j)
			}
		}
	}
}
