package mathgen

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// stepRE matches one arithmetic step of a solution line: "a op b = c".
var stepRE = regexp.MustCompile(`(\d+) ([-+*/]) (\d+) = (\d+)`)

// checkSolution recomputes every step of p's solution and checks the chain ends in the final answer.
func checkSolution(t *testing.T, p Problem, limit int) {
	t.Helper()
	lines := strings.Split(p.Answer, "\n")
	last := lines[len(lines)-1]
	if !regexp.MustCompile(`^#### \d+$`).MatchString(last) {
		t.Fatalf("%s: last line %q, want \"#### N\"", p.ID, last)
	}
	final, _ := strconv.Atoi(p.FinalAnswer())
	steps, prev := 0, -1
	for _, l := range lines[:len(lines)-1] {
		for _, m := range stepRE.FindAllStringSubmatch(l, -1) {
			a, _ := strconv.Atoi(m[1])
			b, _ := strconv.Atoi(m[3])
			c, _ := strconv.Atoi(m[4])
			var want int
			switch m[2] {
			case "+":
				want = a + b
			case "-":
				want = a - b
			case "*":
				want = a * b
			case "/":
				if b == 0 || a%b != 0 {
					t.Errorf("%s: inexact division %q", p.ID, m[0])
				}
				want = a / b
			}
			if c != want {
				t.Errorf("%s: step %q computes %d", p.ID, m[0], want)
			}
			if c <= 0 || c >= limit {
				t.Errorf("%s: step %q leaves [1, %d)", p.ID, m[0], limit)
			}
			steps++
			prev = c
		}
	}
	if steps != p.Level {
		t.Errorf("%s: %d steps in the solution, level %d:\n%s", p.ID, steps, p.Level, p.Answer)
	}
	if prev != final {
		t.Errorf("%s: last step gives %d, answer says %d", p.ID, prev, final)
	}
	// Every number of the question appears in the solution (no distractors), and the text is short.
	for _, n := range regexp.MustCompile(`\d+`).FindAllString(p.Question, -1) {
		if !regexp.MustCompile(`\b` + n + `\b`).MatchString(p.Answer) {
			t.Errorf("%s: question number %s unused in the solution", p.ID, n)
		}
	}
	if w := len(strings.Fields(p.Question)); w < 8 || w > 50 {
		t.Errorf("%s: question has %d words, want 8..50: %q", p.ID, w, p.Question)
	}
	if !strings.HasSuffix(p.Question, "?") {
		t.Errorf("%s: question %q does not end with a question mark", p.ID, p.Question)
	}
}

func TestProblemsAreCorrect(t *testing.T) {
	for _, limit := range []int{DefaultMaxValue, 100} {
		for level := MinLevel; level <= MaxLevel; level++ {
			t.Run(fmt.Sprintf("level%d-max%d", level, limit), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(level), 7))
				for i := 0; i < 500; i++ {
					p, err := newProblem(rng, level, limit)
					if err != nil {
						t.Fatal(err)
					}
					p.ID = fmt.Sprintf("L%d-%d", level, i)
					checkSolution(t, p, limit)
				}
			})
		}
	}
}

func TestNewProblemRejectsBadLevel(t *testing.T) {
	for _, level := range []int{0, -1, 5} {
		if _, err := newProblem(rand.New(rand.NewPCG(1, 1)), level, DefaultMaxValue); err == nil {
			t.Errorf("level %d: no error", level)
		}
	}
}

// TestOperationsCovered checks each operation and each story kind appears at every level that allows it.
func TestOperationsCovered(t *testing.T) {
	train, _, err := Generate(Config{Train: 2000, MinLevel: 1, MaxLevel: 4, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, p := range train {
		for _, m := range stepRE.FindAllStringSubmatch(p.Answer, -1) {
			seen[m[2]]++
		}
		if strings.Contains(p.Question, "dollars") {
			seen["money"]++
		}
		if strings.Contains(p.Question, "each friend") {
			seen["share"]++
		}
	}
	for _, k := range []string{"+", "-", "*", "/", "money", "share"} {
		if seen[k] < 50 {
			t.Errorf("%q occurs in %d of 2000 problems, want >= 50 (counts %v)", k, seen[k], seen)
		}
	}
}
