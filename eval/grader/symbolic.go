package grader

import (
	"maps"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"slices"
	"strings"
)

const (
	// maxSymbolicLen skips symbolic comparison of very long strings (Qwen uses a timeout).
	maxSymbolicLen = 2000
	// symbolicPoints is the number of random assignments tried for expressions with variables.
	symbolicPoints = 8
	// symbolicRelTol is the agreement required at each random point.
	symbolicRelTol = 1e-6
)

// SymbolicEqual stands in for sympy in the Qwen grader's symbolic_equal. Both strings (with "\\"
// read as "\") are parsed by ParseLatex; if either fails they are equal only as identical strings.
// Constant expressions are equal when their values agree within relative tolerance 1e-4
// (numeric_equal of N(a), N(b)). Expressions with variables are equal when they agree (relative
// 1e-6) at random points drawn from a fixed seed, which decides the identities that
// simplify(a-b)==0 proves. Two equations "l=r" are equal when |l-r| agrees on both sides.
func SymbolicEqual(a, b string) bool {
	if a == b {
		return true
	}
	if len(a) > maxSymbolicLen || len(b) > maxSymbolicLen {
		return false
	}
	ea, eqa, oka := parseSide(a)
	eb, eqb, okb := parseSide(b)
	if !oka || !okb || eqa != eqb {
		return false
	}
	if eqa {
		ea = &funcExpr{name: "abs", args: []Expr{ea}}
		eb = &funcExpr{name: "abs", args: []Expr{eb}}
	}
	return exprsAgree(ea, eb)
}

// parseSide parses s, or "l=r" as l-(r) with isEq set.
func parseSide(s string) (e Expr, isEq, ok bool) {
	s = strings.ReplaceAll(s, `\\`, `\`)
	if strings.Count(s, "=") == 1 {
		l, r, _ := strings.Cut(s, "=")
		el, err1 := ParseLatex(l)
		er, err2 := ParseLatex(r)
		if err1 != nil || err2 != nil {
			return nil, true, false
		}
		return &binExpr{op: '-', l: el, r: er}, true, true
	}
	if strings.Contains(s, "=") {
		return nil, false, false
	}
	e, err := ParseLatex(s)
	if err != nil {
		return nil, false, false
	}
	return e, false, true
}

// exprsAgree compares two expressions numerically.
func exprsAgree(a, b Expr) bool {
	set := map[string]bool{}
	a.vars(set)
	b.vars(set)
	if len(set) == 0 {
		x, y := a.eval(nil), b.eval(nil)
		rx, okx := realValue(x)
		ry, oky := realValue(y)
		return okx && oky && isClose(rx, ry)
	}
	names := slices.Sorted(maps.Keys(set))
	rng := rand.New(rand.NewPCG(20240917, uint64(len(names))))
	valid := 0
	for range symbolicPoints {
		env := make(map[string]complex128, len(names))
		for _, n := range names {
			v := 0.25 + 2.5*rng.Float64()
			if rng.IntN(2) == 0 {
				v = -v
			}
			env[n] = complex(v, 0)
		}
		x, y := a.eval(env), b.eval(env)
		fx, fy := finite(x), finite(y)
		if !fx && !fy {
			continue
		}
		if fx != fy {
			return false
		}
		d := cmplx.Abs(x - y)
		if d > symbolicRelTol*math.Max(cmplx.Abs(x), cmplx.Abs(y))+1e-12 {
			return false
		}
		valid++
	}
	return valid >= 3
}

func finite(z complex128) bool {
	return !cmplx.IsNaN(z) && !cmplx.IsInf(z)
}

// realValue returns the real value of z when its imaginary part is negligible.
func realValue(z complex128) (float64, bool) {
	if !finite(z) {
		return 0, false
	}
	if math.Abs(imag(z)) > 1e-12*math.Max(1, math.Abs(real(z))) {
		return 0, false
	}
	return real(z), true
}
