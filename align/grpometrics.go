package align

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot/plotter"
)

// GRPOMetrics is one line of an online run's metrics.jsonl: an optimizer step (names as TRL's
// GRPOTrainer logs them), or with Split "eval" the accuracy of a round's adapter.
type GRPOMetrics struct {
	Step              int     `json:"step"`
	Round             int     `json:"round"`
	Split             string  `json:"split,omitempty"`
	Loss              float64 `json:"loss"`
	Reward            float64 `json:"reward"`               // mean reward of the step's completions
	RewardStd         float64 `json:"reward_std"`           // mean over the step's groups of the reward's std
	FracRewardZeroStd float64 `json:"frac_reward_zero_std"` // share of groups whose rewards are all equal (no signal)
	MeanLength        float64 `json:"completions/mean_length"`
	MinLength         float64 `json:"completions/min_length"`
	MaxLength         float64 `json:"completions/max_length"`
	ClippedRatio      float64 `json:"completions/clipped_ratio"` // share cut at the generation limit
	KL                float64 `json:"kl"`                        // mean per-token k3 estimate of KL(policy || reference)
	ClipLowMean       float64 `json:"clip_ratio/low_mean"`
	ClipHighMean      float64 `json:"clip_ratio/high_mean"`
	ClipRegionMean    float64 `json:"clip_ratio/region_mean"`
	NumTokens         int     `json:"num_tokens"` // completion tokens trained on so far
	GradNorm          float64 `json:"grad_norm"`
	LearningRate      float64 `json:"learning_rate"`
	Accuracy          float64 `json:"eval/accuracy,omitempty"` // Split "eval" only
}

// IsGRPOMetricsFile reports whether the first complete line of a metrics file is an online
// (GRPO) run's, i.e. has a "reward" field.
func IsGRPOMetricsFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	if !sc.Scan() {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(sc.Bytes(), &m) != nil {
		return false
	}
	_, ok := m["reward"]
	return ok
}

// ReadGRPOMetrics reads an online run's metrics.jsonl; a final line cut short by a kill is ignored,
// any other malformed line is an error naming file and line.
func ReadGRPOMetrics(path string) ([]GRPOMetrics, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []GRPOMetrics
	lines := bytes.SplitAfter(raw, []byte("\n"))
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if !bytes.HasSuffix(line, []byte("\n")) {
			break // cut short
		}
		var m GRPOMetrics
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, fmt.Errorf("%s:%d: expected a JSON object of GRPO metrics: %w", path, i+1, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// TruncateStepLines rewrites a JSONL file atomically keeping only lines whose "step" is <= step
// (and complete): what a resumed run does before appending again. A missing file is no error.
func TruncateStepLines(path string, step int) error { return truncateJSONLSteps(path, step) }

// PlotGRPO draws reward, reward_std, kl and completions/mean_length of online runs against the
// step (one line per run; eval accuracies, when logged, in a fifth panel) and writes the PNG.
func PlotGRPO(dirs, names []string, out string, opts PlotOptions) error {
	if len(dirs) == 0 || len(dirs) != len(names) {
		return errors.New("plot: no runs")
	}
	metrics := []struct {
		title string
		value func(GRPOMetrics) float64
	}{
		{"reward", func(m GRPOMetrics) float64 { return m.Reward }},
		{"reward_std", func(m GRPOMetrics) float64 { return m.RewardStd }},
		{"kl", func(m GRPOMetrics) float64 { return m.KL }},
		{"completions/mean_length", func(m GRPOMetrics) float64 { return m.MeanLength }},
	}
	panels := make([]plotPanel, len(metrics))
	for i, m := range metrics {
		panels[i] = plotPanel{title: m.title, ylabel: m.title}
	}
	acc := plotPanel{title: "eval/accuracy", ylabel: "accuracy"}
	for ri, dir := range dirs {
		all, err := ReadGRPOMetrics(filepath.Join(dir, MetricsFileName))
		if err != nil {
			return fmt.Errorf("run %s: %w", dir, err)
		}
		var accPts plotter.XYs
		series := make([]plotter.XYs, len(metrics))
		for _, s := range all {
			if s.Split == "eval" {
				accPts = append(accPts, plotter.XY{X: float64(s.Step), Y: s.Accuracy})
				continue
			}
			for i, m := range metrics {
				if v := m.value(s); !math.IsNaN(v) {
					series[i] = append(series[i], plotter.XY{X: float64(s.Step), Y: v})
				}
			}
		}
		if len(series[0]) == 0 {
			return fmt.Errorf("run %s: %s has no training steps", dir, MetricsFileName)
		}
		for i := range panels {
			panels[i].series = append(panels[i].series, plotSeries{name: names[ri], pts: series[i]})
		}
		if len(accPts) > 0 {
			acc.series = append(acc.series, plotSeries{name: names[ri], pts: accPts})
		}
	}
	if len(acc.series) > 0 {
		panels = append(panels, acc)
	}
	return drawPanels(panels, out, opts)
}
