package grader

import (
	"fmt"
	"strconv"
)

// Expr is a parsed LaTeX expression that can be evaluated numerically.
type Expr interface {
	eval(env map[string]complex128) complex128
	vars(into map[string]bool)
}

// maxParseDepth bounds the nesting depth of parsed expressions.
const maxParseDepth = 200

type parser struct {
	toks  []token
	pos   int
	depth int
}

// ParseLatex parses a LaTeX math expression: numbers, single-letter variables (with subscripts),
// Greek letters, \pi, + - * / ^, \cdot, \times, \div, implicit multiplication, \frac, \sqrt[n],
// \binom, !, |x|, parentheses/brackets/braces and the usual functions (\sin, \cos, \tan, \cot,
// \sec, \csc, their inverses and hyperbolic forms, \ln, \log, \log_b, \exp). Anything else
// (text, relations, sets, \infty, matrices) is an error.
func ParseLatex(s string) (Expr, error) {
	toks, err := lexLatex(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("latex: empty expression")
	}
	p := &parser{toks: toks}
	e, err := p.parseAdd()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("latex: unexpected %q at token %d", p.toks[p.pos].text, p.pos)
	}
	return e, nil
}

func (p *parser) peek() (token, bool) {
	if p.pos >= len(p.toks) {
		return token{}, false
	}
	return p.toks[p.pos], true
}

func (p *parser) isSym(s string) bool {
	t, ok := p.peek()
	return ok && t.kind == tokSym && t.text == s
}

func (p *parser) isCmd(names ...string) bool {
	t, ok := p.peek()
	if !ok || t.kind != tokCmd {
		return false
	}
	for _, n := range names {
		if t.text == n {
			return true
		}
	}
	return false
}

