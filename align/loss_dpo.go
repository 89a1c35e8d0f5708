package align

import (
	"fmt"
	"math"
)

// dpoScore: -(1-eps)·log σ(beta·h) - eps·log σ(-beta·h), h = sa - sb (a - b for reverse KL).
func dpoScore(sa, sb float64, q LossParams) (float64, float64, float64) {
	z := q.Beta * (sa - sb)
	eps := q.LabelSmoothing
	l := -(1-eps)*logSigmoid(z) - eps*logSigmoid(-z)
	dz := -(1-eps)*sigmoid(-z) + eps*sigmoid(z)
	return l, q.Beta * dz, -q.Beta * dz
}

// dpoPair is DPO on the plain log-ratios (RPO's preference term).
func dpoPair(p PairLogps, q LossParams) (float64, float64, float64, error) {
	a, b := logRatios(p)
	l, da, db := dpoScore(a, b, q)
	return l, da, db, nil
}

// ipoPair: (h - 1/(2 beta))^2.
func ipoPair(p PairLogps, q LossParams) (float64, float64, float64, error) {
	a, b := logRatios(p)
	d := a - b - 1/(2*q.Beta)
	return d * d, 2 * d, -2 * d, nil
}

// hingeScore (SLiC): max(0, 1 - beta·h); the derivative at the kink is 0, as for PyTorch's relu.
func hingeScore(sa, sb float64, q LossParams) (float64, float64, float64) {
	u := 1 - q.Beta*(sa-sb)
	if u <= 0 {
		return 0, 0, 0
	}
	return u, -q.Beta, q.Beta
}

// calDPOPair: -log σ(a - b) + 0.5·(a - 1/(2 beta))^2 + 0.5·(b + 1/(2 beta))^2. The squared terms
// are batch means, which equals adding them per pair before the batch mean.
func calDPOPair(p PairLogps, q LossParams) (float64, float64, float64, error) {
	a, b := logRatios(p)
	h := a - b
	t := 1 / (2 * q.Beta)
	ca, cb := a-t, b+t
	l := -logSigmoid(h) + 0.5*ca*ca + 0.5*cb*cb
	s := sigmoid(-h)
	return l, -s + ca, s + cb, nil
}

// dpopPair: -log σ(beta·(h - lambda·max(0, log ref(y_w) - log pi(y_w)))).
func dpopPair(p PairLogps, q LossParams) (float64, float64, float64, error) {
	a, b := logRatios(p)
	pen, dpen := 0.0, 0.0
	if -a > 0 {
		pen, dpen = -a, 1
	}
	z := q.Beta * (a - b - q.Lambda*pen)
	dz := -sigmoid(-z)
	return -logSigmoid(z), dz * q.Beta * (1 + q.Lambda*dpen), -dz * q.Beta, nil
}

// rpoPair: DPO (with label smoothing) + alpha·NLL of the chosen completion, the NLL being the mean
// over its tokens: -PolicyChosen/ChosenTokens.
func rpoPair(p PairLogps, q LossParams) (float64, float64, float64, error) {
	l, dc, dr, _ := dpoPair(p, q)
	n := float64(p.ChosenTokens)
	return l - q.Alpha*p.PolicyChosen/n, dc - q.Alpha/n, dr, nil
}

// simpoPair: -log σ(beta·logp_w/|y_w| - beta·logp_l/|y_l| - gamma); reference-free.
func simpoPair(p PairLogps, q LossParams) (float64, float64, float64, error) {
	nc, nr := float64(p.ChosenTokens), float64(p.RejectedTokens)
	z := q.Beta*p.PolicyChosen/nc - q.Beta*p.PolicyRejected/nr - q.Gamma
	dz := -sigmoid(-z)
	return -logSigmoid(z), dz * q.Beta / nc, -dz * q.Beta / nr, nil
}

// log1mExp returns log(1 - exp(x)) for x < 0 accurately.
func log1mExp(x float64) float64 {
	if x > -math.Ln2 {
		return math.Log(-math.Expm1(x))
	}
	return math.Log1p(-math.Exp(x))
}

// orpoPair: NLL(y_w) - beta·log σ(log odds(y_w) - log odds(y_l)), with the mean token log-probs
// p = logp/|y| and odds(y) = e^p / (1 - e^p); reference-free. beta is the ORPO paper's lambda.
func orpoPair(p PairLogps, q LossParams) (float64, float64, float64, error) {
	nc, nr := float64(p.ChosenTokens), float64(p.RejectedTokens)
	pc, pr := p.PolicyChosen/nc, p.PolicyRejected/nr
	if pc >= 0 || pr >= 0 {
		return 0, 0, 0, fmt.Errorf(
			"ORPO needs mean token log-probs < 0 (odds are infinite at probability 1), got chosen %v rejected %v",
			pc,
			pr,
		)
	}
	lo := pc - pr - log1mExp(pc) + log1mExp(pr)
	l := -pc - q.Beta*logSigmoid(lo)
	dlo := -q.Beta * sigmoid(-lo)
	dpc := -1 + dlo/(-math.Expm1(pc))
	dpr := -dlo / (-math.Expm1(pr))
	return l, dpc / nc, dpr / nr, nil
}
