package ipnn

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/stat"
)

// ReadRuns reads every run-*.json in dir, ordered by run number.
func ReadRuns(dir string) ([]RunResult, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "run-*.json"))
	if err != nil {
		return nil, fmt.Errorf("list runs in %s: %w", dir, err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no run-*.json files in %s", dir)
	}
	var runs []RunResult
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read run: %w", err)
		}
		var r RunResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("run file %s: %w", p, err)
		}
		if r.Dataset == "" || r.TestSize <= 0 {
			return nil, fmt.Errorf("run file %s: fields dataset and test_size must be set", p)
		}
		runs = append(runs, r)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].Run < runs[j].Run })
	return runs, nil
}

// meanStd returns the mean and the population standard deviation (as numpy's np.std,
// which the IPNN authors report).
func meanStd(v []float64) (float64, float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	return stat.PopMeanStdDev(v, nil)
}

func intsString(v []int) string {
	p := make([]string, len(v))
	for i, x := range v {
		p[i] = strconv.Itoa(x)
	}
	return strings.Join(p, ",")
}

// compactSplit shortens long uniform splits: 2,2,...,2 (12 times) -> "2×12".
func compactSplit(v []int) string {
	if len(v) > 4 {
		same := true
		for _, x := range v {
			same = same && x == v[0]
		}
		if same {
			return fmt.Sprintf("%d×%d", v[0], len(v))
		}
	}
	return intsString(v)
}

// WriteReport writes a markdown results table, one row per run directory.
func WriteReport(w io.Writer, dirs []string) error {
	fmt.Fprintln(
		w,
		"| setting | dataset | model | split | label sets | T | eps | epochs | batch | runs | test accuracy % (mean ± std) | other | train s/run | peak RSS MiB |",
	)
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, dir := range dirs {
		runs, err := ReadRuns(dir)
		if err != nil {
			return err
		}
		r0 := runs[0]
		var acc, secs, dig []float64
		rss := 0.0
		for _, r := range runs {
			acc = append(acc, 100*r.Accuracy)
			secs = append(secs, r.Stats.TrainSeconds)
			dig = append(dig, 100*r.DigitAcc)
			rss = math.Max(rss, r.PeakRSSMiB)
		}
		m, s := meanStd(acc)
		ts, _ := meanStd(secs)
		model, split, sets, T, eps := string(r0.Kind), "-", "-", "-", "-"
		if r0.Kind == KindIPNN {
			split = compactSplit(r0.Split)
			if r0.Dataset == DatasetNumbers {
				per := r0.Split
				if len(per) == 0 {
					per = []int{10}
				}
				split = fmt.Sprintf("(%s)×%d", intsString(per), r0.Digits)
			}
			sets = describeSets(r0)
			T = strconv.Itoa(r0.Forget)
			eps = strconv.FormatFloat(r0.Eps, 'g', -1, 64)
			if r0.Independence {
				model += "+indep"
			}
			if r0.RefClamp {
				model += " (ref clamp)"
			}
		}
		other := "-"
		if r0.Dataset == DatasetToyBits {
			coding := "0/1"
			if r0.SignedBits {
				coding = "±1"
			}
			lo := acc[0]
			for _, a := range acc {
				lo = math.Min(lo, a)
			}
			other = fmt.Sprintf("input bits %s; %d steps/run; worst run %.2f", coding, r0.Stats.Steps, lo)
			if len(r0.GroupBits) > 0 {
				all := 0
				for _, r := range runs {
					if bitsEncoded(r.GroupBits) == r0.Bits {
						all++
					}
				}
				other += fmt.Sprintf("; runs with all %d bits held by a group: %d/%d", r0.Bits, all, len(runs))
			}
		}
		if r0.Dataset == DatasetNumbers {
			dm, ds := meanStd(dig)
			other = fmt.Sprintf(
				"digit acc %.2f ± %.2f; %d classes; %d/%d test numbers unseen in training",
				dm,
				ds,
				r0.Classes,
				r0.UnseenTest,
				r0.TestSize,
			)
		}
		fmt.Fprintf(
			w,
			"| %s | %s | %s | %s | %s | %s | %s | %d | %d | %d | %.2f ± %.2f | %s | %.1f | %.0f |\n",
			filepath.Base(
				filepath.Clean(dir),
			),
			r0.Dataset,
			model,
			split,
			sets,
			T,
			eps,
			r0.Epochs,
			r0.Batch,
			len(runs),
			m,
			s,
			other,
			ts,
			rss,
		)
	}
	return nil
}

