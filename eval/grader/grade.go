package grader

import "fmt"

// Method selects how a response is graded.
type Method string

const (
	// MethodQwen is the Qwen2.5-Math extraction (ExtractAnswer) and equivalence (MathEqual).
	MethodQwen Method = "qwen"
	// MethodStrict is lm-eval gsm8k strict-match ("#### N") with exact match.
	MethodStrict Method = "strict"
	// MethodCoTStrict is lm-eval gsm8k_cot strict-match ("The answer is N.") with exact match.
	MethodCoTStrict Method = "cot-strict"
	// MethodFlexible is lm-eval flexible-extract (last number) with exact match.
	MethodFlexible Method = "flexible"
)

// Methods lists the valid grading methods.
func Methods() []Method { return []Method{MethodQwen, MethodStrict, MethodCoTStrict, MethodFlexible} }

// ParseMethod validates a method name; "" means MethodQwen.
func ParseMethod(s string) (Method, error) {
	if s == "" {
		return MethodQwen, nil
	}
	for _, m := range Methods() {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("unknown grading method %q (want one of %v)", s, Methods())
}

// Result is the outcome of grading one response.
type Result struct {
	Pred    string // extracted (and normalized) prediction
	Gold    string // normalized reference answer
	Correct bool
}

// Grade grades response against the reference answer gold of the named benchmark. For MethodQwen
// the gold is normalized with NormalizeGold (so a full GSM8K answer ending in "#### N" works) and
// the prediction with ExtractAnswer; the lm-eval methods compare with GSM8KExactMatch.
func Grade(benchmark string, method Method, response, gold string) Result {
	switch method {
	case MethodStrict, MethodCoTStrict, MethodFlexible:
		var pred string
		switch method {
		case MethodStrict:
			pred = GSM8KStrict(response)
		case MethodCoTStrict:
			pred = GSM8KCoTStrict(response)
		default:
			pred = GSM8KFlexible(response)
		}
		g := GSM8KNormalize(gold)
		return Result{Pred: pred, Gold: g, Correct: GSM8KNormalize(pred) == g}
	}
	g := NormalizeGold(gold, benchmark)
	pred := ExtractAnswer(response, benchmark)
	return Result{Pred: pred, Gold: g, Correct: MathEqual(pred, g)}
}
