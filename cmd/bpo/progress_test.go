package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestProgressPlainLines(t *testing.T) {
	cases := []struct {
		name  string
		total int
		adds  []int // one Add per simulated second; a line at most every 2 s
		want  []string
	}{
		{"known total", 10, []int{2, 2, 2, 2, 2}, []string{
			"work: 4/10 (40.0%) 2/s elapsed 2s eta 3s",
			"work: 8/10 (80.0%) 2/s elapsed 4s eta 1s",
			"work: 10/10 (100.0%) 2/s elapsed 5s",
		}},
		{"unknown total", 0, []int{3, 3, 3}, []string{
			"work: 6 done 3/s elapsed 2s",
			"work: 9 done 3/s elapsed 3s",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			clock := time.Unix(1000, 0)
			p := newProgressTo(&buf, false, tc.total, "work")
			p.now = func() time.Time { return clock }
			p.start, p.last = clock, clock
			p.every = 2 * time.Second
			for _, n := range tc.adds {
				clock = clock.Add(time.Second)
				p.Add(n)
			}
			p.Finish()
			p.Finish() // no second final line
			p.Add(1)   // ignored after Finish
			got := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestProgressBarAndNil(t *testing.T) {
	var buf bytes.Buffer
	p := newProgressTo(&buf, true, 4, "scoring")
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); p.Add(1) }()
	}
	wg.Wait()
	p.Describe("scored")
	p.Finish()
	if out := buf.String(); !strings.Contains(out, "4/4") || !strings.Contains(out, "scored") {
		t.Fatalf("bar output %q lacks the count or the new description", out)
	}
	var none *progress
	none.Add(1)
	none.Describe("x")
	none.Finish()
}
