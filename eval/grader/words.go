package grader

import (
	"strconv"
	"strings"
	"unicode"
)

// numberWords is the English number vocabulary of the word2number package used by the
// Qwen2.5-Math grader ("point" marks the decimal part).
var numberWords = map[string]int{
	"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
	"eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
	"fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
	"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
	"hundred": 100, "thousand": 1000, "million": 1000000, "billion": 1000000000, "point": -1,
}

// convertWordNumber reproduces convert_word_number of the Qwen2.5-Math parser: the whole string is
// replaced by the number that word2number reads from it (an all-digit string is re-printed as an
// integer, so "025" becomes "25"; any number words anywhere are combined); where word2number
// raises, the string is returned unchanged.
func convertWordNumber(text string) string {
	s := strings.ToLower(strings.ReplaceAll(text, "-", " "))
	if s != "" && allRunes(s, isPyDigit) {
		if out, ok := pyIntCanonical(s); ok {
			return out
		}
		return text // int() raised (e.g. superscript digits)
	}
	var clean []string
	for _, w := range strings.Fields(s) {
		if _, ok := numberWords[w]; ok {
			clean = append(clean, w)
		}
	}
	if len(clean) == 0 {
		return text
	}
	count := func(w string) int {
		n := 0
		for _, c := range clean {
			if c == w {
				n++
			}
		}
		return n
	}
	if count("thousand") > 1 || count("million") > 1 || count("billion") > 1 || count("point") > 1 {
		return text
	}
	var decimals []string
	if i := indexOf(clean, "point"); i >= 0 {
		decimals = clean[i+1:]
		clean = clean[:i]
	}
	bi, mi, ti := indexOf(clean, "billion"), indexOf(clean, "million"), indexOf(clean, "thousand")
	if (ti > -1 && (ti < mi || ti < bi)) || (mi > -1 && mi < bi) {
		return text
	}
	total, ok := 0, true
	form := func(ws []string) int {
		v, good := numberFormation(ws)
		if !good {
			ok = false
		}
		return v
	}
	n := len(clean)
	if n == 1 {
		total += numberWords[clean[0]]
	} else if n > 1 {
		if bi > -1 {
			total += form(clean[:bi]) * 1000000000
		}
		if mi > -1 {
			if bi > -1 {
				total += form(clean[bi+1:mi]) * 1000000
			} else {
				total += form(clean[:mi]) * 1000000
			}
		}
		if ti > -1 {
			switch {
			case mi > -1:
				total += form(clean[mi+1:ti]) * 1000
			case bi > -1:
				total += form(clean[bi+1:ti]) * 1000
			default:
				total += form(clean[:ti]) * 1000
			}
		}
		switch {
		case ti > -1 && ti != n-1:
			total += form(clean[ti+1:])
		case mi > -1 && mi != n-1 && ti != n-1:
			total += form(clean[mi+1:])
		case bi > -1 && bi != n-1:
			total += form(clean[bi+1:])
		case ti == -1 && mi == -1 && bi == -1:
			total += form(clean)
		}
	}
	if !ok {
		return text
	}
	if len(decimals) > 0 {
		digits := ""
		for _, d := range decimals {
			v := numberWords[d]
			if v < 0 || v > 9 {
				digits = ""
				break
			}
			digits += strconv.Itoa(v)
		}
		if digits != "" {
			f, _ := strconv.ParseFloat("0."+digits, 64)
			return pyFloatRepr(float64(total) + f)
		}
	}
	return strconv.Itoa(total)
}

// numberFormation is word2number's number_formation; ok is false where Python would raise
// (an empty slice or a "point" value inside it).
func numberFormation(ws []string) (int, bool) {
	if len(ws) == 0 {
		return 0, false
	}
	nums := make([]int, len(ws))
	for i, w := range ws {
		nums[i] = numberWords[w]
		if nums[i] < 0 {
			return 0, false
		}
	}
	switch len(nums) {
	case 4:
		return nums[0]*nums[1] + nums[2] + nums[3], true
	case 3:
		return nums[0]*nums[1] + nums[2], true
	case 2:
		if nums[0] == 100 || nums[1] == 100 {
			return nums[0] * nums[1], true
		}
		return nums[0] + nums[1], true
	}
	return nums[0], true
}

func indexOf(xs []string, w string) int {
	for i, x := range xs {
		if x == w {
			return i
		}
	}
	return -1
}

func allRunes(s string, f func(rune) bool) bool {
	for _, r := range s {
		if !f(r) {
			return false
		}
	}
	return true
}

// isPyDigit approximates Python's str.isdigit: decimal digits plus superscript/subscript digits.
func isPyDigit(r rune) bool {
	return unicode.IsDigit(r) || strings.ContainsRune("⁰¹²³⁴⁵⁶⁷⁸⁹₀₁₂₃₄₅₆₇₈₉", r)
}
