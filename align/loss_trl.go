package align

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// This file holds the offline losses TRL's DPOTrainer offers beyond DPO/IPO/hinge, the f-divergence
// transforms of f-DPO, and the SFT term. Sources are cited in LOSSES.md.

// sigmoidSlope returns σ(x)·σ(-x), the derivative of σ at x.
func sigmoidSlope(x float64) float64 { return sigmoid(x) * sigmoid(-x) }

// robustScore (rDPO): [-(1-eps)·log σ(z) + eps·log σ(-z)] / (1 - 2 eps), z = beta·(sa - sb).
func robustScore(sa, sb float64, q LossParams) (float64, float64, float64) {
	z := q.Beta * (sa - sb)
	eps := q.LabelSmoothing
	k := 1 - 2*eps
	l := (-(1-eps)*logSigmoid(z) + eps*logSigmoid(-z)) / k
	dz := (-(1-eps)*sigmoid(-z) - eps*sigmoid(z)) / k
	return l, q.Beta * dz, -q.Beta * dz
}

// exoScore (EXO-pref, K = 2): KL(softmax over the pair of beta·s || (1-eps, eps))
// = σ(z)(log σ(z) - log(1-eps)) + σ(-z)(log σ(-z) - log eps), z = beta·(sa - sb).
// Its derivative in z is σ(z)σ(-z)·(z - log((1-eps)/eps)).
func exoScore(sa, sb float64, q LossParams) (float64, float64, float64) {
	z := q.Beta * (sa - sb)
	eps := q.LabelSmoothing
	l := sigmoid(z)*(logSigmoid(z)-math.Log1p(-eps)) + sigmoid(-z)*(logSigmoid(-z)-math.Log(eps))
	dz := sigmoidSlope(z) * (z - math.Log1p(-eps) + math.Log(eps))
	return l, q.Beta * dz, -q.Beta * dz
}

// ncaScore (NCA, pairwise): -log σ(beta·sa) - ½·log σ(-beta·sa) - ½·log σ(-beta·sb).
func ncaScore(sa, sb float64, q LossParams) (float64, float64, float64) {
	ca, cb := q.Beta*sa, q.Beta*sb
	l := -logSigmoid(ca) - 0.5*logSigmoid(-ca) - 0.5*logSigmoid(-cb)
	return l, q.Beta * (-sigmoid(-ca) + 0.5*sigmoid(ca)), q.Beta * 0.5 * sigmoid(cb)
}

// bcoScore (BCO, pairwise, as TRL now computes it: no running reward shift):
// -log σ(beta·sa) - log σ(-beta·sb).
func bcoScore(sa, sb float64, q LossParams) (float64, float64, float64) {
	ca, cb := q.Beta*sa, q.Beta*sb
	return -logSigmoid(ca) - logSigmoid(-cb), -q.Beta * sigmoid(-ca), q.Beta * sigmoid(cb)
}

// sppoHardScore (SPPO with hard win probabilities): (sa - 1/(2 beta))² + (sb + 1/(2 beta))².
func sppoHardScore(sa, sb float64, q LossParams) (float64, float64, float64) {
	t := 0.5 / q.Beta
	ca, cb := sa-t, sb+t
	return ca*ca + cb*cb, 2 * ca, 2 * cb
}

// apoZeroScore (APO-zero): (1 - σ(beta·sa)) + σ(beta·sb).
func apoZeroScore(sa, sb float64, q LossParams) (float64, float64, float64) {
	ca, cb := q.Beta*sa, q.Beta*sb
	return 1 - sigmoid(ca) + sigmoid(cb), -q.Beta * sigmoidSlope(ca), q.Beta * sigmoidSlope(cb)
}

// apoDownScore (APO-down): σ(beta·sa) + 1 - σ(beta·(sa - sb)).
func apoDownScore(sa, sb float64, q LossParams) (float64, float64, float64) {
	ca, z := q.Beta*sa, q.Beta*(sa-sb)
	l := sigmoid(ca) + 1 - sigmoid(z)
	return l, q.Beta * (sigmoidSlope(ca) - sigmoidSlope(z)), q.Beta * sigmoidSlope(z)
}

// discopopScore (DiscoPOP, log-ratio modulated loss): with z = beta·(sa - sb) and m = σ(z/tau),
// (1 - m)·(-log σ(z)) + m·e^{-z}.
func discopopScore(sa, sb float64, q LossParams) (float64, float64, float64) {
	z := q.Beta * (sa - sb)
	m := sigmoid(z / q.Tau)
	dm := sigmoidSlope(z/q.Tau) / q.Tau
	logistic, ex := -logSigmoid(z), math.Exp(-z)
	l := (1-m)*logistic + m*ex
	dz := -(1-m)*sigmoid(-z) - dm*logistic - m*ex + dm*ex
	return l, q.Beta * dz, -q.Beta * dz
}

// sigmoidNormPair (length-normalized DPO, Tülu 3): -log σ(beta·(a/|y_w| - b/|y_l|)).
func sigmoidNormPair(p PairLogps, q LossParams) (float64, float64, float64, error) {
	a, b := logRatios(p)
	nc, nr := float64(p.ChosenTokens), float64(p.RejectedTokens)
	z := q.Beta * (a/nc - b/nr)
	dz := -sigmoid(-z)
	return -logSigmoid(z), q.Beta * dz / nc, -q.Beta * dz / nr, nil
}

