package eval

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/bpo-dev/bpo/eval/stats"
)

// RunSet is one model configuration's results: records by benchmark.
type RunSet struct {
	Name       string              // label in tables (the directory's base name by default)
	Dir        string              // directory it was read from
	Benchmarks map[string][]Record // records per benchmark
}

// LoadRunSet reads a run directory: either one benchmark run (dir/samples.jsonl) or a directory
// whose immediate subdirectories are benchmark runs (dir/math500/samples.jsonl, ...).
func LoadRunSet(dir string) (*RunSet, error) {
	rs := &RunSet{Name: filepath.Base(filepath.Clean(dir)), Dir: dir, Benchmarks: map[string][]Record{}}
	var dirs []string
	if _, err := os.Stat(filepath.Join(dir, SamplesFile)); err == nil {
		dirs = []string{dir}
	} else {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("load run %s: %w", dir, err)
		}
		for _, e := range entries {
			if _, err := os.Stat(filepath.Join(dir, e.Name(), SamplesFile)); e.IsDir() && err == nil {
				dirs = append(dirs, filepath.Join(dir, e.Name()))
			}
		}
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("load run %s: no %s in it or in its subdirectories", dir, SamplesFile)
	}
	for _, d := range dirs {
		recs, err := ReadRecords(d)
		if err != nil {
			return nil, fmt.Errorf("load run %s: %w", dir, err)
		}
		for _, r := range recs {
			rs.Benchmarks[r.Benchmark] = append(rs.Benchmarks[r.Benchmark], r)
		}
	}
	return rs, nil
}

// Cell is one run's result on one benchmark.
type Cell struct {
	Present  bool
	N        int
	Correct  int
	Accuracy float64
}

// Delta compares run i (i >= 1) with the first run on the questions both answered.
type Delta struct {
	Paired      int     // questions in both runs
	OnlyBase    int     // right in the first run only
	OnlyThis    int     // right in this run only
	Diff        float64 // accuracy(this) - accuracy(first) on the paired questions
	CILow, CIHi float64 // paired bootstrap 95% interval of Diff
	PValue      float64 // McNemar exact two-sided
	Computed    bool
}

// CompareRow is one benchmark across runs.
type CompareRow struct {
	Benchmark string
	Cells     []Cell
	Deltas    []Delta // Deltas[i] compares run i with run 0; Deltas[0] is unused
}

// CompareOptions configure Compare.
type CompareOptions struct {
	BootstrapIters int    // 0: 10000
	Seed           uint64 // bootstrap seed
}

// Compare builds the side-by-side rows over the union of benchmarks (sorted by name).
func Compare(runs []*RunSet, opts CompareOptions) ([]CompareRow, error) {
	if len(runs) == 0 {
		return nil, errors.New("compare: no runs")
	}
	iters := opts.BootstrapIters
	if iters <= 0 {
		iters = 10000
	}
	names := map[string]bool{}
	for _, r := range runs {
		for b := range r.Benchmarks {
			names[b] = true
		}
	}
	benches := slices.Sorted(maps.Keys(names))
	var rows []CompareRow
	for _, b := range benches {
		row := CompareRow{Benchmark: b, Cells: make([]Cell, len(runs)), Deltas: make([]Delta, len(runs))}
		for i, r := range runs {
			recs, ok := r.Benchmarks[b]
			if !ok {
				continue
			}
			c := Cell{Present: true, N: len(recs)}
			for _, x := range recs {
				if x.Correct {
					c.Correct++
				}
			}
			if c.N > 0 {
				c.Accuracy = float64(c.Correct) / float64(c.N)
			}
			row.Cells[i] = c
		}
		base, ok := runs[0].Benchmarks[b]
		for i := 1; i < len(runs) && ok; i++ {
			other, ok2 := runs[i].Benchmarks[b]
			if !ok2 {
				continue
			}
			d, err := pairedDelta(base, other, iters, opts.Seed)
			if err != nil {
				return nil, fmt.Errorf("compare %s, %s vs %s: %w", b, runs[i].Name, runs[0].Name, err)
			}
			row.Deltas[i] = d
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func pairedDelta(base, other []Record, iters int, seed uint64) (Delta, error) {
	byID := map[string]bool{}
	for _, r := range base {
		byID[r.ID] = r.Correct
	}
	var a, b []bool
	for _, r := range other {
		if ca, ok := byID[r.ID]; ok {
			a = append(a, ca)
			b = append(b, r.Correct)
		}
	}
	d := Delta{Paired: len(a)}
	if len(a) == 0 {
		return d, nil
	}
	var err error
	if d.OnlyBase, d.OnlyThis, err = stats.Discordant(a, b); err != nil {
		return d, err
	}
	if d.Diff, d.CILow, d.CIHi, err = stats.BootstrapDiff(a, b, iters, seed); err != nil {
		return d, err
	}
	d.PValue = stats.McNemarExact(d.OnlyBase, d.OnlyThis)
	d.Computed = true
	return d, nil
}

// WriteCompareMarkdown writes the comparison table: accuracy (%) per run, then for every run
// after the first its difference to the first in points with the bootstrap CI and McNemar p.
func WriteCompareMarkdown(w io.Writer, runs []*RunSet, rows []CompareRow) error {
	t := stats.Table{Header: []string{"benchmark"}, Align: []byte{'l'}}
	for _, r := range runs {
		t.Header = append(t.Header, r.Name)
		t.Align = append(t.Align, 'r')
	}
	for _, r := range runs[1:] {
		t.Header = append(t.Header, "Δ "+r.Name+" [95% CI]", "p (McNemar)", "n")
		t.Align = append(t.Align, 'r', 'r', 'r')
	}
	for _, row := range rows {
		cells := []string{row.Benchmark}
		for _, c := range row.Cells {
			if c.Present {
				cells = append(cells, stats.Pct(c.Accuracy))
			} else {
				cells = append(cells, "—")
			}
		}
		for _, d := range row.Deltas[1:] {
			if !d.Computed {
				cells = append(cells, "—", "—", strconv.Itoa(d.Paired))
				continue
			}
			cells = append(cells,
				fmt.Sprintf("%+.1f [%+.1f, %+.1f]", 100*d.Diff, 100*d.CILow, 100*d.CIHi),
				stats.PValue(d.PValue), strconv.Itoa(d.Paired))
		}
		t.AddRow(cells...)
	}
	if avg, ok := averageRow(runs, rows); ok {
		t.AddRow(avg...)
	}
	return t.WriteMarkdown(w)
}

// averageRow is the unweighted mean accuracy over benchmarks when every run has every benchmark
// (as in the paper's tables); its differences have no test since the questions differ in kind.
func averageRow(runs []*RunSet, rows []CompareRow) ([]string, bool) {
	if len(rows) < 2 {
		return nil, false
	}
	means := make([]float64, len(runs))
	for _, row := range rows {
		for i, c := range row.Cells {
			if !c.Present {
				return nil, false
			}
			means[i] += c.Accuracy / float64(len(rows))
		}
	}
	cells := []string{"average"}
	for _, m := range means {
		cells = append(cells, stats.Pct(m))
	}
	for i := 1; i < len(runs); i++ {
		cells = append(cells, fmt.Sprintf("%+.1f", 100*(means[i]-means[0])), "", "")
	}
	return cells, true
}
