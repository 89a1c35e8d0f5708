// Package bench loads the math benchmarks (GSM8K, MATH, MATH-500, AIME24, AMC23, Minerva-Math,
// OlympiadBench) from JSONL files into a common Sample form, selects subsets (limit, shard, ids)
// and builds prompts (zero-shot boxed CoT chat messages, GSM8K few-shot and 8-shot CoT, custom
// text/template files).
package bench

import (
	"fmt"
	"maps"
	"slices"
)

// Sample is one benchmark question in a benchmark-independent form.
type Sample struct {
	ID        string `json:"id"`                 // stable id (the row's id/idx/unique_id, else its 0-based row number)
	Benchmark string `json:"benchmark"`          // benchmark name, e.g. "math500"
	Question  string `json:"question"`           // problem statement
	Answer    string `json:"answer"`             // reference final answer (for MATH/Minerva taken from the solution's last \boxed)
	Solution  string `json:"solution,omitempty"` // reference worked solution, if the data has one
	Subject   string `json:"subject,omitempty"`  // subject / type / subfield, if present
	Level     string `json:"level,omitempty"`    // difficulty level ("1".."5" for MATH), if present
}

// Benchmark names understood by Load.
const (
	GSM8K         = "gsm8k"
	MATH          = "math"
	MATH500       = "math500"
	AIME24        = "aime24"
	AMC23         = "amc23"
	MinervaMath   = "minerva_math"
	OlympiadBench = "olympiadbench"
)

// Names returns the supported benchmark names, sorted.
func Names() []string {
	out := slices.Sorted(maps.Keys(rowParsers))
	return out
}

// CheckName returns an error naming the supported benchmarks if name is not one of them.
func CheckName(name string) error {
	if _, ok := rowParsers[name]; !ok {
		return fmt.Errorf("unknown benchmark %q (supported: %v)", name, Names())
	}
	return nil
}
