package align

import (
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
