package grader

import (
	"math"
	"strconv"
	"strings"
	"unicode"
)

// parsePyFloat parses s like Python's float(): surrounding whitespace is ignored, underscores are
// allowed between digits, "inf", "infinity" and "nan" are accepted, hexadecimal is not.
func parsePyFloat(s string) (float64, bool) {
	s = strings.TrimFunc(s, unicode.IsSpace)
	if s == "" || strings.ContainsAny(s, "xXpP") {
		return 0, false
	}
	if strings.Contains(s, "_") {
		r := []rune(s)
		for i, c := range r {
			if c != '_' {
				continue
			}
			if i == 0 || i == len(r)-1 || !isASCIIDigit(r[i-1]) || !isASCIIDigit(r[i+1]) {
				return 0, false
			}
		}
		s = strings.ReplaceAll(s, "_", "")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		// Python accepts out-of-range literals as +-inf; strconv reports ErrRange with ±Inf.
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return f, true
		}
		return 0, false
	}
	return f, true
}

func isASCIIDigit(r rune) bool { return r >= '0' && r <= '9' }

// pyIntCanonical mimics str(int(s)) of Python for a decimal integer literal: optional whitespace,
// optional sign, digits (underscores between digits allowed). ok is false where Python would raise.
func pyIntCanonical(s string) (string, bool) {
	s = strings.TrimFunc(s, unicode.IsSpace)
	neg := false
	if strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" {
		return "", false
	}
	var digits []rune
	r := []rune(s)
	for i, c := range r {
		switch {
		case c == '_':
			if i == 0 || i == len(r)-1 || r[i+1] == '_' {
				return "", false
			}
		case unicode.IsDigit(c):
			digits = append(digits, rune('0'+digitValue(c)))
		default:
			return "", false
		}
	}
	out := strings.TrimLeft(string(digits), "0")
	if out == "" {
		return "0", true
	}
	if neg {
		out = "-" + out
	}
	return out, true
}

// digitValue returns the decimal value of a Unicode decimal digit (category Nd).
func digitValue(c rune) int {
	if c >= '0' && c <= '9' {
		return int(c - '0')
	}
	// Unicode Nd digits come in contiguous runs of ten starting at a zero.
	for z := c; z > c-10; z-- {
		if !unicode.IsDigit(z - 1) {
			return int(c - z)
		}
	}
	return int(c-'0') % 10
}

// pyFloatRepr formats f like Python's repr(float).
func pyFloatRepr(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	a := math.Abs(f)
	if a != 0 && (a < 1e-4 || a >= 1e16) {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		// Python writes at least two exponent digits: 1e-05, 1e+16.
		mant, exp, _ := strings.Cut(s, "e")
		sign := exp[:1]
		exp = exp[1:]
		if len(exp) < 2 {
			exp = "0" + exp
		}
		return mant + "e" + sign + exp
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// isClose is Python's math.isclose(a, b, rel_tol=1e-4) with abs_tol=0.
func isClose(a, b float64) bool {
	if a == b {
		return true
	}
	if math.IsInf(a, 0) || math.IsInf(b, 0) || math.IsNaN(a) || math.IsNaN(b) {
		return false
	}
	return math.Abs(a-b) <= 1e-4*math.Max(math.Abs(a), math.Abs(b))
}
