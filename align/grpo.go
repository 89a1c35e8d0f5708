package align

import (
	"errors"
	"fmt"
	"math"
)

// GRPO loss types: how the per-token losses of a step are aggregated (TRL's loss_type names).
const (
	// GRPOLossGRPO averages each completion's tokens, then the completions (DeepSeekMath's GRPO).
	GRPOLossGRPO = "grpo"
	// GRPOLossDrGRPO sums all tokens and divides by completions x MaxCompletionLength, a constant
	// (Dr. GRPO, arXiv 2503.20783): no length bias. Use it with ScaleRewards off.
	GRPOLossDrGRPO = "dr_grpo"
	// GRPOLossDAPO sums all tokens of the step and divides by their number (DAPO's token-level
	// normalisation, arXiv 2503.14476; TRL's "dapo"/"bnpo" on one process).
	GRPOLossDAPO = "dapo"
)

// GRPOLossTypes lists the loss types, for flags and messages.
func GRPOLossTypes() []string { return []string{GRPOLossGRPO, GRPOLossDrGRPO, GRPOLossDAPO} }

// advantageStdEps is added to the group's standard deviation before dividing (as TRL does), so a
// group with equal rewards gets zero advantages instead of 0/0.
const advantageStdEps = 1e-4

// GRPOConfig holds the settings of the GRPO-family objective. The per-token loss of token t of
// completion i with advantage A is
//
//	l = -min(rho A, clip(rho, 1-EpsilonLow, 1+EpsilonHigh) A) + Beta k3,
//	rho = exp(logp - logp_old),  k3 = exp(ref - logp) - (ref - logp) - 1,
//
// and the step's loss is sum w_i l over tokens, with w_i set by LossType.
type GRPOConfig struct {
	LossType            string  // grpo, dr_grpo or dapo
	EpsilonLow          float64 // lower clipping range of the importance ratio (0.2)
	EpsilonHigh         float64 // upper clipping range (0.2; DAPO's clip-higher uses 0.28)
	Beta                float64 // weight of the KL(k3) penalty to the reference; 0 needs no reference
	ScaleRewards        bool    // divide advantages by the group's standard deviation (GRPO); off for Dr. GRPO
	MaxCompletionLength int     // dr_grpo's normaliser: the generation limit (max new tokens)
}

// Validate checks the settings, naming the offending one.
func (c GRPOConfig) Validate() error {
	switch c.LossType {
	case GRPOLossGRPO, GRPOLossDAPO:
	case GRPOLossDrGRPO:
		if c.MaxCompletionLength < 1 {
			return fmt.Errorf("grpo: loss type dr_grpo needs the max completion length >= 1, got %d", c.MaxCompletionLength)
		}
	default:
		return fmt.Errorf("grpo: unknown loss type %q (want one of %v)", c.LossType, GRPOLossTypes())
	}
	switch {
	case !isFinite(c.EpsilonLow) || c.EpsilonLow <= 0 || c.EpsilonLow >= 1:
		return fmt.Errorf("grpo: epsilon (low clipping range) must be in (0, 1), got %v", c.EpsilonLow)
	case !isFinite(c.EpsilonHigh) || c.EpsilonHigh <= 0:
		return fmt.Errorf("grpo: epsilon-high (upper clipping range) must be finite and > 0, got %v", c.EpsilonHigh)
	case !isFinite(c.Beta) || c.Beta < 0:
		return fmt.Errorf("grpo: beta (KL weight) must be finite and >= 0, got %v", c.Beta)
	}
	return nil
}

// GroupAdvantages returns the group-normalised advantages of rewards laid out as consecutive
// groups of groupSize completions of the same prompt: r - mean(group), divided by the group's
// sample standard deviation (+1e-4) when scale is set.
func GroupAdvantages(rewards []float64, groupSize int, scale bool) ([]float64, error) {
	if groupSize < 2 {
		return nil, fmt.Errorf("grpo: group size must be >= 2 (advantages compare completions of one prompt), got %d", groupSize)
	}
	if len(rewards)%groupSize != 0 {
		return nil, fmt.Errorf("grpo: %d rewards do not split into groups of %d", len(rewards), groupSize)
	}
	out := make([]float64, len(rewards))
	for lo := 0; lo < len(rewards); lo += groupSize {
		g := rewards[lo : lo+groupSize]
		mean := 0.0
		for i, r := range g {
			if !isFinite(r) {
				return nil, fmt.Errorf("grpo: reward %d is not finite (%v)", lo+i, r)
			}
			mean += r
		}
		mean /= float64(groupSize)
		ss := 0.0
		for _, r := range g {
			ss += (r - mean) * (r - mean)
		}
		std := math.Sqrt(ss / float64(groupSize-1))
		for i, r := range g {
			out[lo+i] = r - mean
			if scale {
				out[lo+i] /= std + advantageStdEps
			}
		}
	}
	return out, nil
}

