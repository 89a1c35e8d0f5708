package grader

import (
	"regexp"
	"strings"
)

// InvalidAnswer is what lm-evaluation-harness's regex filter yields when nothing matches.
const InvalidAnswer = "[invalid]"

var (
	reGSMStrict   = regexp.MustCompile(`#### (\-?[0-9\.\,]+)`)
	reGSMCoT      = regexp.MustCompile(`The answer is (\-?[0-9\.\,]+).`)
	reGSMFlexible = regexp.MustCompile(`(-?[$0-9.,]{2,})|(-?[0-9]+)`)
	// regexes_to_ignore of the gsm8k tasks, applied to prediction and reference before exact match.
	reGSMIgnore = []*regexp.Regexp{
		regexp.MustCompile(`,`),
		regexp.MustCompile(`\$`),
		regexp.MustCompile(`(?s).*#### `),
		regexp.MustCompile(`\.$`),
	}
)

// GSM8KStrict is lm-eval's "strict-match" filter of the gsm8k task: the first "#### N".
func GSM8KStrict(response string) string {
	if m := reGSMStrict.FindStringSubmatch(response); m != nil {
		return strings.TrimSpace(m[1])
	}
	return InvalidAnswer
}

// GSM8KCoTStrict is the "strict-match" filter of the gsm8k_cot task: the first "The answer is N.".
func GSM8KCoTStrict(response string) string {
	if m := reGSMCoT.FindStringSubmatch(response); m != nil {
		return strings.TrimSpace(m[1])
	}
	return InvalidAnswer
}

// GSM8KFlexible is lm-eval's "flexible-extract" filter: the last match of
// (-?[$0-9.,]{2,})|(-?[0-9]+), taking the non-empty group.
func GSM8KFlexible(response string) string {
	ms := reGSMFlexible.FindAllStringSubmatch(response, -1)
	if len(ms) == 0 {
		return InvalidAnswer
	}
	m := ms[len(ms)-1]
	for _, g := range m[1:] {
		if g != "" {
			return strings.TrimSpace(g)
		}
	}
	return InvalidAnswer
}

// GSM8KNormalize applies the exact-match normalization of the gsm8k tasks: commas, "$", everything
// up to the last "#### " and a trailing "." are removed, and the text is lower-cased.
func GSM8KNormalize(s string) string {
	for _, re := range reGSMIgnore {
		s = re.ReplaceAllString(s, "")
	}
	return strings.ToLower(s)
}

// GSM8KExactMatch compares an extracted prediction with a gold answer (the full GSM8K answer text
// or just the number) after GSM8KNormalize, as lm-eval's exact_match with ignore_case does.
func GSM8KExactMatch(pred, gold string) bool {
	return GSM8KNormalize(pred) == GSM8KNormalize(gold)
}
