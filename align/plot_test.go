package align

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlotRewards trains the toy model with DPO and BPO, plots both runs and checks the PNG:
// its size, and that both runs' colors are drawn in quantity. Set BPO_KEEP_PLOT=/path.png to keep
// a copy for viewing, BPO_KEEP_RUNS=/dir to keep the two run directories.
func TestPlotRewards(t *testing.T) {
	root := t.TempDir()
	if keep := os.Getenv("BPO_KEEP_RUNS"); keep != "" {
		root = keep
	}
	var runs []Run
	for _, name := range []string{"dpo", "bpo"} {
		dir := filepath.Join(root, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p, _ := DefaultLossParams(name)
		trainToy(t, name, p, dir, 150)
		// an eval line must not be plotted as a training step
		mw, err := OpenMetricsWriter(filepath.Join(dir, MetricsFileName))
		if err != nil {
			t.Fatal(err)
		}
		if err := mw.Write(StepMetrics{Step: 150, Split: "eval", RewardsChosen: 1e6}); err != nil {
			t.Fatal(err)
		}
		mw.Close()
		r, err := LoadRun(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Steps) != 150 || r.Name != name {
			t.Fatalf("run %s: %d steps", r.Name, len(r.Steps))
		}
		runs = append(runs, r)
	}
	out := filepath.Join(root, "rewards.png")
	if err := PlotRewards(runs, out, PlotOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1500 || b.Dy() != 480 {
		t.Fatalf("image %v, want 1500x480", b)
	}
	for i := range runs {
		if n := countColor(img, runColor(i)); n < 500 {
			t.Errorf("run %d color drawn on %d pixels, want >= 500", i, n)
		}
	}
	if keep := os.Getenv("BPO_KEEP_PLOT"); keep != "" {
		b, _ := os.ReadFile(out)
		if err := os.WriteFile(keep, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func countColor(img image.Image, c color.Color) int {
	r0, g0, b0, _ := c.RGBA()
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bb, _ := img.At(x, y).RGBA()
			if absDiff(r, r0) < 0x1000 && absDiff(g, g0) < 0x1000 && absDiff(bb, b0) < 0x1000 {
				n++
			}
		}
	}
	return n
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

func TestPlotRewardsErrors(t *testing.T) {
	dir := t.TempDir()
	run := Run{Name: "x", Steps: []StepMetrics{{Step: 1}, {Step: 2}}}
	tests := []struct {
		name    string
		runs    []Run
		out     string
		opts    PlotOptions
		wantErr string
	}{
		{"no runs", nil, filepath.Join(dir, "a.png"), PlotOptions{}, "no runs"},
		{"ext", []Run{run}, filepath.Join(dir, "a.svg"), PlotOptions{}, "must end in .png"},
		{"smooth", []Run{run}, filepath.Join(dir, "a.png"), PlotOptions{Smooth: 1}, "smooth must be in [0, 1)"},
		{"size", []Run{run}, filepath.Join(dir, "a.png"), PlotOptions{WidthPx: 10, HeightPx: 10}, "out of range"},
		{"dir", []Run{run}, filepath.Join(dir, "missing", "a.png"), PlotOptions{}, "create temporary file"},
	}
	for _, tc := range tests {
		if err := PlotRewards(tc.runs, tc.out, tc.opts); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
		}
	}
	if _, err := LoadRun(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("LoadRun of a missing dir: %v", err)
	}
}

func TestRunLabels(t *testing.T) {
	tests := []struct {
		dirs []string
		want string
	}{
		{[]string{"runs/dpo", "runs/bpo/"}, "dpo,bpo"},
		{[]string{"a/run", "b/run", "c"}, "a/run,b/run,c"},
	}
	for _, tc := range tests {
		if got := strings.Join(RunLabels(tc.dirs), ","); got != tc.want {
			t.Errorf("RunLabels(%v) = %s, want %s", tc.dirs, got, tc.want)
		}
	}
}

func TestStepTicks(t *testing.T) {
	tests := []struct {
		lo, hi float64
		want   string
	}{
		{1, 18, "5,10,15"},
		{1, 150, "50,100,150"},
		{1, 4, "1,2,3,4"},
		{0, 2400, "0,500,1000,1500,2000"},
		{3, 3, "3"},
	}
	for _, tc := range tests {
		var labels []string
		for _, tk := range stepTicks(tc.lo, tc.hi) {
			labels = append(labels, tk.Label)
		}
		if got := strings.Join(labels, ","); got != tc.want {
			t.Errorf("stepTicks(%v, %v) = %s, want %s", tc.lo, tc.hi, got, tc.want)
		}
	}
}
