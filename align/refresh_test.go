package align

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRefRefreshHard: after a hard refresh the reference is the policy, so the first step after it
// logs rewards of exactly 0 (the toy policy's forward is deterministic) and the event.
func TestRefRefreshHard(t *testing.T) {
	dir := t.TempDir()
	tr, _ := newToyTrainer(t, dir, "dpo", func(c *TrainConfig) { c.RefRefresh = RefRefresh{Every: 5, Mix: 1}; c.MaxSteps = 11 })
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ms, err := ReadMetrics(filepath.Join(dir, MetricsFileName))
	if err != nil {
		t.Fatal(err)
	}
	refreshed := 0
	for _, m := range ms {
		if m.Split == "eval" {
			continue
		}
		isRefresh := m.Step == 6 || m.Step == 11
		if (m.Event == "ref_refresh") != isRefresh {
			t.Errorf("step %d: event %q", m.Step, m.Event)
		}
		if isRefresh {
			refreshed++
			if m.RewardsChosen != 0 || m.RewardsRejected != 0 || m.DCRRate != 0 {
				t.Errorf("step %d after a hard refresh: rewards %v %v dcr %v, want 0", m.Step, m.RewardsChosen, m.RewardsRejected, m.DCRRate)
			}
		} else if m.Step > 3 && m.RewardsMargins == 0 {
			t.Errorf("step %d: margin exactly 0 away from a refresh", m.Step)
		}
	}
	if refreshed != 2 {
		t.Errorf("%d refreshes logged, want 2", refreshed)
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoint-000011", refreshTrainFile)); err != nil {
		t.Errorf("checkpoint lacks the refreshed reference: %v", err)
	}
}

// TestRefRefreshSoft: a soft refresh mixes the parameters, ref = mix·θ + (1-mix)·ref with the
// run's initial parameters as the first reference, and the reference log-probs are the forward of
// the mixed parameters.
func TestRefRefreshSoft(t *testing.T) {
	var theta5 [][]float32
	var p *toyPolicy
	tr, p := newToyTrainer(t, t.TempDir(), "bpo", func(c *TrainConfig) {
		c.RefRefresh = RefRefresh{Every: 5, Mix: 0.25}
		c.MaxSteps = 6
		c.EvalEvery = 0
		c.OnStep = func(s StepMetrics) {
			if s.Step == 5 && s.Split == "" {
				for _, v := range p.Params() {
					theta5 = append(theta5, append([]float32(nil), v...))
				}
			}
		}
	})
	var theta0 [][]float32
	for _, v := range p.Params() {
		theta0 = append(theta0, append([]float32(nil), v...))
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range theta0 {
		for j := range theta0[i] {
			want := float32(0.25*float64(theta5[i][j]) + 0.75*float64(theta0[i][j]))
			if tr.refParams[i][j] != want {
				t.Fatalf("ref param %d/%d = %v, want %v", i, j, tr.refParams[i][j], want)
			}
		}
	}
	// The reference log-probs are the forward of the mixed parameters.
	for i, v := range p.Params() {
		copy(v, tr.refParams[i])
	}
	want, err := tr.forwardAll(context.Background(), tr.train)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if want[i] != tr.trainRef[i] {
			t.Fatalf("pair %d: reference %+v, forward of the mixed parameters %+v", i, tr.trainRef[i], want[i])
		}
	}
}

// TestDCRAlarmStops: with Stop the run ends at the step the alarm fires, with a checkpoint and an
// error wrapping ErrDCRAlarm; the warning mode logs the event and goes on.
func TestDCRAlarmStops(t *testing.T) {
	dir := t.TempDir()
	tr, _ := newToyTrainer(t, dir, "dpo", func(c *TrainConfig) { c.DCRAlarm = DCRAlarm{Rate: 0.1, Steps: 2, Stop: true} })
	res, err := tr.Run(context.Background())
	if !errors.Is(err, ErrDCRAlarm) || !strings.Contains(err.Error(), "dcr_rate above 0.1 for 2 consecutive steps") {
		t.Fatalf("error %v", err)
	}
	ms, rerr := ReadMetrics(filepath.Join(dir, MetricsFileName))
	if rerr != nil {
		t.Fatal(rerr)
	}
	var train []StepMetrics
	for _, m := range ms {
		if m.Split == "" {
			train = append(train, m)
		}
	}
	last := train[len(train)-1]
	if last.Event != "dcr_alarm" || last.Step != res.Steps || res.Steps >= tr.TotalSteps() {
		t.Fatalf("last step %+v, result steps %d of %d", last, res.Steps, tr.TotalSteps())
	}
	if n := len(train); n < 2 || train[n-2].DCRRate <= 0.1 || last.DCRRate <= 0.1 {
		t.Errorf("alarm without two steps over 0.1: %+v", train)
	}
	latest, _ := os.ReadFile(filepath.Join(dir, latestCheckpointFile))
	if strings.TrimSpace(string(latest)) != filepathBase(res.Checkpoint) {
		t.Errorf("latest checkpoint %q, result %q", latest, res.Checkpoint)
	}
	t.Logf("DPO on the toy: alarm at step %d of %d, dcr_rate %.2f", res.Steps, tr.TotalSteps(), last.DCRRate)

	dir = t.TempDir()
	tr, _ = newToyTrainer(t, dir, "dpo", func(c *TrainConfig) { c.DCRAlarm = DCRAlarm{Rate: 0.1, Steps: 2} })
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ms, _ = ReadMetrics(filepath.Join(dir, MetricsFileName))
	if ms[len(ms)-1].Step != tr.TotalSteps() || !strings.Contains(readFile(t, filepath.Join(dir, MetricsFileName)), `"event":"dcr_alarm"`) {
		t.Errorf("warning mode: last step %d, alarm logged %v", ms[len(ms)-1].Step, strings.Contains(readFile(t, filepath.Join(dir, MetricsFileName)), "dcr_alarm"))
	}
}

