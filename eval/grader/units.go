package grader

import (
	"regexp"
	"strings"
)

// unitTexts are the unit words removed by the Qwen2.5-Math strip_string (mainly from MathQA).
// They are regular-expression fragments there ("." matches any character) and are kept so.
var unitTexts = []string{
	"east", "degree", "mph", "kmph", "ft", "m sqaure", " m east", "sq m", "deg", "mile", "q .",
	"monkey", "prime", "ratio", "profit of rs", "rd", "o", "gm", "p . m", "lb", "tile", "per", "dm",
	"lt", "gain", "ab", "way", "west", "a .", "b .", "c .", "d .", "e .", "f .", "g .", "h .", "t",
	"a", "h", "no change", "men", "soldier", "pie", "bc", "excess", "st", "inches", "noon",
	"percent", "by", "gal", "kmh", "c", "acre", "rise", "a . m", "th", "π r 2", "sq", "mark", "l",
	"toy", "coin", "sq . m", "gallon", "° f", "profit", "minw", "yr", "women", "feet", "am", "pm",
	"hr", "cu cm", "square", "v â € ™", "are", "rupee", "rounds", "cubic", "cc", "mtr", "s", "ohm",
	"number", "kmph", "day", "hour", "minute", "min", "second", "man", "woman", "sec", "cube", "mt",
	"sq inch", "mp", "∏ cm ³", "hectare", "more", "sec", "unit", "cu . m", "cm 2", "rs .", "rs",
	"kg", "g", "month", "km", "m", "cm", "mm", "apple", "liter", "loss", "yard", "pure", "year",
	"increase", "decrease", "d", "less", "Surface", "litre", "pi sq m", "s .", "metre", "meter",
	"inch",
}

// unitRemover holds the compiled unit patterns; it is read-only after construction.
type unitRemover struct {
	res  []*regexp.Regexp
	lits []string // a literal every match must contain (the text before the first "."), to skip work
}

// newUnitRemover compiles `(^|\W)unit($|\W)` for every unit text and its plural, in the order
// of the Python list (plurals appended after all singulars). \W is Unicode-aware as in Python.
func newUnitRemover() *unitRemover {
	all := append(append([]string{}, unitTexts...), plural(unitTexts)...)
	u := &unitRemover{}
	for _, t := range all {
		u.res = append(u.res, regexp.MustCompile(`(^|[^\p{L}\p{N}_])`+t+`($|[^\p{L}\p{N}_])`))
		lit, _, _ := strings.Cut(t, ".")
		u.lits = append(u.lits, lit)
	}
	return u
}

func plural(ts []string) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t + "s"
	}
	return out
}

// remove applies the patterns twice, skipping any replacement that would empty the string.
func (u *unitRemover) remove(s string) string {
	for range 2 {
		for i, re := range u.res {
			if !strings.Contains(s, u.lits[i]) {
				continue
			}
			if r := re.ReplaceAllString(s, "${1}${2}"); r != "" {
				s = r
			}
		}
	}
	return s
}

// units is the package's immutable unit remover.
var units = newUnitRemover()
