package align

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// MetricsFileName is the name of the per-step metrics file inside a run directory.
const MetricsFileName = "metrics.jsonl"

// StepMetrics is one line of metrics.jsonl. Names follow TRL's DPOTrainer logs, plus the DCR rate
// and BPO's balanced-margin statistics. Rewards are the loss's implicit rewards (Loss.Rewards).
type StepMetrics struct {
	Step              int     `json:"step"`
	Epoch             float64 `json:"epoch"`
	Split             string  `json:"split,omitempty"` // "" or "train" for training steps, "eval" for evaluations
	Pairs             int     `json:"pairs"`           // pairs the step averaged over
	Loss              float64 `json:"loss"`
	RewardsChosen     float64 `json:"rewards/chosen"`
	RewardsRejected   float64 `json:"rewards/rejected"`
	RewardsMargins    float64 `json:"rewards/margins"`
	RewardsAccuracies float64 `json:"rewards/accuracies"`
	LogpsChosen       float64 `json:"logps/chosen"`
	LogpsRejected     float64 `json:"logps/rejected"`
	GradNorm          float64 `json:"grad_norm"`
	LearningRate      float64 `json:"learning_rate"`       // the rate this step's update used
	DCRRate           float64 `json:"dcr_rate"`            // share of pairs with chosen reward < -DCR threshold
	BalancedMargin    float64 `json:"bpo/balanced_margin"` // mean of min(r_w, -alpha·r_l)
	ChosenActive      float64 `json:"bpo/chosen_active"`   // share of pairs whose chosen branch is the min (tie = 1/2)
	// Components holds each component's own (unweighted) batch loss of a composed loss, by name;
	// Loss is their weighted sum.
	Components map[string]float64 `json:"loss_components,omitempty"`
	// Event notes something that happened at this step (a reference refresh, a DCR alarm).
	Event string `json:"event,omitempty"`
}

// DefaultDCRThreshold is how far below zero a chosen reward must be to count as degraded: the
// policy (training graph) and the reference (llama.cpp) differ by float rounding, so an untrained
// adapter gives chosen rewards of about ±1e-5, not exactly 0.
const DefaultDCRThreshold = 1e-3

// MetricsAccumulator gathers the per-pair statistics of one optimizer step over its micro-batches.
// The balanced margin uses BPO's alpha for BPO and alpha = 1 for the other losses.
type MetricsAccumulator struct {
	loss                     Loss
	alpha                    float64
	dcrThreshold             float64
	components               []WeightedLoss
	compSums                 []float64
	n                        int
	lossSum                  float64
	rc, rr, acc, lc, lr      float64
	dcr, margin, chosenShare float64
}

// NewMetricsAccumulator returns an empty accumulator for a loss.
func NewMetricsAccumulator(loss Loss) *MetricsAccumulator {
	alpha := 1.0
	if g, ok := loss.(interface{ GapAdaptor() float64 }); ok {
		alpha = g.GapAdaptor()
	}
	m := &MetricsAccumulator{loss: loss, alpha: alpha, dcrThreshold: DefaultDCRThreshold}
	if c, ok := loss.(*ComposedLoss); ok {
		m.components = c.Components()
		m.compSums = make([]float64, len(m.components))
	}
	return m
}

// SetDCRThreshold sets how far below zero a chosen reward must be to count as degraded (>= 0).
func (m *MetricsAccumulator) SetDCRThreshold(t float64) { m.dcrThreshold = t }

// Add records a micro-batch and its mean loss (as returned by Loss.Compute).
func (m *MetricsAccumulator) Add(batch []PairLogps, batchLoss float64) {
	for _, p := range batch {
		rc, rr := m.loss.Rewards(p)
		m.rc += rc
		m.rr += rr
		if rc > rr {
			m.acc++
		}
		if rc < -m.dcrThreshold {
			m.dcr++
		}
		bm, share := balancedMargin(rc, rr, m.alpha)
		m.margin += bm
		m.chosenShare += share
		m.lc += p.PolicyChosen
		m.lr += p.PolicyRejected
	}
	m.lossSum += batchLoss * float64(len(batch))
	prepared := batch
	if c, ok := m.loss.(*ComposedLoss); ok {
		if p, err := c.prepare(batch); err == nil {
			prepared = p // the components see length-desensitized log-probs (LD-DPO)
		}
	}
	for i, c := range m.components {
		// The composed loss computed every component on this batch already, so this cannot fail.
		if v, _, err := c.Loss.Compute(prepared); err == nil {
			m.compSums[i] += v * float64(len(batch))
		}
	}
	m.n += len(batch)
}

// Pairs returns the number of pairs recorded since the last Finish.
func (m *MetricsAccumulator) Pairs() int { return m.n }

// Finish returns the step's metrics (means over all recorded pairs) and resets the accumulator.
func (m *MetricsAccumulator) Finish(step int, epoch, gradNorm, learningRate float64) (StepMetrics, error) {
	if m.n == 0 {
		return StepMetrics{}, fmt.Errorf("metrics for step %d: no pairs recorded", step)
	}
	n := float64(m.n)
	s := StepMetrics{
		Step: step, Epoch: epoch, Pairs: m.n,
		Loss:              m.lossSum / n,
		RewardsChosen:     m.rc / n,
		RewardsRejected:   m.rr / n,
		RewardsMargins:    (m.rc - m.rr) / n,
		RewardsAccuracies: m.acc / n,
		LogpsChosen:       m.lc / n,
		LogpsRejected:     m.lr / n,
		GradNorm:          gradNorm,
		LearningRate:      learningRate,
		DCRRate:           m.dcr / n,
		BalancedMargin:    m.margin / n,
		ChosenActive:      m.chosenShare / n,
	}
	if len(m.components) > 0 {
		s.Components = map[string]float64{}
		for i, c := range m.components {
			s.Components[c.Loss.Name()] = m.compSums[i] / n
		}
	}
	*m = MetricsAccumulator{
		loss:         m.loss,
		alpha:        m.alpha,
		dcrThreshold: m.dcrThreshold,
		components:   m.components,
		compSums:     make([]float64, len(m.components)),
	}
	return s, s.check()
}

