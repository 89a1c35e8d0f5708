package bench

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	cases := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tc := range cases {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
}

func TestMetricsAndRatios(t *testing.T) {
	r := Start("unit", "unit test", "go test ./bench")
	r.Metrics = append(r.Metrics,
		NewMetric("x/go", "tokens/s", true, []float64{90, 110, 100}, []float64{0.1, 0.2, 0.3}),
		NewMetric("x/c", "tokens/s", true, []float64{100, 120, 80}, []float64{0.1, 0.2, 0.3}),
		NewMetric("t", "s", false, []float64{2, 1}, []float64{0, 0}))
	m, _ := r.Metric("x/go")
	if m.Median != 100 || m.Min != 90 || m.Max != 110 || m.Best() != 110 {
		t.Fatalf("metric %+v", m)
	}
	if tm, _ := r.Metric("t"); tm.Best() != 1 {
		t.Fatalf("best time %v, want 1", tm.Best())
	}
	q, err := r.NewRatio("x Go/C", "x/go", "x/c", 0.95)
	if err != nil {
		t.Fatal(err)
	}
	if q.Value != 1 || math.Abs(q.Best-110.0/120) > 1e-12 {
		t.Fatalf("ratio %+v", q)
	}
	for _, bad := range [][2]string{{"x/go", "missing"}, {"x/go", "t"}} {
		if _, err := r.NewRatio("bad", bad[0], bad[1], 0); err == nil {
			t.Errorf("ratio %v: no error", bad)
		}
	}
	r.Ratios = append(r.Ratios, q)
	r.Notes = append(r.Notes, "same work checked")
	dir := t.TempDir()
	path, err := r.Finish(dir)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ReadResult(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Name != "unit" || len(back.Metrics) != 3 || back.Ratios[0].Goal != 0.95 || back.Env.Cores <= 0 {
		t.Fatalf("round trip: %+v", back)
	}
	rs, err := ReadResults(dir)
	if err != nil || len(rs) != 1 {
		t.Fatalf("ReadResults: %v, %d results", err, len(rs))
	}
	md := Markdown(rs)
	for _, want := range []string{"## unit test (`unit`)", "| x/go | tokens/s | 100 | 90 | 110 | 90, 110, 100 | 0.1, 0.2, 0.3 |", "| x Go/C (x/go / x/c) | 1.000 | 0.917 | 0.95 | yes |", "- same work checked", "`go test ./bench`"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestReadResultErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, content, want string
	}{
		{"not json", "{", "unexpected end"},
		{"no name", `{"metrics":[]}`, `no "name" field`},
		{"metric without unit", `{"name":"a","metrics":[{"name":"m"}]}`, "metric 0 has no name or unit"},
	}
	for _, tc := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
		if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadResult(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v, want one naming %s and containing %q", tc.name, err, p, tc.want)
		}
	}
	if _, err := ReadResults(filepath.Join(dir, "missing")); err == nil {
		t.Error("ReadResults of a missing directory: no error")
	}
}