func (p *parser) expectSym(s string) error {
	if !p.isSym(s) {
		if t, ok := p.peek(); ok {
			return fmt.Errorf("latex: expected %q, found %q", s, t.text)
		}
		return fmt.Errorf("latex: expected %q at end", s)
	}
	p.pos++
	return nil
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxParseDepth {
		return fmt.Errorf("latex: nesting deeper than %d", maxParseDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

func (p *parser) parseAdd() (Expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	left, err := p.parseMul()
	if err != nil {
		return nil, err
	}
	for p.isSym("+") || p.isSym("-") {
		op := p.toks[p.pos].text
		p.pos++
		right, err := p.parseMul()
		if err != nil {
			return nil, err
		}
		left = &binExpr{op: op[0], l: left, r: right}
	}
	return left, nil
}

func (p *parser) parseMul() (Expr, error) {
	left, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isSym("*") || p.isCmd("cdot", "times", "ast"):
			p.pos++
			right, err := p.parseUnary()
			if err != nil {
				return nil, err
			}
			left = &binExpr{op: '*', l: left, r: right}
		case p.isSym("/") || p.isCmd("div"):
			p.pos++
			right, err := p.parseUnary()
			if err != nil {
				return nil, err
			}
			left = &binExpr{op: '/', l: left, r: right}
		case p.startsFactor():
			right, err := p.parsePower()
			if err != nil {
				return nil, err
			}
			left = &binExpr{op: '*', l: left, r: right}
		default:
			return left, nil
		}
	}
}

// valueCmds are commands that start a factor.
var valueCmds = map[string]bool{
	"frac": true, "dfrac": true, "tfrac": true, "cfrac": true, "sqrt": true, "binom": true,
	"dbinom": true, "tbinom": true, "pi": true,
}

func (p *parser) startsFactor() bool {
	t, ok := p.peek()
	if !ok {
		return false
	}
	switch t.kind {
	case tokNum, tokLetter:
		return true
	case tokCmd:
		return valueCmds[t.text] || funcs[t.text] != nil || greek[t.text] || t.text == "log" || t.text == "lfloor" ||
			t.text == "lceil"
	}
	return t.text == "(" || t.text == "[" || t.text == "{"
}

func (p *parser) startsFunc() bool {
	t, ok := p.peek()
	return ok && t.kind == tokCmd && (funcs[t.text] != nil || t.text == "log")
}

func (p *parser) parseUnary() (Expr, error) {
	if p.isSym("-") || p.isSym("+") {
		neg := p.toks[p.pos].text == "-"
		p.pos++
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer p.leave()
		e, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		if neg {
			return &negExpr{e}, nil
		}
		return e, nil
	}
	return p.parsePower()
}

func (p *parser) parsePower() (Expr, error) {
	base, err := p.parsePostfix()
	if err != nil {
		return nil, err
	}
	if p.isSym("^") {
		p.pos++
		exp, err := p.parseScript()
		if err != nil {
			return nil, err
		}
		e := Expr(&binExpr{op: '^', l: base, r: exp})
		for p.isSym("!") {
			p.pos++
			e = &factExpr{e}
		}
		return e, nil
	}
	return base, nil
}

// parseScript reads a superscript: a brace group, or one atom (a whole number, a letter, a
// command atom), optionally negated.
func (p *parser) parseScript() (Expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	if p.isSym("-") {
		p.pos++
		e, err := p.parseScript()
		if err != nil {
			return nil, err
		}
		return &negExpr{e}, nil
	}
	if p.isSym("{") {
		return p.parseGroup("{", "}")
	}
	return p.parsePostfix()
}

func (p *parser) parsePostfix() (Expr, error) {
	e, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	for p.isSym("!") {
		p.pos++
		e = &factExpr{e}
	}
	return e, nil
}

func (p *parser) parseGroup(open, close string) (Expr, error) {
	if err := p.expectSym(open); err != nil {
		return nil, err
	}
	e, err := p.parseAdd()
	if err != nil {
		return nil, err
	}
	if err := p.expectSym(close); err != nil {
		return nil, err
	}
	return e, nil
}

// parseArg reads a macro argument: a brace group or a single character/atom (\frac12).
func (p *parser) parseArg() (Expr, error) {
	t, ok := p.peek()
	if !ok {
		return nil, fmt.Errorf("latex: missing argument")
	}
	if t.kind == tokSym && t.text == "{" {
		return p.parseGroup("{", "}")
	}
	if t.kind == tokNum && len(t.text) > 1 {
		// LaTeX reads a single digit; leave the rest of the number in place.
		p.toks[p.pos].text = t.text[1:]
		v, _ := strconv.ParseFloat(t.text[:1], 64)
		return numExpr(v), nil
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	return p.parsePrimary()
}

func (p *parser) parsePrimary() (Expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	t, ok := p.peek()
	if !ok {
		return nil, fmt.Errorf("latex: unexpected end")
	}
	switch t.kind {
	case tokNum:
		p.pos++
		v, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return nil, fmt.Errorf("latex: bad number %q", t.text)
		}
		return numExpr(v), nil
	case tokLetter:
		p.pos++
		if t.text == "π" {
			return constExpr("pi"), nil
		}
		return p.withSubscript(t.text)
	case tokSym:
		switch t.text {
		case "(":
			return p.parseGroup("(", ")")
		case "[":
			return p.parseGroup("[", "]")
		case "{":
			return p.parseGroup("{", "}")
		case "|":
			e, err := p.parseGroup("|", "|")
			if err != nil {
				return nil, err
			}
			return &funcExpr{name: "abs", args: []Expr{e}}, nil
		}
		return nil, fmt.Errorf("latex: unexpected %q", t.text)
	}
	// command
	p.pos++
	switch name := t.text; {
	case name == "frac" || name == "dfrac" || name == "tfrac" || name == "cfrac":
		num, err := p.parseArg()
		if err != nil {
			return nil, err
		}
		den, err := p.parseArg()
		if err != nil {
			return nil, err
		}
		return &binExpr{op: '/', l: num, r: den}, nil
	case name == "binom" || name == "dbinom" || name == "tbinom":
		n, err := p.parseArg()
		if err != nil {
			return nil, err
		}
		k, err := p.parseArg()
		if err != nil {
			return nil, err
		}
		return &funcExpr{name: "binom", args: []Expr{n, k}}, nil
	case name == "sqrt":
		var index Expr = numExpr(2)
		if p.isSym("[") {
			var err error
			if index, err = p.parseGroup("[", "]"); err != nil {
				return nil, err
			}
		}
		arg, err := p.parseArg()
		if err != nil {
			return nil, err
		}
		return &funcExpr{name: "root", args: []Expr{arg, index}}, nil
	case name == "pi":
		return constExpr("pi"), nil
	case name == "lfloor" || name == "lceil":
		closer, fn := "rfloor", "floor"
		if name == "lceil" {
			closer, fn = "rceil", "ceil"
		}
		e, err := p.parseAdd()
		if err != nil {
			return nil, err
		}
		if !p.isCmd(closer) {
			return nil, fmt.Errorf("latex: expected \\%s", closer)
		}
		p.pos++
		return &funcExpr{name: fn, args: []Expr{e}}, nil
	case greek[name]:
		return p.withSubscript(`\` + name)
	case name == "log" || funcs[name] != nil:
		return p.parseFunc(name)
	}
	return nil, fmt.Errorf("latex: unsupported command \\%s", t.text)
}

// withSubscript reads an optional subscript that becomes part of the variable name.
func (p *parser) withSubscript(name string) (Expr, error) {
	if !p.isSym("_") {
		return varExpr(name), nil
	}
	p.pos++
	start := p.pos
	if p.isSym("{") {
		depth := 0
		for p.pos < len(p.toks) {
			t := p.toks[p.pos]
			p.pos++
			if t.kind == tokSym && t.text == "{" {
				depth++
			} else if t.kind == tokSym && t.text == "}" {
				depth--
				if depth == 0 {
					break
				}
			}
		}
		if depth != 0 {
			return nil, fmt.Errorf("latex: unclosed subscript")
		}
	} else if p.pos < len(p.toks) {
		p.pos++
	} else {
		return nil, fmt.Errorf("latex: missing subscript")
	}
	return varExpr(name + "_" + tokensText(p.toks[start:p.pos])), nil
}

// parseFunc reads \name[^power][_base] argument, where the argument is a parenthesized group or
// an implicit product without explicit operators (\sin 2x = sin(2x)).
func (p *parser) parseFunc(name string) (Expr, error) {
	var power, base Expr
	for p.isSym("^") || p.isSym("_") {
		isPow := p.isSym("^")
		p.pos++
		e, err := p.parseScript()
		if err != nil {
			return nil, err
		}
		if isPow {
			power = e
		} else {
			base = e
		}
	}
	var arg Expr
	var err error
	if p.isSym("(") {
		arg, err = p.parseGroup("(", ")")
		if err == nil && p.isSym("^") && power == nil {
			// \sin(x)^2 binds the power to the function value, as sympy does.
			p.pos++
			power, err = p.parseScript()
		}
	} else {
		arg, err = p.parseImplicitProduct()
	}
	if err != nil {
		return nil, err
	}
	var e Expr
	if name == "log" && base != nil {
		e = &binExpr{op: '/', l: &funcExpr{name: "ln", args: []Expr{arg}}, r: &funcExpr{name: "ln", args: []Expr{base}}}
	} else {
		if name == "log" {
			name = "ln"
		}
		e = &funcExpr{name: name, args: []Expr{arg}}
	}
	if power != nil {
		e = &binExpr{op: '^', l: e, r: power}
	}
	return e, nil
}

func (p *parser) parseImplicitProduct() (Expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	if p.isSym("-") {
		p.pos++
		e, err := p.parseImplicitProduct()
		if err != nil {
			return nil, err
		}
		return &negExpr{e}, nil
	}
	e, err := p.parsePower()
	if err != nil {
		return nil, err
	}
	for p.startsFactor() && !p.startsFunc() {
		r, err := p.parsePower()
		if err != nil {
			return nil, err
		}
		e = &binExpr{op: '*', l: e, r: r}
	}
	return e, nil
}
