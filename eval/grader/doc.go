// Package grader extracts final answers from model responses and decides whether they are
// equivalent to a reference answer.
//
// The math grader follows the Qwen2.5-Math evaluation code (parser.py / grader.py):
//
//   - ExtractAnswer: Minerva "final answer is $...$. I hope", then the last \boxed{...} (brace
//     matching), then "he answer is", then "final answer is", then the last number; the result is
//     normalized by StripString (twice, as Qwen's run_execute does).
//   - StripString: the LaTeX normalization (\frac/\dfrac/\tfrac, \sqrt, \left/\right, \text units,
//     unit words, \$, %, degrees, word numbers, trailing ".0", "x=" prefixes, a/b -> \frac{a}{b}, ...).
//   - MathEqual: case-insensitive string equality, numeric equality with relative tolerance 1e-4
//     (also against reference/100 and reference*100), bracket-insensitive string equality,
//     tuples/intervals element-wise, matrices element-wise, equations side-wise, and symbolic
//     equality decided by evaluating both sides (a small LaTeX parser, see ParseLatex) at random
//     points instead of sympy.
//
// Measured agreement: the Qwen2.5-Math parser.py/grader.py run under Python (sympy 1.14 with its
// Lark LaTeX backend standing in for antlr, latex2sympy2 unavailable) and this package graded
// 20,598 (response, reference) pairs built from the data sets (gold solutions, other questions'
// solutions, reformatted, decimal, expanded/factored and perturbed answers, answers in varied
// wrappers with units, dollars, percents, degrees, \left(\right), "x=", several boxes; 15,549
// judged correct by Python). Extracted predictions and normalized references were identical
// strings on every pair; the verdicts agreed on 20,594 (99.98%). The 4 differences are sympy
// parsing artifacts on which this package is mathematically right (e.g. 2^{k}2^{-n} = 2^{k-n}).
//
// Known deviations from Qwen's Python: regular expressions treat \d as ASCII digits; symbolic
// equality is decided by evaluation at random points rather than simplify(), so identities sympy
// cannot prove are accepted and expressions the small parser cannot read (sets, relations,
// \text, matrices inside expressions) are only compared as strings; there is no timeout.
//
// GSM8K answers can also be graded the way lm-evaluation-harness does (strict "#### N",
// flexible last number, "The answer is N." for the CoT variant) with its exact-match normalization.
package grader