func describeSets(r RunResult) string {
	switch {
	case r.Dataset == DatasetNumbers && r.Tie:
		return fmt.Sprintf("digit (1 observation shared by %d positions)", r.Digits)
	case r.Dataset == DatasetNumbers:
		return fmt.Sprintf("%d digit sets (1 per position)", r.Digits)
	case r.BitLabels:
		return fmt.Sprintf("class + %d bit sets", r.Bits)
	default:
		return "class"
	}
}

// ClusterReport describes how one split group partitions the classes across runs.
type ClusterReport struct {
	Group      int
	Runs       int
	PerRun     [][]string // per run, per state: the classes whose majority lands there
	Groupings  map[string]int
	PairARI    []float64 // adjusted Rand index of test-sample partitions, all run pairs
	ClassARI   []float64 // per run: state partition vs the partition by majority class group
	StateShare [][]float64
}

// Clusters analyses split group g of the IPNN runs in dir (runs must carry states).
func Clusters(dir string, g int) (*ClusterReport, error) {
	runs, err := ReadRuns(dir)
	if err != nil {
		return nil, err
	}
	rep := &ClusterReport{Group: g, Groupings: map[string]int{}}
	var parts [][]int
	for _, r := range runs {
		if g >= len(r.States) || len(r.TestLabels) != len(r.States[g]) {
			return nil, fmt.Errorf("run %d in %s: no test states for group %d", r.Run, dir, g)
		}
		states, labels := r.States[g], r.TestLabels
		M := 0
		if g < len(r.Split) {
			M = r.Split[g]
		}
		counts := make([][10]int, M)
		for i, s := range states {
			if int(s) >= M || labels[i] > 9 {
				return nil, fmt.Errorf("run %d in %s: state %d or label %d out of range", r.Run, dir, s, labels[i])
			}
			counts[s][labels[i]]++
		}
		groups := make([][]int, M)
		majority := make([]int, 10)
		for c := 0; c < 10; c++ {
			best := 0
			for s := 1; s < M; s++ {
				if counts[s][c] > counts[best][c] {
					best = s
				}
			}
			majority[c] = best
			groups[best] = append(groups[best], c)
		}
		names := make([]string, M)
		for s := range groups {
			names[s] = "{" + intsString(groups[s]) + "}"
		}
		rep.PerRun = append(rep.PerRun, names)
		canon := append([]string(nil), names...)
		sort.Strings(canon)
		rep.Groupings[strings.Join(canon, " ")]++
		p := make([]int, len(states))
		byClass := make([]int, len(states))
		for i, s := range states {
			p[i] = int(s)
			byClass[i] = majority[labels[i]]
		}
		ari, err := AdjustedRand(p, byClass)
		if err != nil {
			return nil, err
		}
		rep.ClassARI = append(rep.ClassARI, ari)
		parts = append(parts, p)
	}
	for i := range parts {
		for j := i + 1; j < len(parts); j++ {
			ari, err := AdjustedRand(parts[i], parts[j])
			if err != nil {
				return nil, err
			}
			rep.PairARI = append(rep.PairARI, ari)
		}
	}
	rep.Runs = len(runs)
	return rep, nil
}

// WriteClusters writes the cluster report as markdown.
func (c *ClusterReport) WriteClusters(w io.Writer) {
	fmt.Fprintf(
		w,
		"Split group %d over %d runs; digits listed under the state that holds the majority of their test images.\n\n",
		c.Group+1,
		c.Runs,
	)
	fmt.Fprintln(w, "| run | state groups | ARI(states, digit groups) |")
	fmt.Fprintln(w, "|---|---|---|")
	for i, g := range c.PerRun {
		fmt.Fprintf(w, "| %d | %s | %.3f |\n", i+1, strings.Join(g, " vs "), c.ClassARI[i])
	}
	keys := make([]string, 0, len(c.Groupings))
	for k := range c.Groupings {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return c.Groupings[keys[i]] > c.Groupings[keys[j]] ||
			(c.Groupings[keys[i]] == c.Groupings[keys[j]] && keys[i] < keys[j])
	})
	fmt.Fprintln(w, "\nDistinct groupings (count of runs):")
	for _, k := range keys {
		fmt.Fprintf(w, "- %s: %d\n", k, c.Groupings[k])
	}
	m, s := meanStd(c.PairARI)
	cm, cs := meanStd(c.ClassARI)
	fmt.Fprintf(
		w,
		"\nAdjusted Rand index between the runs' state partitions of the 10,000 test images: %.3f ± %.3f (%d pairs).\n",
		m,
		s,
		len(c.PairARI),
	)
	fmt.Fprintf(w, "Adjusted Rand index of each run's partition against its own digit grouping: %.3f ± %.3f.\n", cm, cs)
}
