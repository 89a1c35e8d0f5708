package grader

import (
	"fmt"
	"strings"
	"unicode"
)

// tokKind classifies LaTeX tokens.
type tokKind int

const (
	tokNum tokKind = iota
	tokLetter
	tokCmd
	tokSym
)

type token struct {
	kind tokKind
	text string // digits for tokNum, the letter, the command name without "\", or the symbol
}

// spacingCmds are LaTeX commands that only produce space or sizing and are skipped.
var spacingCmds = map[string]bool{
	",": true, ";": true, ":": true, "!": true, " ": true, "quad": true, "qquad": true,
	"left": true, "right": true, "big": true, "Big": true, "bigl": true, "bigr": true,
	"Bigl": true, "Bigr": true, "displaystyle": true,
}

// lexLatex splits s into tokens. It never fails on odd input except for unterminated commands.
func lexLatex(s string) ([]token, error) {
	var toks []token
	r := []rune(s)
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case isASCIIDigit(c) || (c == '.' && i+1 < len(r) && isASCIIDigit(r[i+1])):
			j := i
			seenDot := false
			for j < len(r) && (isASCIIDigit(r[j]) || (r[j] == '.' && !seenDot && j+1 < len(r) && isASCIIDigit(r[j+1]))) {
				if r[j] == '.' {
					seenDot = true
				}
				j++
			}
			toks = append(toks, token{tokNum, string(r[i:j])})
			i = j
		case unicode.IsLetter(c):
			toks = append(toks, token{tokLetter, string(c)})
			i++
		case c == '\\':
			if i+1 >= len(r) {
				return nil, fmt.Errorf("latex: trailing backslash")
			}
			j := i + 1
			for j < len(r) && ((r[j] >= 'a' && r[j] <= 'z') || (r[j] >= 'A' && r[j] <= 'Z')) {
				j++
			}
			if j == i+1 {
				j = i + 2 // one-character command such as \, or \{
			}
			name := string(r[i+1 : j])
			i = j
			rest := ""
			if !knownCmd(name) {
				// strip_string removes spaces, so "\pi r" arrives as "\pir": split off the longest
				// known command and read the remaining letters as variables.
				for k := len(name) - 1; k > 0; k-- {
					if knownCmd(name[:k]) {
						name, rest = name[:k], name[k:]
						break
					}
				}
			}
			switch {
			case spacingCmds[name]:
			case name == "{" || name == "}":
				toks = append(toks, token{tokSym, name})
			default:
				toks = append(toks, token{tokCmd, name})
			}
			for _, c := range rest {
				toks = append(toks, token{tokLetter, string(c)})
			}
		default:
			toks = append(toks, token{tokSym, string(c)})
			i++
		}
	}
	return toks, nil
}

// operatorCmds are commands with a meaning to the parser besides values and functions.
var operatorCmds = map[string]bool{
	"cdot": true, "times": true, "ast": true, "div": true, "log": true,
	"lfloor": true, "rfloor": true, "lceil": true, "rceil": true,
}

// knownCmd reports whether the parser understands the command name.
func knownCmd(name string) bool {
	return spacingCmds[name] || operatorCmds[name] || valueCmds[name] || greek[name] || funcs[name] != nil
}

// tokensText renders tokens back to a compact string (used for subscript names).
func tokensText(ts []token) string {
	var b strings.Builder
	for _, t := range ts {
		if t.kind == tokCmd {
			b.WriteString(`\`)
		}
		b.WriteString(t.text)
	}
	return b.String()
}
