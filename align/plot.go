package align

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// Run is the training metrics of one run directory.
type Run struct {
	Name  string        // label in plots
	Dir   string        // run directory
	Steps []StepMetrics // training steps (split "" or "train"), in file order
}

// LoadRun reads RUN_DIR/metrics.jsonl and keeps the training steps.
func LoadRun(dir string) (Run, error) {
	all, err := ReadMetrics(filepath.Join(dir, MetricsFileName))
	if err != nil {
		return Run{}, fmt.Errorf("run %s: %w", dir, err)
	}
	r := Run{Name: filepath.Base(filepath.Clean(dir)), Dir: dir}
	for _, s := range all {
		if s.Split == "" || s.Split == "train" {
			r.Steps = append(r.Steps, s)
		}
	}
	if len(r.Steps) == 0 {
		return Run{}, fmt.Errorf("run %s: %s has no training steps", dir, MetricsFileName)
	}
	return r, nil
}

// PlotOptions sets the image size and optional smoothing of the curves.
type PlotOptions struct {
	WidthPx, HeightPx int     // image size; 0 means 1500 x 480
	Smooth            float64 // exponential moving average weight in [0, 1): 0 plots raw values
}

// rewardPanels are the metrics PlotRewards draws, one panel each.
func rewardPanels() []struct {
	title string
	value func(StepMetrics) float64
} {
	return []struct {
		title string
		value func(StepMetrics) float64
	}{
		{"rewards/chosen", func(s StepMetrics) float64 { return s.RewardsChosen }},
		{"rewards/rejected", func(s StepMetrics) float64 { return s.RewardsRejected }},
		{"rewards/margins", func(s StepMetrics) float64 { return s.RewardsMargins }},
	}
}

// runColor returns a distinct, print-friendly color per run.
func runColor(i int) color.Color {
	palette := []color.RGBA{
		{31, 119, 180, 255}, {214, 39, 40, 255}, {44, 160, 44, 255}, {148, 103, 189, 255},
		{255, 127, 14, 255}, {140, 86, 75, 255}, {23, 190, 207, 255}, {127, 127, 127, 255},
	}
	return palette[i%len(palette)]
}

// PlotRewards draws rewards/chosen, rewards/rejected and rewards/margins against the step, one
// line per run, side by side, with a dashed zero line (a chosen reward below it is the DCR of the
// BPO paper), and writes the PNG atomically to out.
func PlotRewards(runs []Run, out string, opts PlotOptions) error {
	if len(runs) == 0 {
		return errors.New("plot: no runs")
	}
	var panels []plotPanel
	for _, rp := range rewardPanels() {
		pp := plotPanel{title: rp.title, ylabel: "reward", zeroLine: true}
		for _, run := range runs {
			pts := make(plotter.XYs, len(run.Steps))
			for i, s := range run.Steps {
				pts[i] = plotter.XY{X: float64(s.Step), Y: rp.value(s)}
			}
			pp.series = append(pp.series, plotSeries{name: run.Name, pts: pts})
		}
		panels = append(panels, pp)
	}
	return drawPanels(panels, out, opts)
}

// plotSeries is one run's curve in a panel.
type plotSeries struct {
	name string
	pts  plotter.XYs
}

// plotPanel is one metric against the step, one curve per run.
type plotPanel struct {
	title, ylabel string
	zeroLine      bool
	series        []plotSeries
}