// check rejects values JSON cannot hold.
func (s StepMetrics) check() error {
	vals := []struct {
		name string
		v    float64
	}{
		{
			"epoch",
			s.Epoch,
		}, {"loss", s.Loss}, {"rewards/chosen", s.RewardsChosen}, {"rewards/rejected", s.RewardsRejected},
		{
			"rewards/margins",
			s.RewardsMargins,
		}, {"rewards/accuracies", s.RewardsAccuracies}, {"logps/chosen", s.LogpsChosen},
		{"logps/rejected", s.LogpsRejected}, {"grad_norm", s.GradNorm}, {"learning_rate", s.LearningRate},
		{"dcr_rate", s.DCRRate}, {"bpo/balanced_margin", s.BalancedMargin}, {"bpo/chosen_active", s.ChosenActive},
	}
	for name, v := range s.Components {
		vals = append(vals, struct {
			name string
			v    float64
		}{"loss_components." + name, v})
	}
	for _, v := range vals {
		if math.IsNaN(v.v) || math.IsInf(v.v, 0) {
			return fmt.Errorf("metrics for step %d: %s is %v", s.Step, v.name, v.v)
		}
	}
	return nil
}

// MetricsWriter appends one JSON line per step to a metrics file and syncs it, so that a crash
// loses at most the line being written.
type MetricsWriter struct {
	f    *os.File
	path string
}

// OpenMetricsWriter opens (creating if needed) a metrics file for appending. It refuses a file
// that ends in a partial line (an interrupted write); TruncateMetricsAfter repairs such a file.
func OpenMetricsWriter(path string) (*MetricsWriter, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open metrics: %w", err)
	}
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err != nil {
			f.Close()
			return nil, fmt.Errorf("open metrics %s: %w", path, err)
		}
		if last[0] != '\n' {
			f.Close()
			return nil, fmt.Errorf(
				"open metrics %s: file ends with a partial line (interrupted write); truncate it to the resumed step first",
				path,
			)
		}
	}
	return &MetricsWriter{f: f, path: path}, nil
}

// Write appends one step and fsyncs the file.
func (w *MetricsWriter) Write(s StepMetrics) error {
	if err := s.check(); err != nil {
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	if _, err := w.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", w.path, err)
	}
	return nil
}

// Close closes the file.
func (w *MetricsWriter) Close() error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", w.path, err)
	}
	return nil
}

// ReadMetrics reads every line of a metrics file; a malformed line is an error naming file:line.
func ReadMetrics(path string) ([]StepMetrics, error) {
	steps, partial, err := readMetricsLines(path)
	if err != nil {
		return nil, err
	}
	if partial != nil {
		return nil, partial
	}
	return steps, nil
}

// readMetricsLines parses the file; a malformed final line without a newline (an interrupted
// write) is returned separately as partial.
func readMetricsLines(path string) (steps []StepMetrics, partial error, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read metrics: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	for lineNo := 1; ; lineNo++ {
		line, rerr := br.ReadBytes('\n')
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return nil, nil, fmt.Errorf("read metrics %s:%d: %w", path, lineNo, rerr)
		}
		if t := bytes.TrimSpace(line); len(t) > 0 {
			s, msg := parseMetricsLine(t)
			if msg != "" {
				le := &LineError{File: path, Line: lineNo, Msg: msg}
				if errors.Is(rerr, io.EOF) {
					return steps, le, nil
				}
				return nil, nil, le
			}
			steps = append(steps, s)
		}
		if errors.Is(rerr, io.EOF) {
			return steps, nil, nil
		}
	}
}

// TruncateMetricsAfter rewrites a metrics file atomically, keeping only the lines with step <= step
// and dropping a partial final line: what a resumed run does before appending again. A missing
// file is not an error.
func TruncateMetricsAfter(path string, step int) error {
	steps, _, err := readMetricsLines(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return atomicfile.WriteFunc(path, func(w io.Writer) error {
		for _, s := range steps {
			if s.Step > step {
				continue
			}
			b, err := json.Marshal(s)
			if err != nil {
				return err
			}
			if _, err := w.Write(append(b, '\n')); err != nil {
				return err
			}
		}
		return nil
	})
}

// parseMetricsLine decodes one line; unknown fields are allowed (later versions may add some) but
// "step" is required.
func parseMetricsLine(line []byte) (StepMetrics, string) {
	var s StepMetrics
	if err := json.Unmarshal(line, &s); err != nil {
		return s, "expected a JSON object of step metrics: " + err.Error()
	}
	var probe struct {
		Step *int `json:"step"`
	}
	if err := json.Unmarshal(line, &probe); err != nil || probe.Step == nil {
		return s, `expected a JSON object of step metrics with an integer "step"`
	}
	return s, ""
}