func filepathBase(p string) string { return filepath.Base(p) }

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseRefRefreshAndDCRAlarm(t *testing.T) {
	refresh := []struct {
		in, want, wantErr string
	}{
		{"hard:50", "hard:50", ""},
		{"soft:0.6:8", "soft:0.6:8", ""},
		{"soft:1:8", "hard:8", ""},
		{"", "", ""},
		{"hard:0", "", "STEPS must be an integer > 0"},
		{"soft:1.5:8", "", "ALPHA must be a number in (0, 1]"},
		{"soft:8", "", "unknown form"},
		{"every:8", "", "unknown form"},
	}
	for _, tc := range refresh {
		r, err := ParseRefRefresh(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || r.String() != tc.want {
			t.Errorf("%q: %v %v, want %s", tc.in, r, err, tc.want)
		}
	}
	alarms := []struct {
		in, want, wantErr string
	}{
		{"0.5", "0.5:1:warn", ""},
		{"0.5:3:stop", "0.5:3:stop", ""},
		{"0.4:stop", "0.4:1:stop", ""},
		{"", "", ""},
		{"1.5", "", "RATE must be a number in (0, 1)"},
		{"0.5:0", "", "STEPS must be an integer > 0"},
		{"0.5:2:halt", "", `STEPS must be an integer > 0, got "halt"`},
		{"0.5:1:stop:4", "", "too many parts"},
	}
	for _, tc := range alarms {
		a, err := ParseDCRAlarm(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || a.String() != tc.want {
			t.Errorf("%q: %v %v, want %s", tc.in, a, err, tc.want)
		}
	}
}

func TestTrainerRefreshConfigErrors(t *testing.T) {
	m := newToyModel(t, 12, 4, 1)
	train, refs := toyData(m, 10, 2)
	save, load := toyAdapterIO(m.lora)
	loss, _ := NewLossFromSpec("simpo", nil, false)
	base := TrainConfig{RunDir: t.TempDir(), Loss: loss, Optimizer: DefaultAdamWConfig(), LR: 0.01, Scheduler: "constant", BatchSize: 4, Epochs: 1, SaveAdapter: save, LoadAdapter: load}
	for _, tc := range []struct {
		mutate  func(*TrainConfig)
		wantErr string
	}{
		{func(c *TrainConfig) { c.RefRefresh = RefRefresh{Every: 2, Mix: 1} }, "reference refresh needs a loss that uses the reference (simpo does not)"},
		{func(c *TrainConfig) { c.RefRefresh = RefRefresh{Every: 2, Mix: 0} }, "mix in (0, 1]"},
		{func(c *TrainConfig) { c.DCRThreshold = -1 }, "DCR threshold must be a finite number >= 0"},
		{func(c *TrainConfig) { c.DCRAlarm = DCRAlarm{Rate: 1} }, "DCR alarm rate must be in [0, 1)"},
	} {
		cfg := base
		tc.mutate(&cfg)
		_, err := NewTrainer(cfg, &toyPolicy{m: m}, train, refs, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("error %v, want %q", err, tc.wantErr)
		}
	}
}

// TestDCRThreshold: a chosen reward counts as degraded only when it is clearly below zero
// (DefaultDCRThreshold), so float rounding between policy and reference does not count.
func TestDCRThreshold(t *testing.T) {
	loss, _ := NewLossFromSpec("dpo", nil, false) // beta 0.1: reward = 0.1·a
	batch := []PairLogps{
		{PolicyChosen: -10.00001, RefChosen: -10, PolicyRejected: -9, RefRejected: -9, ChosenTokens: 3, RejectedTokens: 3}, // rounding: -1e-6
		{PolicyChosen: -10.005, RefChosen: -10, PolicyRejected: -9, RefRejected: -9, ChosenTokens: 3, RejectedTokens: 3},   // -5e-4
		{PolicyChosen: -10.02, RefChosen: -10, PolicyRejected: -9, RefRejected: -9, ChosenTokens: 3, RejectedTokens: 3},    // -2e-3
		{PolicyChosen: -9, RefChosen: -10, PolicyRejected: -9, RefRejected: -9, ChosenTokens: 3, RejectedTokens: 3},        // +0.1
	}
	for _, tc := range []struct {
		threshold float64
		want      float64
	}{{DefaultDCRThreshold, 0.25}, {0, 0.75}, {1e-2, 0}} {
		ma := NewMetricsAccumulator(loss)
		ma.SetDCRThreshold(tc.threshold)
		ma.Add(batch, mustLoss(t, loss, batch))
		sm, err := ma.Finish(1, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if sm.DCRRate != tc.want {
			t.Errorf("threshold %v: dcr_rate %v, want %v", tc.threshold, sm.DCRRate, tc.want)
		}
	}
}
