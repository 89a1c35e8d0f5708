package grader

import (
	"math"
	"math/cmplx"
)

type numExpr float64

func (n numExpr) eval(map[string]complex128) complex128 { return complex(float64(n), 0) }
func (numExpr) vars(map[string]bool)                    {}

type constExpr string

func (constExpr) eval(map[string]complex128) complex128 { return complex(math.Pi, 0) }
func (constExpr) vars(map[string]bool)                  {}

type varExpr string

func (v varExpr) eval(env map[string]complex128) complex128 {
	if x, ok := env[string(v)]; ok {
		return x
	}
	return cmplx.NaN()
}
func (v varExpr) vars(into map[string]bool) { into[string(v)] = true }

type negExpr struct{ e Expr }

func (n *negExpr) eval(env map[string]complex128) complex128 { return -n.e.eval(env) }
func (n *negExpr) vars(into map[string]bool)                 { n.e.vars(into) }

type binExpr struct {
	op   byte
	l, r Expr
}

func (b *binExpr) eval(env map[string]complex128) complex128 {
	x, y := b.l.eval(env), b.r.eval(env)
	switch b.op {
	case '+':
		return x + y
	case '-':
		return x - y
	case '*':
		return x * y
	case '/':
		if y == 0 {
			return cmplx.Inf()
		}
		return x / y
	}
	return power(x, y)
}

func (b *binExpr) vars(into map[string]bool) { b.l.vars(into); b.r.vars(into) }

// power keeps real arithmetic where it is exact (real base, integer exponent, or positive base).
func power(x, y complex128) complex128 {
	if imag(x) == 0 && imag(y) == 0 {
		bx, ey := real(x), real(y)
		if bx > 0 || ey == math.Trunc(ey) {
			return complex(math.Pow(bx, ey), 0)
		}
	}
	if x == 0 {
		if real(y) > 0 {
			return 0
		}
		return cmplx.Inf()
	}
	return cmplx.Pow(x, y)
}

type factExpr struct{ e Expr }

func (f *factExpr) eval(env map[string]complex128) complex128 {
	x := f.e.eval(env)
	if imag(x) != 0 {
		return cmplx.NaN()
	}
	return complex(math.Gamma(real(x)+1), 0)
}
func (f *factExpr) vars(into map[string]bool) { f.e.vars(into) }

type funcExpr struct {
	name string
	args []Expr
}

func (f *funcExpr) vars(into map[string]bool) {
	for _, a := range f.args {
		a.vars(into)
	}
}

func (f *funcExpr) eval(env map[string]complex128) complex128 {
	x := f.args[0].eval(env)
	switch f.name {
	case "abs":
		return complex(cmplx.Abs(x), 0)
	case "root":
		n := f.args[1].eval(env)
		if n == 0 {
			return cmplx.NaN()
		}
		if imag(x) == 0 && real(x) >= 0 && imag(n) == 0 {
			return complex(math.Pow(real(x), 1/real(n)), 0)
		}
		return cmplx.Pow(x, 1/n)
	case "floor", "ceil":
		if imag(x) != 0 {
			return cmplx.NaN()
		}
		if f.name == "floor" {
			return complex(math.Floor(real(x)), 0)
		}
		return complex(math.Ceil(real(x)), 0)
	case "binom":
		k := f.args[1].eval(env)
		if imag(x) != 0 || imag(k) != 0 {
			return cmplx.NaN()
		}
		n, kk := real(x), real(k)
		return complex(math.Gamma(n+1)/(math.Gamma(kk+1)*math.Gamma(n-kk+1)), 0)
	}
	if fn := funcs[f.name]; fn != nil {
		return fn(x)
	}
	return cmplx.NaN()
}

// funcs are the supported elementary functions (complex-valued, principal branches).
var funcs = map[string]func(complex128) complex128{
	"sin": cmplx.Sin, "cos": cmplx.Cos, "tan": cmplx.Tan, "cot": cmplx.Cot,
	"sec":    func(x complex128) complex128 { return 1 / cmplx.Cos(x) },
	"csc":    func(x complex128) complex128 { return 1 / cmplx.Sin(x) },
	"arcsin": cmplx.Asin, "arccos": cmplx.Acos, "arctan": cmplx.Atan,
	"sinh": cmplx.Sinh, "cosh": cmplx.Cosh, "tanh": cmplx.Tanh,
	"ln": cmplx.Log, "exp": cmplx.Exp,
}

// greek letters are variables.
var greek = map[string]bool{
	"alpha": true, "beta": true, "gamma": true, "delta": true, "epsilon": true, "varepsilon": true,
	"zeta": true, "eta": true, "theta": true, "vartheta": true, "iota": true, "kappa": true,
	"lambda": true, "mu": true, "nu": true, "xi": true, "rho": true, "sigma": true, "tau": true,
	"upsilon": true, "phi": true, "varphi": true, "chi": true, "psi": true, "omega": true,
	"Gamma": true, "Delta": true, "Theta": true, "Lambda": true, "Xi": true, "Sigma": true,
	"Phi": true, "Psi": true, "Omega": true,
}

// Vars returns the free variable names of e.
func Vars(e Expr) []string {
	m := map[string]bool{}
	e.vars(m)
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Eval evaluates e with the given variable values (missing variables give NaN).
func Eval(e Expr, env map[string]complex128) complex128 { return e.eval(env) }
