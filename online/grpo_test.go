package online

import (
	"math"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/align"
)

func TestCheckGRPOConfig(t *testing.T) {
	ok := GRPOConfig{Rounds: 2, QuestionsPerRound: 10, GroupSize: 4, BatchQuestions: 4, Iterations: 2, LR: 1e-3, MaxGradNorm: 1,
		Objective: align.GRPOConfig{LossType: align.GRPOLossGRPO, EpsilonLow: 0.2, EpsilonHigh: 0.2},
		Optimizer: align.AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}}
	if got := ok.StepsPerRound(); got != 6 { // 2 passes x ceil(10/4)
		t.Errorf("StepsPerRound = %d, want 6", got)
	}
	for _, tc := range []struct {
		name string
		edit func(*GRPOConfig)
		want string
	}{
		{"ok", func(*GRPOConfig) {}, ""},
		{"no rounds", func(c *GRPOConfig) { c.Rounds = 0 }, "rounds"},
		{"group of one", func(c *GRPOConfig) { c.GroupSize = 1 }, "group size must be >= 2"},
		{"batch above round", func(c *GRPOConfig) { c.BatchQuestions = 11 }, "questions per step"},
		{"micro above batch", func(c *GRPOConfig) { c.MicroQuestions = 5 }, "micro-batch"},
		{"no iterations", func(c *GRPOConfig) { c.Iterations = 0 }, "iterations"},
		{"nan lr", func(c *GRPOConfig) { c.LR = math.NaN() }, "learning rate"},
		{"inf grad norm", func(c *GRPOConfig) { c.MaxGradNorm = math.Inf(1) }, "max grad norm"},
		{"kl weight inf", func(c *GRPOConfig) { c.Objective.Beta = math.Inf(1) }, "beta"},
		{"clip range", func(c *GRPOConfig) { c.Objective.EpsilonLow = 0 }, "epsilon"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := CheckGRPOConfig(c)
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("CheckGRPOConfig = %v, want %q", err, tc.want)
			}
		})
	}
}