// drawPanels draws the panels side by side and writes the PNG atomically to out.
func drawPanels(panels []plotPanel, out string, opts PlotOptions) error {
	if !strings.EqualFold(filepath.Ext(out), ".png") {
		return fmt.Errorf("plot: output %q must end in .png", out)
	}
	if !isFinite(opts.Smooth) || opts.Smooth < 0 || opts.Smooth >= 1 {
		return fmt.Errorf("plot: smooth must be in [0, 1), got %v", opts.Smooth)
	}
	w, h := opts.WidthPx, opts.HeightPx
	if w == 0 && h == 0 {
		w, h = 1500, 480
	}
	if w < 300 || h < 200 || w > 10000 || h > 10000 {
		return fmt.Errorf("plot: image size %dx%d out of range (300..10000 x 200..10000)", w, h)
	}
	plots := [][]*plot.Plot{make([]*plot.Plot, len(panels))}
	for pi, panel := range panels {
		p := plot.New()
		p.Title.Text = panel.title
		p.Title.TextStyle.Font.Size = vg.Points(13)
		p.X.Label.Text = "step"
		p.X.Tick.Marker = plot.TickerFunc(stepTicks)
		p.Y.Label.Text = panel.ylabel
		p.Add(plotter.NewGrid())
		xmin, xmax := math.Inf(1), math.Inf(-1)
		for ri, sr := range panel.series {
			pts := make(plotter.XYs, len(sr.pts))
			ema := 0.0
			for i, pt := range sr.pts {
				v := pt.Y
				if i == 0 || opts.Smooth == 0 {
					ema = v
				} else {
					ema = opts.Smooth*ema + (1-opts.Smooth)*v
				}
				pts[i] = plotter.XY{X: pt.X, Y: ema}
				xmin, xmax = math.Min(xmin, pts[i].X), math.Max(xmax, pts[i].X)
			}
			line, err := plotter.NewLine(pts)
			if err != nil {
				return fmt.Errorf("plot %s of run %s: %w", panel.title, sr.name, err)
			}
			line.Color = runColor(ri)
			line.Width = vg.Points(2)
			p.Add(line)
			p.Legend.Add(sr.name, line)
		}
		if panel.zeroLine && xmax > xmin {
			zero, err := plotter.NewLine(plotter.XYs{{X: xmin, Y: 0}, {X: xmax, Y: 0}})
			if err != nil {
				return fmt.Errorf("plot zero line: %w", err)
			}
			zero.Color = color.Gray{Y: 90}
			zero.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(zero)
		}
		// headroom above the data for the legend in the top-left corner
		if span := p.Y.Max - p.Y.Min; span > 0 {
			p.Y.Max += span * (0.06 + 0.07*float64(len(panel.series)))
		}
		p.Legend.Top = true
		p.Legend.Left = true
		p.Legend.TextStyle.Font.Size = vg.Points(11)
		plots[0][pi] = p
	}
	const dpi = 96
	img := vgimg.NewWith(
		vgimg.UseWH(vg.Length(w)*vg.Inch/dpi, vg.Length(h)*vg.Inch/dpi),
		vgimg.UseDPI(dpi),
		vgimg.UseBackgroundColor(color.White),
	)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: vg.Millimeter * 4, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 3}
	canvases := plot.Align(plots, tiles, dc)
	for i, p := range plots[0] {
		p.Draw(canvases[0][i])
	}
	return atomicfile.WriteFunc(out, func(wr io.Writer) error {
		_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(wr)
		return err
	})
}

// RunLabels returns short unique labels for run directories: the base names, or the cleaned paths
// when base names collide.
func RunLabels(dirs []string) []string {
	labels := make([]string, len(dirs))
	count := make(map[string]int)
	for i, d := range dirs {
		labels[i] = filepath.Base(filepath.Clean(d))
		count[labels[i]]++
	}
	for i, d := range dirs {
		if count[labels[i]] > 1 {
			labels[i] = filepath.Clean(d)
		}
	}
	return labels
}

// stepTicks labels the step axis with round integers (1, 2 or 5 times a power of ten apart).
func stepTicks(lo, hi float64) []plot.Tick {
	span := hi - lo
	if !(span > 0) || math.IsInf(span, 0) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(math.Round(lo), 'f', 0, 64)}}
	}
	raw := math.Max(1, span/5)
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	step := pow
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			step = m * pow
			break
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', 0, 64)})
	}
	return ticks
}
