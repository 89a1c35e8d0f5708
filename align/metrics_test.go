package align

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestMetricsAccumulatorHandValues: BPO (beta 0.1, alpha 0.3) on pairs P1, P2 (one micro-batch)
// and TIE (another).
//
//	rewards: P1 (0.2, -0.3), P2 (-0.1, -0.8), TIE (0.1, -0.4)
//	chosen mean 0.2/3, rejected mean -1.5/3, margins (0.5+0.7+0.5)/3, accuracies 1, dcr 1/3
//	balanced margin: min(0.2, 0.09) = 0.09, min(-0.1, 0.24) = -0.1, min(0.1, 0.12) = 0.1 → 0.09/3
//	chosen active: 0 + 1 + 1 → 2/3
func TestMetricsAccumulatorHandValues(t *testing.T) {
	loss, err := NewLoss("bpo", LossParams{Beta: 0.1, Alpha: 0.3, F: "logistic"})
	if err != nil {
		t.Fatal(err)
	}
	ma := NewMetricsAccumulator(loss)
	ma.Add([]PairLogps{pairP1, pairP2}, 0.6)
	ma.Add([]PairLogps{pairTIE}, 0.9)
	if ma.Pairs() != 3 {
		t.Fatalf("Pairs() = %d", ma.Pairs())
	}
	got, err := ma.Finish(12, 1.5, 0.7, 5e-6)
	if err != nil {
		t.Fatal(err)
	}
	want := StepMetrics{
		Step: 12, Epoch: 1.5, Pairs: 3, Loss: 0.7, RewardsChosen: 0.2 / 3, RewardsRejected: -0.5,
		RewardsMargins: 1.7 / 3, RewardsAccuracies: 1, LogpsChosen: -34.0 / 3, LogpsRejected: -17,
		GradNorm: 0.7, LearningRate: 5e-6, DCRRate: 1.0 / 3, BalancedMargin: 0.09 / 3, ChosenActive: 2.0 / 3,
	}
	checks := []struct {
		name      string
		got, want float64
	}{
		{"loss", got.Loss, want.Loss}, {"rewards/chosen", got.RewardsChosen, want.RewardsChosen},
		{"rewards/rejected", got.RewardsRejected, want.RewardsRejected}, {"rewards/margins", got.RewardsMargins, want.RewardsMargins},
		{"rewards/accuracies", got.RewardsAccuracies, want.RewardsAccuracies}, {"logps/chosen", got.LogpsChosen, want.LogpsChosen},
		{"logps/rejected", got.LogpsRejected, want.LogpsRejected}, {"dcr_rate", got.DCRRate, want.DCRRate},
		{"bpo/balanced_margin", got.BalancedMargin, want.BalancedMargin}, {"bpo/chosen_active", got.ChosenActive, want.ChosenActive},
		{"grad_norm", got.GradNorm, want.GradNorm}, {"learning_rate", got.LearningRate, want.LearningRate}, {"epoch", got.Epoch, want.Epoch},
	}
	for _, c := range checks {
		if !closeTo(c.got, c.want, 1e-12) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if got.Step != 12 || got.Pairs != 3 {
		t.Errorf("step %d pairs %d", got.Step, got.Pairs)
	}
	if _, err := ma.Finish(13, 0, 0, 0); err == nil {
		t.Error("Finish after reset succeeded with no pairs")
	}
	// DPO uses alpha 1 for the balanced margin: P1 min(0.2, 0.3) = 0.2 (chosen active)
	dpo, _ := NewLoss("dpo", LossParams{Beta: 0.1})
	md := NewMetricsAccumulator(dpo)
	md.Add([]PairLogps{pairP1}, 0.5)
	s, _ := md.Finish(1, 0, 0, 0)
	if !closeTo(s.BalancedMargin, 0.2, 1e-12) || s.ChosenActive != 1 {
		t.Errorf("DPO balanced margin %v chosen active %v", s.BalancedMargin, s.ChosenActive)
	}
}

func TestMetricsWriterReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), MetricsFileName)
	w, err := OpenMetricsWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	for s := 1; s <= 5; s++ {
		if err := w.Write(StepMetrics{Step: s, Loss: 1 / float64(s), LearningRate: 1e-5}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Write(StepMetrics{Step: 6, GradNorm: nan()}); err == nil || !strings.Contains(err.Error(), "grad_norm is NaN") {
		t.Fatalf("NaN accepted: %v", err)
	}
	w.Close()
	raw, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], `"rewards/chosen":0`) || !strings.Contains(lines[0], `"bpo/chosen_active":0`) {
		t.Fatalf("file content:\n%s", raw)
	}
	got, err := ReadMetrics(path)
	if err != nil || len(got) != 5 || got[4].Loss != 0.2 {
		t.Fatalf("ReadMetrics = %v, %v", got, err)
	}
	// appending again continues the file
	w, err = OpenMetricsWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(StepMetrics{Step: 6})
	w.Close()
	// a crash mid-write leaves a partial line: reading reports it, appending refuses, truncation repairs
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"step":7,"loss":0.`)
	f.Close()
	if _, err := ReadMetrics(path); err == nil || !strings.Contains(err.Error(), MetricsFileName+":7:") {
		t.Fatalf("partial line not reported with its line: %v", err)
	}
	if _, err := OpenMetricsWriter(path); err == nil || !strings.Contains(err.Error(), "partial line") {
		t.Fatalf("append onto a partial line allowed: %v", err)
	}
	if err := TruncateMetricsAfter(path, 4); err != nil {
		t.Fatal(err)
	}
	got, err = ReadMetrics(path)
	if err != nil || len(got) != 4 || got[3].Step != 4 {
		t.Fatalf("after truncation: %v, %v", got, err)
	}
	if err := TruncateMetricsAfter(filepath.Join(t.TempDir(), "none.jsonl"), 3); err != nil {
		t.Fatalf("missing file: %v", err)
	}
}

func TestReadMetricsMalformed(t *testing.T) {
	tests := []struct {
		name, content, wantErr string
	}{
		{"not json", "{\"step\":1}\nhello\n{\"step\":3}\n", ":2: expected a JSON object of step metrics"},
		{"no step", "{\"loss\":1}\n", `:1: expected a JSON object of step metrics with an integer "step"`},
		{"wrong type", "{\"step\":\"one\"}\n", ":1: expected a JSON object of step metrics"},
	}
	for _, tc := range tests {
		path := filepath.Join(t.TempDir(), "m.jsonl")
		os.WriteFile(path, []byte(tc.content), 0o644)
		if _, err := ReadMetrics(path); err == nil || !strings.Contains(err.Error(), path+tc.wantErr) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
		}
	}
	// extra fields written by newer versions are accepted
	path := filepath.Join(t.TempDir(), "m.jsonl")
	os.WriteFile(path, []byte(`{"step":1,"tokens_per_s":12.5}`+"\n"), 0o644)
	if got, err := ReadMetrics(path); err != nil || len(got) != 1 {
		t.Errorf("extra field: %v %v", got, err)
	}
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}

// FuzzParseMetricsLine: any line parses or is rejected with a message; never a panic, and an
// accepted line re-encodes to a line that parses to the same step.
func FuzzParseMetricsLine(f *testing.F) {
	f.Add([]byte(`{"step":3,"loss":0.5,"rewards/chosen":0.1}`))
	f.Add([]byte(`{"step":"x"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, line []byte) {
		s, msg := parseMetricsLine(line)
		if msg != "" {
			return
		}
		if s.check() != nil {
			return // JSON cannot hold NaN/Inf, so this cannot happen; keep the check honest
		}
		path := filepath.Join(t.TempDir(), "m.jsonl")
		w, err := OpenMetricsWriter(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(s); err != nil {
			t.Fatal(err)
		}
		w.Close()
		back, err := ReadMetrics(path)
		if err != nil || len(back) != 1 || !reflect.DeepEqual(back[0], s) {
			t.Fatalf("round trip: %+v %v, want %+v", back, err, s)
		}
	})
}
