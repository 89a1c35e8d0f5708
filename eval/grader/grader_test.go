package grader

import (
	"testing"
)

func TestStripString(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"trim and trailing dot", "  42. ", "42"},
		{"newlines", "1\n2", "12"},
		{"inverse space", `3\!000`, "3000"},
		{"dfrac", `\dfrac{1}{2}`, `\frac{1}{2}`},
		{"tfrac", `\tfrac{3}{4}`, `\frac{3}{4}`},
		{"frac shorthand digits", `\frac12`, `\frac{1}{2}`},
		{"frac shorthand mixed", `\frac1{72}`, `\frac{1}{72}`},
		{"left right", `\left( 1, 2 \right)`, "(1,2)"},
		{"escaped braces", `\{1,2\}`, "{1,2}"},
		{"trailing text unit", `5\text{ cm}`, "5"},
		{"text kept when it is everything", `\text{Evelyn}`, "Evelyn"},
		{"unit word", "5 inches", "5"},
		{"unit word plural", "12 feet", "12"},
		{"degrees", `30^\circ`, "30"},
		{"degrees braced", `30^{\circ}`, "30"},
		{"dollars (trailing zero kept as Qwen does)", `\$18.50`, "18.50"},
		{"dollar math", `$x$`, "x"},
		{"word number", "five", "5"},
		{"word number compound", "twenty one", "21"},
		{"leading zeros", "025", "25"},
		{"x equals prefix", "x=3", "3"},
		{"k equals prefix", "k = 7", "7"},
		{"long lhs kept", "abc=7", "abc=7"},
		{"percent", `50\%`, "50"},
		{"percent plain", "12%", "12"},
		{"leading dot", ".5", "0.5"},
		{"trailing zeros", "2.000", "2"},
		{"integer float", "7.0", "7"},
		{"trailing zeros before text", "3.00 + x", "3+x"},
		{"infinity", "infinity", `\infty`},
		{"inf", "-inf", `-\infty`},
		{"emptyset", `\emptyset`, "{}"},
		{"reals", `(-\infty,\infty)`, `\mathbb{R}`},
		{"sqrt word", `\sqrt3`, `\sqrt{3}`},
		{"a slash b", "3/4", `\frac{3}{4}`},
		{"a slash b negative", "-3/4", `\frac{-3}{4}`},
		{"a slash b sqrt", `\sqrt{2}/2`, `\frac{\sqrt{2}}{2}`},
		{"a slash b non canonical", "03/4", "03/4"},
		{"bmatrix", `\begin{bmatrix}1\\2\end{bmatrix}`, `\begin{pmatrix}1\\2\end{pmatrix}`},
		{"array", `\begin{array}{cc}1&2\end{array}`, `\begin{pmatrix}1&2\end{pmatrix}`},
		{"leq", `x \leq 3`, `x\le3`},
		{"mbox", `4\mbox{ apples}`, "4"},
		{"j to i", "3+2j", "3+2i"},
		{"and removed", "1 and 2", "12"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := StripString(c.in, false); got != c.want {
				t.Errorf("StripString(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestStripStringSkipUnit(t *testing.T) {
	if got := StripString("5 m", true); got != "5m" {
		t.Errorf("skipUnit kept unit: got %q, want %q", got, "5m")
	}
	if got := StripString("5 m", false); got != "5" {
		t.Errorf("unit removal: got %q, want %q", got, "5")
	}
}

func TestExtractAnswer(t *testing.T) {
	cases := []struct{ name, bench, in, want string }{
		{"minerva hope", "minerva_math", "so the final answer is $4.2 \\times 10^3$. I hope it is correct.", `4.2\times10^3`},
		{"minerva beats boxed", "math", "\\boxed{1} Final answer: the final answer is $7$. I hope it is correct.", "7"},
		{"last boxed", "math", "first \\boxed{1} then \\boxed{\\frac{2}{3}}.", `\frac{2}{3}`},
		{"nested braces", "math", "\\boxed{\\frac{\\sqrt{3}}{2}}", `\frac{\sqrt{3}}{2}`},
		{"unclosed boxed", "math", "\\boxed{12", "12"},
		{"boxed no brace", "math", "$\\boxed 5$", "5"},
		{"boxed at end", "math", "answer \\boxed", ""},
		{"fbox not boxed", "math", "we get \\fbox{9} so 10", "10"},
		{"the answer is", "gsm8k", "So the answer is 18.", "18"},
		{"The answer is multi-line", "gsm8k", "The answer is\n 42.", "42"},
		{"final answer is", "math", "Final answer: final answer is 3", "3"},
		{"last number", "gsm8k", "She pays 1,234 dollars then 5 more, total 1,239", "1239"},
		{"last number negative decimal", "gsm8k", "x = -0.5", "-0.5"},
		{"no number", "gsm8k", "I do not know", ""},
		{"leading colon", "math", "The answer is: 7", "7"},
		{"text unit in box", "math", "\\boxed{10\\text{ inches}}", "10"},
		{"double strip", "math", "\\boxed{\\dfrac{1}{2}}", `\frac{1}{2}`},
		{"minerva keeps units", "minerva_math", "\\boxed{5 m}", "5m"},
		{"ki removed", "math", "\\boxed{3}ки", "3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ExtractAnswer(c.in, c.bench); got != c.want {
				t.Errorf("ExtractAnswer(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestMathEqual(t *testing.T) {
	cases := []struct {
		name      string
		pred, ref string
		want      bool
	}{
		{"string", "Evelyn", "evelyn", true},
		{"choice", "(B)", "B", true},
		{"choice wrong", "(C)", "B", false},
		{"numeric", "0.5", "0.5000", true},
		{"numeric tolerance in", "3.14159", "3.1416", true},
		{"numeric tolerance out", "3.14", "3.1416", false},
		{"thousands commas", "1,000", "1000", true},
		{"percent x100", "50", "0.5", true},
		{"percent /100", "0.25", "25", true},
		{"percent sign", "25%", "0.25", true},
		{"numeric no fallthrough", "2", "3", false},
		{"empty pred", "", "3", false},
		{"fraction vs decimal", `\frac{1}{2}`, "0.5", true},
		{"brackets ignored", "(3)", "3", true},
		{"tuple", `(1,\frac{9}{2})`, "(1,4.5)", true},
		{"tuple wrong", "(1,2)", "(2,1)", false},
		{"tuple length", "(1,2,3)", "(1,2)", false},
		{"interval", `(0.6,2.6667]`, `(\frac{3}{5},\frac{8}{3}]`, true},
		{"interval brackets not compared (Qwen quirk)", "[1,2]", "(1,2)", true},
		{"matrix", `\begin{pmatrix}0.5&1\\2&3\end{pmatrix}`, `\begin{pmatrix}\frac{1}{2}&1\\2&3\end{pmatrix}`, true},
		{"matrix shape", `\begin{pmatrix}1&2\end{pmatrix}`, `\begin{pmatrix}1\\2\end{pmatrix}`, false},
		{"equation sides", "y=2x+1", "2x+1=y", true},
		{"equation sign flip", "x-y=1", "y-x=-1", true},
		{"equation scaled not equal", "2x=4", "x=2", false},
		{"short lhs vs value", "k=5", "5", true},
		{"value vs short lhs", "5", "k=5", true},
		{"symbolic", `\frac{x+2}{7}`, `\frac{x}{7}+\frac{2}{7}`, true},
		{"symbolic trig identity", `\sec^2(y)`, `\tan^2(y)+1`, true},
		{"symbolic sqrt", `\frac{\sqrt{3}}{3}`, `\frac{1}{\sqrt{3}}`, true},
		{"symbolic pi", `2\pi`, "6.2832", true},
		{"symbolic different", "x+1", "x+2n+1", false},
		{"symbolic sqrt constants", `\frac{\sqrt{\sqrt{11}+\sqrt{194}}}{2\sqrt{33}+15}`, `\frac{\sqrt{\sqrt{11}+\sqrt{194}}}{15+2\sqrt{33}}`, true},
		{"symbolic wrong constant", `\frac{1+\sqrt{5}}{2}`, "2", false},
		{"binom", `\binom{5}{2}`, "10", true},
		{"factorial", "5!", "120", true},
		{"log base", `\log_2 8`, "3", true},
		{"abs", "|-3|", "3", true},
		{"floor", `\lfloor\frac{2n}{5}-\frac{1}{5}\rfloor`, `\lfloor\frac{2n-1}{5}\rfloor`, true},
		{"ceil without spaces", `\lceil{\frac{n}{2}}\rceil+1`, `\lceiln/2\rceil+1`, true},
		{"command glued to variable", `\pir^2`, `r^2\pi`, true},
		{"product of powers", `2^{k}2^{-n}`, `2^{k-n}`, true},
		{"factored polynomial", `(x-1)(x^{2}-x+1)(x^{2}+x+1)`, `x^5-x^4+x^3-x^2+x-1`, true},
		{"perturbed polynomial", `x^2+2x+1.001`, `(x+1)^2`, false},
		{"pmatrix from braces uses one backslash (Qwen quirk)", `\begin{pmatrix}1\\2\end{pmatrix}`, "{1,2}", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := MathEqual(c.pred, c.ref); got != c.want {
				t.Errorf("MathEqual(%q, %q) = %v, want %v", c.pred, c.ref, got, c.want)
			}
		})
	}
}

func TestParseLatexErrors(t *testing.T) {
	for _, in := range []string{"", `\text{a}`, `\lfloor x`, `\infty+1`, "(1", `\frac{1}`, "x<3", `\infty`, "1,2", `\`} {
		if _, err := ParseLatex(in); err == nil {
			t.Errorf("ParseLatex(%q): want error", in)
		}
	}
}

func TestGSM8KExtraction(t *testing.T) {
	cases := []struct {
		name, resp       string
		strict, flexible string
		cot              string
	}{
		{"strict", "so 3+4=7\n#### 7", "7", "7", InvalidAnswer},
		{"strict first", "#### 1,000\n#### 2", "1,000", "2", InvalidAnswer},
		{"no marker", "It costs $18.", InvalidAnswer, "$18.", InvalidAnswer},
		{"cot", "5 * 3 = 15. The answer is 15.", InvalidAnswer, "15.", "15"},
		{"negative", "loss of -5 dollars", InvalidAnswer, "-5", InvalidAnswer},
		{"nothing", "no idea", InvalidAnswer, InvalidAnswer, InvalidAnswer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := GSM8KStrict(c.resp); got != c.strict {
				t.Errorf("strict = %q, want %q", got, c.strict)
			}
			if got := GSM8KFlexible(c.resp); got != c.flexible {
				t.Errorf("flexible = %q, want %q", got, c.flexible)
			}
			if got := GSM8KCoTStrict(c.resp); got != c.cot {
				t.Errorf("cot strict = %q, want %q", got, c.cot)
			}
		})
	}
	match := []struct {
		pred, gold string
		want       bool
	}{
		{"1,000", "Total is 1000.\n#### 1000", true},
		{"$18.", "18", true},
		{"18.00", "18", false},
		{InvalidAnswer, "18", false},
	}
	for _, m := range match {
		if got := GSM8KExactMatch(m.pred, m.gold); got != m.want {
			t.Errorf("GSM8KExactMatch(%q, %q) = %v, want %v", m.pred, m.gold, got, m.want)
		}
	}
}

func TestGrade(t *testing.T) {
	cases := []struct {
		bench  string
		method Method
		resp   string
		gold   string
		pred   string
		ok     bool
	}{
		{"gsm8k", MethodQwen, "3 + 4 = 7 apples.\n#### 7", "She has 7.\n#### 7", "7", true},
		{"gsm8k", MethodStrict, "#### 7", "#### 7", "7", true},
		{"gsm8k", MethodFlexible, "The total is 8", "7", "8", false},
		{"gsm8k", MethodCoTStrict, "The answer is 7.", "7", "7", true},
		{"math500", MethodQwen, `so $\boxed{\dfrac{14}{3}}$`, `\frac{14}{3}`, `\frac{14}{3}`, true},
		{"aime24", MethodQwen, `\boxed{25}`, "025", "25", true},
		{"amc23", MethodQwen, `\boxed{27}`, "27.0", "27", true},
		{"olympiadbench", MethodQwen, `\boxed{\frac{1}{2n+2}}`, `$\frac{1}{2 n+2}$`, `\frac{1}{2n+2}`, true},
	}
	for _, c := range cases {
		r := Grade(c.bench, c.method, c.resp, c.gold)
		if r.Pred != c.pred || r.Correct != c.ok {
			t.Errorf("Grade(%s,%s,%q,%q) = %+v, want pred %q correct %v", c.bench, c.method, c.resp, c.gold, r, c.pred, c.ok)
		}
	}
	if _, err := ParseMethod("nope"); err == nil {
		t.Error("ParseMethod(nope): want error")
	}
}

func TestConvertWordNumber(t *testing.T) {
	cases := map[string]string{
		"five": "5", "two hundred": "200", "one thousand two hundred": "1200",
		"two point five": "2.5", "point": "0", "007": "7", "x": "x", "million million": "million million",
		"three apples": "3",
	}
	for in, want := range cases {
		if got := convertWordNumber(in); got != want {
			t.Errorf("convertWordNumber(%q) = %q, want %q", in, got, want)
		}
	}
}
