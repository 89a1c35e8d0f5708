package align

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestLossParamsSet(t *testing.T) {
	tests := []struct {
		loss    string
		sets    [][2]string
		want    string
		wantErr string
	}{
		{"bpo", [][2]string{{"alpha", "0.5"}, {"f", "hinge"}, {"beta", "0.05"}}, "beta=0.05 alpha=0.5 f=hinge", ""},
		{"dpo", [][2]string{{"label-smoothing", "0.1"}}, "beta=0.1 label_smoothing=0.1", ""},
		{"simpo", [][2]string{{"gamma", "0.5"}}, "beta=2 gamma=0.5", ""},
		{"dpop", [][2]string{{"LAMBDA", "10"}}, "beta=0.1 lambda=10", ""},
		{"dpo", [][2]string{{"temperature", "1"}}, "", `unknown loss parameter "temperature"`},
		{"dpo", [][2]string{{"beta", "high"}}, "", `loss parameter beta: expected a number, got "high"`},
	}
	for _, tc := range tests {
		p, err := DefaultLossParams(tc.loss)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range tc.sets {
			if err = p.Set(s[0], s[1]); err != nil {
				break
			}
		}
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s %v: error %v, want %q", tc.loss, tc.sets, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.String() != tc.want {
			t.Errorf("%s %v: %s, want %s", tc.loss, tc.sets, p, tc.want)
		}
		if _, err := NewLoss(tc.loss, p); err != nil {
			t.Errorf("%s: %v", tc.loss, err)
		}
	}
}

// TestLossDefaults pins every registered loss's defaults, as they were before the parameter table
// existed: the table must not change a default.
func TestLossDefaults(t *testing.T) {
	want := map[string]LossParams{
		"dpo": {Beta: 0.1}, "hinge": {Beta: 0.1}, "ipo": {Beta: 0.1}, "cal-dpo": {Beta: 0.1},
		"dpop":  {Beta: 0.1, Lambda: 50},
		"bpo":   {Beta: 0.1, Alpha: 0.3, F: "logistic"},
		"simpo": {Beta: 2.0, Gamma: 1.0}, "orpo": {Beta: 0.1}, "rpo": {Beta: 0.1, Alpha: 1.0},
		"robust": {Beta: 0.1, LabelSmoothing: 0.1}, "exo_pair": {Beta: 0.1, LabelSmoothing: 1e-3},
		"nca_pair": {Beta: 0.1}, "bco_pair": {Beta: 0.1}, "sppo_hard": {Beta: 0.1}, "apo_zero": {Beta: 0.1},
		"apo_down": {Beta: 0.1}, "discopop": {Beta: 0.1, Tau: 0.05}, "sigmoid_norm": {Beta: 0.1},
		"aot": {Beta: 0.1}, "aot_unpaired": {Beta: 0.1}, "sft": {},
	}
	if got := LossNames(); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
		t.Fatalf("registered losses %v, want %v", got, slices.Sorted(maps.Keys(want)))
	}
	for name, w := range want {
		got, err := DefaultLossParams(name)
		if err != nil || got != w {
			t.Errorf("%s: defaults %+v (%v), want %+v", name, got, err, w)
		}
	}
}

// TestLossParamTableConsistent: every loss the table names is registered and listed once per
// parameter, the divergence parameters belong exactly to the score-based losses (the only ones
// that apply them), and every default passes its own validation.
func TestLossParamTableConsistent(t *testing.T) {
	specs := lossSpecs()
	for _, p := range lossParamTable() {
		seen := map[string]bool{}
		for _, u := range p.uses {
			for _, l := range u.losses {
				if _, ok := specs[l]; !ok {
					t.Errorf("parameter %s: loss %q is not registered", p.name, l)
				}
				if seen[l] {
					t.Errorf("parameter %s: loss %s listed twice", p.name, l)
				}
				seen[l] = true
			}
		}
	}
	var score []string
	for name, s := range specs {
		if s.score != nil {
			score = append(score, name)
		}
	}
	slices.Sort(score)
	for _, param := range []string{"divergence", "divergence_alpha"} {
		if got := slices.Sorted(slices.Values(lossesUsing(param))); !slices.Equal(got, score) {
			t.Errorf("%s is used by %v, want the score-based losses %v", param, got, score)
		}
	}
	for _, name := range LossNames() {
		if err := validateParamsFor(name, defaultLossParamsOf(name)); err != nil {
			t.Errorf("%s: defaults rejected: %v", name, err)
		}
	}
}

// TestLossParamInfos: the CLI's descriptions name every parameter once, in the table's order, with
// the losses that use it and their defaults.
func TestLossParamInfos(t *testing.T) {
	infos := LossParamInfos()
	var names []string
	for _, in := range infos {
		names = append(names, in.Name)
		if in.Switch != (in.Name == "include_prompt") {
			t.Errorf("%s: switch %v", in.Name, in.Switch)
		}
	}
	if !slices.Equal(names, LossParamNames()) {
		t.Fatalf("names %v, want %v", names, LossParamNames())
	}
	for _, tc := range []struct{ name, want string }{
		{"beta", "temperature beta; simpo: 2; orpo: 0.1 (λ in the ORPO paper); the others: 0.1; not used by sft"},
		{"alpha", "alpha; bpo: 0.3 in (0, 1] (gap adaptor); rpo: 1 (NLL weight)"},
		{"label_smoothing", "label smoothing ε; dpo, rpo, aot, aot_unpaired: 0 in [0, 0.5); robust: 0.1 in [0, 0.5); " +
			"exo_pair: 0.001 in (0, 0.5) (EXO's epsilon)"},
	} {
		i := slices.Index(names, tc.name)
		if infos[i].Usage != tc.want {
			t.Errorf("%s: usage %q, want %q", tc.name, infos[i].Usage, tc.want)
		}
	}
}