// GRPOSample is one completion of a step's batch as the objective needs it.
type GRPOSample struct {
	Advantage float64
	OldLogps  []float64 // per completion token, from the policy that sampled (the round's start)
	RefLogps  []float64 // per completion token, from the reference; needed when Beta > 0
}

// TokenWeights returns each completion's per-token weight w_i for a step over completions of
// the given token counts (all of the step's completions, across its micro-batches).
func (c GRPOConfig) TokenWeights(lengths []int) ([]float64, error) {
	if len(lengths) == 0 {
		return nil, errors.New("grpo: a step needs at least one completion")
	}
	total := 0
	for i, n := range lengths {
		if n < 1 {
			return nil, fmt.Errorf("grpo: completion %d has no tokens", i)
		}
		total += n
	}
	w := make([]float64, len(lengths))
	for i, n := range lengths {
		switch c.LossType {
		case GRPOLossGRPO:
			w[i] = 1 / float64(len(lengths)*n)
		case GRPOLossDrGRPO:
			w[i] = 1 / float64(len(lengths)*c.MaxCompletionLength)
		case GRPOLossDAPO:
			w[i] = 1 / float64(total)
		default:
			return nil, fmt.Errorf("grpo: unknown loss type %q", c.LossType)
		}
	}
	return w, nil
}

// GRPOStats are the sums a step's metrics are made of (over its micro-batches).
type GRPOStats struct {
	Tokens     int     // completion tokens
	KLSum      float64 // sum over tokens of k3
	LowClip    int     // tokens with rho < 1-EpsilonLow and A < 0 (no gradient)
	HighClip   int     // tokens with rho > 1+EpsilonHigh and A > 0 (no gradient)
	RatioSum   float64 // sum over tokens of rho
	Loss       float64 // the weighted loss
	Completion int     // completions
}

// Add accumulates another micro-batch's stats.
func (s *GRPOStats) Add(o GRPOStats) {
	s.Tokens += o.Tokens
	s.KLSum += o.KLSum
	s.LowClip += o.LowClip
	s.HighClip += o.HighClip
	s.RatioSum += o.RatioSum
	s.Loss += o.Loss
	s.Completion += o.Completion
}

// Objective returns the weighted loss sum_i w_i sum_t l_{i,t} of completions with the policy's
// per-token log-probs logps, and its exact derivative dLoss/dlogp_{i,t} for every token (the
// coefficients TrainModel.TokenLogProbsAndGradient takes). weights come from TokenWeights.
// Where the clipped branch is the minimum and rho is outside the range the token gets no
// gradient from the ratio term (PyTorch's clamp and min give the same).
func (c GRPOConfig) Objective(samples []GRPOSample, weights []float64, logps [][]float64) (float64, [][]float64, GRPOStats, error) {
	var st GRPOStats
	if len(samples) != len(logps) || len(weights) != len(samples) {
		return 0, nil, st, fmt.Errorf("grpo: %d samples, %d weights, %d log-prob rows", len(samples), len(weights), len(logps))
	}
	coef := make([][]float64, len(samples))
	for i, s := range samples {
		lp := logps[i]
		if len(s.OldLogps) != len(lp) {
			return 0, nil, st, fmt.Errorf("grpo: completion %d: %d old log-probs for %d tokens", i, len(s.OldLogps), len(lp))
		}
		if c.Beta > 0 && len(s.RefLogps) != len(lp) {
			return 0, nil, st, fmt.Errorf("grpo: completion %d: %d reference log-probs for %d tokens (beta > 0 needs them)", i, len(s.RefLogps), len(lp))
		}
		a, w := s.Advantage, weights[i]
		coef[i] = make([]float64, len(lp))
		for t, x := range lp {
			rho := math.Exp(x - s.OldLogps[t])
			clipped := min(max(rho, 1-c.EpsilonLow), 1+c.EpsilonHigh)
			l := -min(rho*a, clipped*a)
			var d float64
			switch {
			case a < 0 && rho < 1-c.EpsilonLow:
				st.LowClip++
			case a > 0 && rho > 1+c.EpsilonHigh:
				st.HighClip++
			default:
				d = -rho * a
			}
			if c.Beta > 0 {
				diff := s.RefLogps[t] - x
				e := math.Exp(diff)
				k3 := e - diff - 1
				l += c.Beta * k3
				d += c.Beta * (1 - e)
				st.KLSum += k3
			}
			if !isFinite(l) || !isFinite(d) {
				return 0, nil, st, fmt.Errorf("grpo: completion %d token %d: loss %v, gradient %v (log-prob %v, old %v)", i, t, l, d, x, s.OldLogps[t])
			}
			st.Loss += w * l
			st.RatioSum += rho
			coef[i][t] = w * d
		}
		st.Tokens += len(lp)
		st.Completion++
	}
	return st.Loss, coef, st, nil
}
