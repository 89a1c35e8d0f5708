package align

import (
	"maps"
	"math"
	"slices"
)

// bpoFamily is one choice of f for BPO's loss f(beta·m): its value and derivative at z.
type bpoFamily struct {
	f  func(z float64) float64
	df func(z float64) float64
}

// bpoFamilies returns the loss families BPO accepts, by name.
func bpoFamilies() map[string]bpoFamily {
	relu := func(x float64) float64 { return math.Max(0, x) }
	return map[string]bpoFamily{
		// -log σ(z)
		"logistic": {
			f:  func(z float64) float64 { return -logSigmoid(z) },
			df: func(z float64) float64 { return -sigmoid(-z) },
		},
		// max(0, 1-z); derivative 0 at the kink
		"hinge": {
			f: func(z float64) float64 { return relu(1 - z) },
			df: func(z float64) float64 {
				if 1-z > 0 {
					return -1
				}
				return 0
			},
		},
		// (z-1)^2
		"square": {
			f:  func(z float64) float64 { return (z - 1) * (z - 1) },
			df: func(z float64) float64 { return 2 * (z - 1) },
		},
		// exp(-z)
		"exponential": {
			f:  func(z float64) float64 { return math.Exp(-z) },
			df: func(z float64) float64 { return -math.Exp(-z) },
		},
		// max(0, 1-z)^2
		"truncated-quadratic": {
			f:  func(z float64) float64 { u := relu(1 - z); return u * u },
			df: func(z float64) float64 { return -2 * relu(1-z) },
		},
		// 1/(1+e^z)^2 = σ(-z)^2
		"savage": {
			f:  func(z float64) float64 { s := sigmoid(-z); return s * s },
			df: func(z float64) float64 { s := sigmoid(-z); return -2 * s * s * sigmoid(z) },
		},
	}
}

// BPOFamilies returns the names of the loss families f accepted by BPO, sorted.
func BPOFamilies() []string {
	fams := bpoFamilies()
	names := slices.Sorted(maps.Keys(fams))
	return names
}

// balancedMargin returns BPO's balanced reward margin m = min(a, -alpha·b) and the share of the
// gradient dm/da that goes to the chosen branch: 1 when a is the minimum, 0 when -alpha·b is, and
// 1/2 at a tie (as PyTorch's minimum splits it).
func balancedMargin(a, b, alpha float64) (m, chosenShare float64) {
	r := -alpha * b
	switch {
	case a < r:
		return a, 1
	case a > r:
		return r, 0
	default:
		return a, 0.5
	}
}

// bpoPair: f(beta·min(a, -alpha·b)); only the minimum branch gets gradient, a tie splits it.
func bpoPair(p PairLogps, q LossParams) (float64, float64, float64, error) {
	fam := bpoFamilies()[q.F]
	a, b := logRatios(p)
	m, share := balancedMargin(a, b, q.Alpha)
	z := q.Beta * m
	dz := fam.df(z) * q.Beta
	// dm/da = share, dm/db = -alpha·(1 - share)
	return fam.f(z), dz * share, dz * (-q.Alpha) * (1 - share), nil
}
