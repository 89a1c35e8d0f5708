package grader

import (
	"regexp"
	"strings"
	"unicode"
)

var (
	reChoice     = regexp.MustCompile(`\b(A|B|C|D|E)\b`)
	reBracketed  = regexp.MustCompile(`^(\(|\[).+(\)|\])`)
	reBraceComma = regexp.MustCompile(`\{.*,.*\}`)
)

// maxEqualDepth bounds the recursion of MathEqual over tuple parts and equation sides.
const maxEqualDepth = 32

// MathEqual reports whether prediction and reference denote the same answer, following the
// math_equal of the Qwen2.5-Math grader with include_percentage and is_close set:
//
//  1. case-insensitive equality of the trimmed strings;
//  2. a reference A-E matches the multiple-choice letter found in the prediction;
//  3. if both parse as numbers (commas ignored, a trailing "%" or "\%" divides by 100): equal iff
//     the prediction is within relative tolerance 1e-4 of reference, reference/100 or
//     reference*100 (no further rule is tried);
//  4. an empty prediction is wrong;
//  5. equality after removing the outer brackets and all {}() characters;
//  6. tuples/intervals "(a,b)" / "[a,b]": same number of comma-separated parts, pairwise MathEqual;
//  7. pmatrix/bmatrix: same shape, entries pairwise MathEqual;
//  8. two equations "l=r": l-(r) equals the other side's difference up to sign; an equation with a
//     short left side ("x=3") against a plain value: compare the right side;
//  9. symbolic equality: both parse as LaTeX expressions and agree numerically (see SymbolicEqual).
func MathEqual(prediction, reference string) bool {
	return mathEqual(prediction, reference, 0)
}

func mathEqual(prediction, reference string, depth int) bool {
	if depth > maxEqualDepth {
		return false
	}
	if strings.ToLower(pyStrip(prediction)) == strings.ToLower(pyStrip(reference)) {
		return true
	}
	if len(reference) == 1 && strings.Contains("ABCDE", reference) && choiceAnswerClean(prediction) == reference {
		return true
	}
	if p, ok := parseDigits(prediction); ok {
		if r, ok := parseDigits(reference); ok {
			for _, item := range []float64{r / 100, r, r * 100} {
				if isClose(p, item) {
					return true
				}
			}
			return false
		}
	}
	if prediction == "" {
		return false
	}
	reference = pyStrip(reference)
	prediction = pyStrip(prediction)

	if strings.Contains(prediction, "pmatrix") && !strings.Contains(reference, "pmatrix") {
		reference = strToPmatrix(reference)
	}

	predStr, refStr := prediction, reference
	if (strings.HasPrefix(prediction, "[") && strings.HasSuffix(prediction, "]") && !strings.HasPrefix(reference, "(")) ||
		(strings.HasPrefix(prediction, "(") && strings.HasSuffix(prediction, ")") && !strings.HasPrefix(reference, "[")) {
		predStr = strings.Trim(predStr, "[]()")
		refStr = strings.Trim(refStr, "[]()")
	}
	rm := strings.NewReplacer("{", "", "}", "", "(", "", ")", "")
	predStr, refStr = rm.Replace(predStr), rm.Replace(refStr)
	if strings.ToLower(predStr) == strings.ToLower(refStr) {
		return true
	}

	if reBracketed.MatchString(prediction) && reBracketed.MatchString(reference) {
		pp := strings.Split(sliceRunes(prediction, 1, -1), ",")
		rp := strings.Split(sliceRunes(reference, 1, -1), ",")
		if len(pp) == len(rp) {
			all := true
			for i := range pp {
				if !mathEqual(pp[i], rp[i], depth+1) {
					all = false
					break
				}
			}
			if all {
				return true
			}
		}
	}

	if isMatrix(prediction) && isMatrix(reference) && matricesEqual(prediction, reference, depth) {
		return true
	}

	pe, re := strings.Count(prediction, "="), strings.Count(reference, "=")
	switch {
	case pe == 1 && re == 1:
		pl, pr, _ := strings.Cut(prediction, "=")
		rl, rr, _ := strings.Cut(reference, "=")
		pred := pyStrip(pl) + " - (" + pyStrip(pr) + ")"
		ref := pyStrip(rl) + " - (" + pyStrip(rr) + ")"
		if SymbolicEqual(pred, ref) || SymbolicEqual("-("+pred+")", ref) {
			return true
		}
	case pe == 1 && runeLen(pyStrip(before(prediction, "="))) <= 2 && re == 0:
		if mathEqual(after(prediction, "="), reference, depth+1) {
			return true
		}
	case re == 1 && runeLen(pyStrip(before(reference, "="))) <= 2 && pe == 0:
		if mathEqual(prediction, after(reference, "="), depth+1) {
			return true
		}
	}
	return SymbolicEqual(prediction, reference)
}

