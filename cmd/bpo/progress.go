package main

// Progress reporting for long work (scoring, evaluation, training, pair building).
//
// Usage from any command of this package:
//
//	p := newProgress(len(items), "scoring")  // writes to os.Stderr
//	defer p.Finish()
//	for _, it := range items {
//		... work ...
//		p.Add(1)                               // safe from several goroutines
//	}
//	p.Describe("scoring (epoch 2)")            // change the label at any time
//
// On a terminal it draws a progress bar (schollz/progressbar/v3) with count, rate and ETA. When stderr
// is not a terminal (a log file, CI, a pipe) it writes plain lines instead, at most one every
// progressInterval plus one final line from Finish, e.g.
//
//	scoring: 120/500 (24.0%) 3.1/s elapsed 38s eta 2m2s
//
// A total <= 0 means "unknown": the bar becomes a spinner and the lines omit percent and ETA.
// Progress goes to stderr only, so stdout stays clean for results (JSON, generated text).

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressInterval is the least time between two plain progress lines.
const progressInterval = 10 * time.Second

// progress reports the advance of one long task. All methods are safe for concurrent use; a nil
// *progress ignores every call, so callers may pass nil to mean "no progress output".
type progress struct {
	mu       sync.Mutex
	bar      *progressbar.ProgressBar // terminal mode; nil in plain-line mode
	w        io.Writer                // plain-line mode
	total    int
	done     int
	desc     string
	start    time.Time
	last     time.Time
	every    time.Duration
	now      func() time.Time
	finished bool
}

// newProgress reports on os.Stderr: a bar when stderr is a terminal, plain lines otherwise.
func newProgress(total int, desc string) *progress {
	return newProgressTo(os.Stderr, term.IsTerminal(int(os.Stderr.Fd())), total, desc)
}

// newProgressTo reports on w; bar selects the terminal progress bar instead of plain lines.
func newProgressTo(w io.Writer, bar bool, total int, desc string) *progress {
	p := &progress{w: w, total: total, desc: desc, every: progressInterval, now: time.Now}
	p.start = p.now()
	p.last = p.start
	if bar {
		max := int64(total)
		if total <= 0 {
			max = -1
		}
		p.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return p
}

// Add records n more units of finished work.
func (p *progress) Add(n int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.done += n
	if p.bar != nil {
		_ = p.bar.Add(n)
		return
	}
	if t := p.now(); t.Sub(p.last) >= p.every {
		p.last = t
		fmt.Fprintln(p.w, p.lineLocked(t))
	}
}

// Describe changes the label shown before the count.
func (p *progress) Describe(desc string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.desc = desc
	if p.bar != nil {
		p.bar.Describe(desc)
	}
}

// Finish ends the report: the bar is completed, or a final plain line is written. Later calls do nothing.
func (p *progress) Finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	if p.bar != nil {
		if p.total > 0 {
			_ = p.bar.Finish()
		} else {
			_ = p.bar.Exit()
			fmt.Fprintln(p.w)
		}
		return
	}
	fmt.Fprintln(p.w, p.lineLocked(p.now()))
}

// lineLocked formats a plain progress line; p.mu must be held.
func (p *progress) lineLocked(t time.Time) string {
	elapsed := t.Sub(p.start)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(p.done) / s
	}
	if p.total <= 0 {
		return fmt.Sprintf("%s: %d done %.3g/s elapsed %s", p.desc, p.done, rate, elapsed.Round(time.Second))
	}
	line := fmt.Sprintf("%s: %d/%d (%.1f%%) %.3g/s elapsed %s", p.desc, p.done, p.total,
		100*float64(p.done)/float64(p.total), rate, elapsed.Round(time.Second))
	if rate > 0 && p.done < p.total {
		eta := time.Duration(float64(p.total-p.done) / rate * float64(time.Second))
		line += " eta " + eta.Round(time.Second).String()
	}
	return line
}
