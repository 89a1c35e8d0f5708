package grader

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

var (
	reArrayBegin  = regexp.MustCompile(`\\begin\{array\}\{.*?\}`)
	reArrayEnd    = regexp.MustCompile(`\\end\{array\}`)
	reTrailText   = regexp.MustCompile(`\\text\{.*?\}$`)
	reText        = regexp.MustCompile(`\\text\{(.*?)\}`)
	reMbox        = regexp.MustCompile(`\\mbox\{.*?\}`)
	reTrailZeros  = regexp.MustCompile(`(\d+)\.0*([^\d])`)
	reTrailZerosE = regexp.MustCompile(`(\d+)\.0*$`)
	reSqrtWord    = regexp.MustCompile(`\\sqrt([\p{L}\p{N}_]+)`)
)

// StripString is the LaTeX answer normalization of the Qwen2.5-Math grader (strip_string). With
// skipUnit the unit-word removal is skipped (Qwen does so for minerva_math). The steps, in order:
// trim, drop newlines and trailing ".", "\!" removed, array->pmatrix and bmatrix->pmatrix,
// tfrac/dfrac->frac, \neq/\leq/\geq->\ne/\le/\ge, \left/\right removed, \{ \} -> { }, a trailing
// \text{unit} removed, unit words removed, degrees removed, dollar signs and \( \) removed, word
// numbers converted, \text{x}->x, "x=", "x\in", "x\to" (also y, z) removed, \emptyset->{},
// (-\infty,\infty)->\mathbb{R}, percent signs removed, " ." and "{." get a leading 0, infinity,
// "and" and \mathbf removed, \mbox{...} removed, j->i when there is no i, trailing ".000" removed,
// a leading "." gets a 0, a short "k=" prefix removed, \sqrtX->\sqrt{X}, spaces removed,
// \fracab->\frac{a}{b}, and a/b->\frac{a}{b} for integers.
func StripString(s string, skipUnit bool) string {
	s = strings.TrimFunc(s, unicode.IsSpace)
	s = strings.ReplaceAll(s, "\n", "")
	s = strings.TrimRight(s, ".")
	s = strings.ReplaceAll(s, `\!`, "")

	s = reArrayBegin.ReplaceAllString(s, `\begin{pmatrix}`)
	s = reArrayEnd.ReplaceAllString(s, `\end{pmatrix}`)
	s = strings.ReplaceAll(s, "bmatrix", "pmatrix")

	s = strings.ReplaceAll(s, "tfrac", "frac")
	s = strings.ReplaceAll(s, "dfrac", "frac")
	s = strings.ReplaceAll(s, `\neq`, `\ne`)
	s = strings.ReplaceAll(s, `\leq`, `\le`)
	s = strings.ReplaceAll(s, `\geq`, `\ge`)

	s = strings.ReplaceAll(s, `\left`, "")
	s = strings.ReplaceAll(s, `\right`, "")
	s = strings.ReplaceAll(s, `\{`, "{")
	s = strings.ReplaceAll(s, `\}`, "}")

	if t := strings.TrimFunc(reTrailText.ReplaceAllString(s, ""), unicode.IsSpace); t != "" && t != s {
		s = t
	}
	if !skipUnit {
		s = units.remove(s)
	}

	s = strings.ReplaceAll(s, `^{\circ}`, "")
	s = strings.ReplaceAll(s, `^\circ`, "")

	s = strings.ReplaceAll(s, `\$`, "")
	s = strings.ReplaceAll(s, "$", "")
	s = strings.ReplaceAll(s, `\(`, "")
	s = strings.ReplaceAll(s, `\)`, "")

	s = convertWordNumber(s)

	s = reText.ReplaceAllString(s, "${1}")
	for _, k := range []string{"x=", "y=", "z=", `x\in`, `y\in`, `z\in`, `x\to`, `y\to`, `z\to`} {
		s = strings.ReplaceAll(s, k, "")
	}
	s = strings.ReplaceAll(s, `\emptyset`, "{}")
	s = strings.ReplaceAll(s, `(-\infty,\infty)`, `\mathbb{R}`)

	s = strings.ReplaceAll(s, `\%`, "")
	s = strings.ReplaceAll(s, "%", "")

	s = strings.ReplaceAll(s, " .", " 0.")
	s = strings.ReplaceAll(s, "{.", "{0.")

	s = strings.ReplaceAll(s, "infinity", `\infty`)
	if !strings.Contains(s, `\infty`) {
		s = strings.ReplaceAll(s, "inf", `\infty`)
	}
	s = strings.ReplaceAll(s, `+\inity`, `\infty`)

	s = strings.ReplaceAll(s, "and", "")
	s = strings.ReplaceAll(s, `\mathbf`, "")
	s = reMbox.ReplaceAllString(s, "")

	if strings.Contains(s, "j") && !strings.Contains(s, "i") {
		s = strings.ReplaceAll(s, "j", "i")
	}

	s = reTrailZeros.ReplaceAllString(s, "${1}${2}")
	s = reTrailZerosE.ReplaceAllString(s, "${1}")

	if s == "" {
		return s
	}
	if s[0] == '.' {
		s = "0" + s
	}
	if parts := strings.Split(s, "="); len(parts) == 2 && utf8.RuneCountInString(parts[0]) <= 2 {
		s = parts[1]
	}
	s = reSqrtWord.ReplaceAllString(s, `\sqrt{${1}}`)
	s = strings.ReplaceAll(s, " ", "")
	s = fixFracs(s)
	s = fixASlashB(s)
	return s
}

// fixFracs rewrites \frac12 and \frac1b to \frac{1}{2} and \frac{1}{b} (_fix_fracs).
func fixFracs(s string) string {
	subs := strings.Split(s, `\frac`)
	var b strings.Builder
	b.WriteString(subs[0])
	for _, sub := range subs[1:] {
		b.WriteString(`\frac`)
		if strings.HasPrefix(sub, "{") {
			b.WriteString(sub)
			continue
		}
		r := []rune(sub)
		if len(r) < 2 {
			return s
		}
		x, y := string(r[0]), string(r[1])
		rest := string(r[2:])
		if y != "{" {
			b.WriteString("{" + x + "}{" + y + "}" + rest)
		} else {
			b.WriteString("{" + x + "}" + y + rest)
		}
	}
	return b.String()
}

// fixASlashB rewrites "a/b" with integer a and b (or parts containing sqrt) to \frac{a}{b}
// (_fix_a_slash_b).
func fixASlashB(s string) string {
	parts := strings.Split(s, "/")
	if len(parts) != 2 {
		return s
	}
	a, b := parts[0], parts[1]
	if !strings.Contains(a, "sqrt") {
		v, ok := pyIntCanonical(a)
		if !ok {
			return s
		}
		a = v
	}
	if !strings.Contains(b, "sqrt") {
		v, ok := pyIntCanonical(b)
		if !ok {
			return s
		}
		b = v
	}
	if s != a+"/"+b {
		return s
	}
	return `\frac{` + a + "}{" + b + "}"
}