// parseDigits is the grader's parse_digits: commas removed, then a float, or a percentage.
func parseDigits(s string) (float64, bool) {
	s = strings.ReplaceAll(s, ",", "")
	if f, ok := parsePyFloat(s); ok {
		return f, true
	}
	if strings.HasSuffix(s, "%") {
		s = strings.TrimSuffix(strings.TrimSuffix(s, "%"), `\`)
		if f, ok := parsePyFloat(s); ok {
			return f / 100, true
		}
	}
	return 0, false
}

// choiceAnswerClean extracts a multiple-choice letter the way the grader's choice_answer_clean does.
func choiceAnswerClean(pred string) string {
	pred = strings.Trim(pred, "\n")
	pred = strings.TrimRight(pred, ".")
	pred = strings.TrimRight(pred, "/")
	pred = strings.Trim(pred, " ")
	pred = strings.TrimLeft(pred, ":")
	if m := reChoice.FindAllString(strings.ToUpper(pred), -1); len(m) > 0 {
		pred = m[len(m)-1]
	} else {
		pred = strings.Trim(pyStrip(pred), ".")
	}
	pred = strings.TrimRight(pred, ".")
	return strings.TrimRight(pred, "/")
}

// strToPmatrix turns "{a,b}" groups into pmatrix text (str_to_pmatrix; commas become one "\").
func strToPmatrix(s string) string {
	s = pyStrip(s)
	var out []string
	for _, m := range reBraceComma.FindAllString(s, -1) {
		m = strings.Trim(m, "{}")
		out = append(out, `\begin{pmatrix}`+strings.ReplaceAll(m, ",", `\`)+`\end{pmatrix}`)
	}
	return strings.Join(out, ", ")
}

func isMatrix(s string) bool {
	return (strings.HasPrefix(s, `\begin{pmatrix}`) || strings.HasPrefix(s, `\begin{bmatrix}`)) &&
		(strings.HasSuffix(s, `\end{pmatrix}`) || strings.HasSuffix(s, `\end{bmatrix}`))
}

func matrixRows(s string) []string {
	b, e := len(`\begin{pmatrix}`), len(s)-len(`\end{pmatrix}`)
	if e < b {
		return nil
	}
	var rows []string
	for _, line := range strings.Split(s[b:e], `\\`) {
		if l := pyStrip(line); l != "" {
			rows = append(rows, l)
		}
	}
	return rows
}

func matricesEqual(pred, ref string, depth int) bool {
	pl, rl := matrixRows(pred), matrixRows(ref)
	if len(pl) != len(rl) {
		return false
	}
	for i := range pl {
		pp, rp := strings.Split(pl[i], "&"), strings.Split(rl[i], "&")
		if len(pp) != len(rp) {
			return false
		}
		for j := range pp {
			if !mathEqual(pp[j], rp[j], depth+1) {
				return false
			}
		}
	}
	return true
}

// pyStrip is Python's str.strip() without arguments.
func pyStrip(s string) string { return strings.TrimFunc(s, unicode.IsSpace) }

func runeLen(s string) int { return len([]rune(s)) }

// sliceRunes is s[i:j] on code points with Python's negative-index semantics for j.
func sliceRunes(s string, i, j int) string {
	r := []rune(s)
	if j < 0 {
		j += len(r)
	}
	if i > len(r) {
		i = len(r)
	}
	if j < i {
		return ""
	}
	return string(r[i:j])
}

func before(s, sep string) string { b, _, _ := strings.Cut(s, sep); return b }
func after(s, sep string) string  { _, a, _ := strings.Cut(s, sep); return a }