// sftPair: the chosen completion's mean token NLL, -log π(y_w|x)/|y_w|.
func sftPair(p PairLogps, _ LossParams) (float64, float64, float64, error) {
	n := float64(p.ChosenTokens)
	return -p.PolicyChosen / n, -1 / n, 0, nil
}

// smoothedLogistic is DPO's conservative loss at z and its derivative.
func smoothedLogistic(z, eps float64) (float64, float64) {
	return -(1-eps)*logSigmoid(z) - eps*logSigmoid(-z), -(1-eps)*sigmoid(-z) + eps*sigmoid(z)
}

// sortedOrder returns the indices of v in ascending order of value (stable).
func sortedOrder(v []float64) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return v[idx[i]] < v[idx[j]] })
	return idx
}

// aotBatch (AOT, paired): sort the batch's policy log-ratios log π(y_w) - log π(y_l) and the
// reference's separately; the k-th loss is DPO's at beta·(k-th policy - k-th reference). Each
// term's gradient goes to the pair that holds the k-th policy value.
func aotBatch(batch []PairLogps, q LossParams) ([]float64, []PairGrad, error) {
	pol, ref := make([]float64, len(batch)), make([]float64, len(batch))
	for i, p := range batch {
		pol[i], ref[i] = p.PolicyChosen-p.PolicyRejected, p.RefChosen-p.RefRejected
	}
	po, ro := sortedOrder(pol), sortedOrder(ref)
	vals, grads := make([]float64, len(batch)), make([]PairGrad, len(batch))
	for k := range batch {
		l, dz := smoothedLogistic(q.Beta*(pol[po[k]]-ref[ro[k]]), q.LabelSmoothing)
		vals[k] = l
		grads[po[k]].Chosen += q.Beta * dz
		grads[po[k]].Rejected -= q.Beta * dz
	}
	return vals, grads, nil
}

// aotUnpairedBatch (AOT, unpaired): sort the chosen log-ratios a and the rejected ones b
// separately; the k-th loss is DPO's at beta·(k-th a - k-th b).
func aotUnpairedBatch(batch []PairLogps, q LossParams) ([]float64, []PairGrad, error) {
	as, bs := make([]float64, len(batch)), make([]float64, len(batch))
	for i, p := range batch {
		as[i], bs[i] = logRatios(p)
	}
	ao, bo := sortedOrder(as), sortedOrder(bs)
	vals, grads := make([]float64, len(batch)), make([]PairGrad, len(batch))
	for k := range batch {
		l, dz := smoothedLogistic(q.Beta*(as[ao[k]]-bs[bo[k]]), q.LabelSmoothing)
		vals[k] = l
		grads[ao[k]].Chosen += q.Beta * dz
		grads[bo[k]].Rejected -= q.Beta * dz
	}
	return vals, grads, nil
}

// Divergence names accepted by the score-based losses.
const (
	divReverseKL = "reverse_kl"
	divForwardKL = "forward_kl"
	divJS        = "js_divergence"
	divAlpha     = "alpha_divergence"
)

// Divergences returns the f-divergence names accepted by the divergence parameter.
func Divergences() []string { return []string{divReverseKL, divForwardKL, divJS, divAlpha} }

// canonicalDivergence lower-cases a divergence name, reads dashes as underscores, accepts the
// short forms "js" and "alpha", and maps reverse_kl (the default) to "".
func canonicalDivergence(d string) string {
	d = paramKey(d)
	switch d {
	case "js":
		d = divJS
	case "alpha":
		d = divAlpha
	case divReverseKL:
		d = ""
	}
	return d
}

func validateDivergence(q LossParams) error {
	d := canonicalDivergence(q.Divergence)
	switch d {
	case "", divForwardKL, divJS:
		if q.DivergenceAlpha != 0 {
			return fmt.Errorf("parameter divergence_alpha applies only with divergence=%s", divAlpha)
		}
	case divAlpha:
		if !isFinite(q.DivergenceAlpha) || q.DivergenceAlpha <= 0 {
			return fmt.Errorf(
				"divergence_alpha must be a finite number > 0 with divergence=%s, got %v",
				divAlpha,
				q.DivergenceAlpha,
			)
		}
	default:
		return fmt.Errorf("unknown divergence %q: expected one of %s", q.Divergence, strings.Join(Divergences(), ", "))
	}
	return nil
}

// divergenceScore returns φ(u) and φ'(u) for a log-ratio u = log π/π_ref: f-DPO's f'(π/π_ref)
// without its constant terms. Reverse KL: u; forward KL: -e^{-u}; JS: log σ(u);
// alpha-divergence: e^{(α-1)u}/(α-1), which is u at α = 1.
func divergenceScore(u float64, q LossParams) (float64, float64) {
	switch q.Divergence {
	case divForwardKL:
		e := math.Exp(-u)
		return -e, e
	case divJS:
		return logSigmoid(u), sigmoid(-u)
	case divAlpha:
		c := q.DivergenceAlpha - 1
		if math.Abs(c) < 1e-6 {
			return u, 1
		}
		e := math.Exp(c * u)
		return e / c, e
	}
	return u, 1
}
