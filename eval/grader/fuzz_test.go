package grader

import "testing"

func FuzzExtract(f *testing.F) {
	for _, s := range []string{
		`\boxed{\frac{1}{2}}`, "The answer is 5.", "final answer is $3$. I hope it is correct.",
		"#### 1,000", `\boxed{`, `\frac`, "x = 3 \\text{ cm}", "\\sqrt", "five", "ки", "1/2",
	} {
		f.Add(s, "math")
		f.Add(s, "minerva_math")
	}
	f.Fuzz(func(t *testing.T, resp, bench string) {
		_ = ExtractAnswer(resp, bench)
		_ = GSM8KStrict(resp)
		_ = GSM8KFlexible(resp)
		_ = GSM8KCoTStrict(resp)
		_ = NormalizeGold(resp, bench)
	})
}

func FuzzEqual(f *testing.F) {
	for _, p := range [][2]string{
		{"(1,2)", "[1,2]"}, {`\frac{x}{2}`, "x/2"}, {"y=2x", "2x=y"}, {"50%", "0.5"},
		{`\begin{pmatrix}1&2\end{pmatrix}`, "{1,2}"}, {`\sqrt[3]{8}`, "2"}, {"((((", "))))"},
		{`\sin^2 x+\cos^2x`, "1"}, {"|x|", "x"}, {"5!", `\binom{5}{2}`},
	} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		_ = MathEqual(a, b)
		_ = SymbolicEqual(a, b)
		if e, err := ParseLatex(a); err == nil {
			_ = Eval(e, map[string]complex128{"x": 1})
		}
	})
}
