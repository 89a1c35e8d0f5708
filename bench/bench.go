// Package bench is the small framework of the project's benchmarks: every benchmark is a program
// (bench/<name>/main.go) that measures something, records the machine state next to each sample, and
// writes one Result as bench/results/<name>.json; bench/report renders every result file into
// bench/RESULTS.md. See bench/README.md for how to add a benchmark.
package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// Result is the output of one benchmark program.
type Result struct {
	// Name is the benchmark's name; the file is <Name>.json.
	Name string `json:"name"`
	// Title is a one-line description shown in the report.
	Title string `json:"title"`
	// Command reproduces the result (e.g. "make bench").
	Command  string    `json:"command"`
	Started  time.Time `json:"started"`
	Duration float64   `json:"duration_s"`
	Env      Env       `json:"env"`
	// Config holds the benchmark's settings (model, threads, sizes...), shown as a list.
	Config map[string]string `json:"config"`
	// Metrics are the measured quantities.
	Metrics []Metric `json:"metrics"`
	// Ratios compare two metrics of the same unit, e.g. Go/C throughput.
	Ratios []Ratio `json:"ratios"`
	// Notes are free-form remarks (checks done, caveats).
	Notes []string `json:"notes,omitempty"`
}

// Env describes the machine and build a result was measured on.
type Env struct {
	Host       string     `json:"host"`
	CPU        string     `json:"cpu"`
	Cores      int        `json:"cores"`
	GoVersion  string     `json:"go_version"`
	GOOS       string     `json:"goos"`
	GOARCH     string     `json:"goarch"`
	CgoCFLAGS  string     `json:"cgo_cflags"`
	GitCommit  string     `json:"git_commit,omitempty"`
	LoadStart  [3]float64 `json:"load_avg_start"`
	LoadEnd    [3]float64 `json:"load_avg_end"`
	MemTotalGB float64    `json:"mem_total_gb"`
}

// Metric is one measured quantity with its samples.
type Metric struct {
	Name string `json:"name"`
	Unit string `json:"unit"`
	// Median, Min and Max summarise Samples.
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Samples []float64 `json:"samples"`
	// Load1 is the 1-minute load average when each sample was taken.
	Load1 []float64 `json:"load1"`
	// HigherIsBetter is true for throughputs, false for times.
	HigherIsBetter bool `json:"higher_is_better"`
}

// Ratio is Num/Den of two metrics' medians (and of their best samples).
type Ratio struct {
	Name  string  `json:"name"`
	Num   string  `json:"num"`
	Den   string  `json:"den"`
	Value float64 `json:"value"`
	// Best is the ratio of the best samples (max for throughputs), less sensitive to other load.
	Best float64 `json:"best"`
	// Goal, when > 0, is the least acceptable Value.
	Goal float64 `json:"goal,omitempty"`
}

// NewMetric summarises samples (with the load average at each sample) into a Metric.
func NewMetric(name, unit string, higherIsBetter bool, samples, load1 []float64) Metric {
	m := Metric{Name: name, Unit: unit, Samples: samples, Load1: load1, HigherIsBetter: higherIsBetter}
	m.Median, m.Min, m.Max = Median(samples), math.NaN(), math.NaN()
	if len(samples) > 0 {
		m.Min, m.Max = samples[0], samples[0]
		for _, s := range samples {
			m.Min, m.Max = math.Min(m.Min, s), math.Max(m.Max, s)
		}
	}
	return m
}

// Best is the best sample: the largest when higher is better, else the smallest.
func (m Metric) Best() float64 {
	if m.HigherIsBetter {
		return m.Max
	}
	return m.Min
}

// NewRatio compares two metrics; it is an error when either is missing or their units differ.
func (r *Result) NewRatio(name, num, den string, goal float64) (Ratio, error) {
	a, okA := r.Metric(num)
	b, okB := r.Metric(den)
	if !okA || !okB {
		return Ratio{}, fmt.Errorf("ratio %s: metric %q or %q missing", name, num, den)
	}
	if a.Unit != b.Unit {
		return Ratio{}, fmt.Errorf("ratio %s: units %q and %q differ", name, a.Unit, b.Unit)
	}
	return Ratio{Name: name, Num: num, Den: den, Value: a.Median / b.Median, Best: a.Best() / b.Best(), Goal: goal}, nil
}

// Metric returns the metric called name.
func (r *Result) Metric(name string) (Metric, bool) {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// Median returns the median of xs (NaN for none).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// LoadAvg reads the 1-, 5- and 15-minute load averages (zeros where /proc/loadavg is missing).
func LoadAvg() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}

// CurrentEnv describes this machine and build now (LoadEnd is filled by Finish).
func CurrentEnv() Env {
	e := Env{
		Cores: runtime.NumCPU(), GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		CgoCFLAGS: os.Getenv("CGO_CFLAGS"), LoadStart: LoadAvg(),
	}
	e.Host, _ = os.Hostname()
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %f kB", &kb); err == nil {
			e.MemTotalGB = math.Round(kb/1024/1024*10) / 10
		}
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		e.GitCommit = strings.TrimSpace(string(out))
	}
	return e
}

// Start begins a result: name, title, the command that reproduces it, and the environment now.
func Start(name, title, command string) *Result {
	return &Result{
		Name:    name,
		Title:   title,
		Command: command,
		Started: time.Now().UTC(),
		Env:     CurrentEnv(),
		Config:  map[string]string{},
	}
}

// Finish records the end time and load and writes the result to dir/<name>.json atomically.
func (r *Result) Finish(dir string) (string, error) {
	r.Duration = math.Round(time.Since(r.Started).Seconds()*10) / 10
	r.Env.LoadEnd = LoadAvg()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("bench result: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("bench result %s: %w", r.Name, err)
	}
	path := filepath.Join(dir, r.Name+".json")
	if err := atomicfile.Write(path, append(b, '\n')); err != nil {
		return "", fmt.Errorf("bench result: %w", err)
	}
	return path, nil
}

// ReadResult reads one result file; errors name the file and the problem.
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Name == "" {
		return nil, fmt.Errorf("%s: no \"name\" field: not a bench result", path)
	}
	for i, m := range r.Metrics {
		if m.Name == "" || m.Unit == "" {
			return nil, fmt.Errorf("%s: metric %d has no name or unit", path, i)
		}
	}
	return &r, nil
}
