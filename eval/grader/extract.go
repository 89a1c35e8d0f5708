package grader

import (
	"regexp"
	"strings"
)

var (
	reLastNumber = regexp.MustCompile(`-?\d*\.?\d+`)
	reNewlineWS  = regexp.MustCompile(`\n\s*`)
)

// Benchmarks whose answers keep their units (Qwen's STRIP_EXCEPTIONS).
func skipUnits(benchmark string) bool {
	return benchmark == "minerva_math" || benchmark == "carp_en"
}

// ExtractAnswer returns the normalized final answer of a model response the way the Qwen2.5-Math
// evaluation does (extract_answer followed by the second strip_string of run_execute):
//
//  1. Minerva style: the text between "final answer is $" and "$. I hope";
//  2. else the content of the last "boxed" (\boxed{...} with brace matching, or \boxed X up to "$");
//  3. else the text after the last "he answer is";
//  4. else the text after the last "final answer is";
//  5. else the last number (commas removed), or "" if there is none.
//
// Then newlines (and following spaces) are removed, a leading ":" and a trailing "." and "/" are
// dropped, and StripString is applied (units kept for minerva_math).
func ExtractAnswer(response, benchmark string) string {
	pred, ok := extractRaw(response)
	if !ok {
		return ""
	}
	skip := skipUnits(benchmark)
	pred = reNewlineWS.ReplaceAllString(pred, "")
	pred = strings.TrimPrefix(pred, ":")
	pred = strings.TrimSuffix(pred, ".")
	pred = strings.TrimSuffix(pred, "/")
	pred = StripString(pred, skip)
	return StripString(pred, skip)
}

// ExtractGoldFromSolution returns the reference answer contained in a worked solution (MATH and
// Minerva rows carry no separate answer): Qwen's parse_ground_truth applies extract_answer once.
func ExtractGoldFromSolution(solution, benchmark string) string {
	pred, ok := extractRaw(solution)
	if !ok {
		return ""
	}
	pred = reNewlineWS.ReplaceAllString(pred, "")
	pred = strings.TrimPrefix(pred, ":")
	pred = strings.TrimSuffix(pred, ".")
	pred = strings.TrimSuffix(pred, "/")
	return StripString(pred, skipUnits(benchmark))
}

// extractRaw performs the ordered extraction; ok is false when a "boxed" is the very last text
// (Qwen returns "" at once, without normalization).
func extractRaw(s string) (string, bool) {
	s = strings.ReplaceAll(s, "\u043a\u0438", "")
	switch {
	case strings.Contains(s, "final answer is $") && strings.Contains(s, "$. I hope"):
		_, tmp, _ := strings.Cut(s, "final answer is $")
		pred, _, _ := strings.Cut(tmp, "$. I hope")
		return strings.TrimSpace(pred), true
	case strings.Contains(s, "boxed"):
		ans := s[strings.LastIndex(s, "boxed")+len("boxed"):]
		if ans == "" {
			return "", false
		}
		return boxedContent(ans), true
	case strings.Contains(s, "he answer is"):
		return strings.TrimSpace(s[strings.LastIndex(s, "he answer is")+len("he answer is"):]), true
	case strings.Contains(s, "final answer is"):
		return strings.TrimSpace(s[strings.LastIndex(s, "final answer is")+len("final answer is"):]), true
	}
	nums := reLastNumber.FindAllString(strings.ReplaceAll(s, ",", ""), -1)
	if len(nums) == 0 {
		return "", true
	}
	return nums[len(nums)-1], true
}

// boxedContent reads the argument that follows "boxed": a brace group (matched; an unclosed group
// runs to the end) or, without a brace, the text up to the next "$".
func boxedContent(ans string) string {
	if ans[0] != '{' {
		before, _, _ := strings.Cut(ans, "$")
		return strings.TrimSpace(before)
	}
	depth := 1
	var b strings.Builder
	for _, c := range ans[1:] {
		switch c {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return b.String()
			}
		}
		b.WriteRune(c)
	}
	return b.String()
}

// LastBoxed returns the content of the last \boxed{...} in s and whether there was one. It is a
// convenience for callers that want the raw (unnormalized) boxed text.
func LastBoxed(s string) (string, bool) {
	i := strings.LastIndex(s, "boxed")
	if i < 0 || i+len("boxed") >= len(s) {
		return "", false
	}
	return boxedContent(s[i+len("boxed"):]), true
}

// NormalizeGold prepares a reference answer as Qwen's parse_ground_truth does: a GSM8K-style
// answer keeps the text after the last "####"; OlympiadBench answers lose surrounding "$";
// then StripString (units kept, only \neq/\leq/\geq rewritten, for minerva_math).
func NormalizeGold(gold, benchmark string) string {
	if i := strings.LastIndex(gold, "####"); i >= 0 {
		gold = gold[i+len("####"):]
	}
	if benchmark == "olympiadbench" {
		gold = strings.Trim(gold, "$")
	}
	if skipUnits(benchmark) {
		r := strings.NewReplacer(`\neq`, `\ne`, `\leq`, `\le`, `\geq`, `\ge`)
		return r.Replace(gold)
	}
	return StripString(gold, false)
}
