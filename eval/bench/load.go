package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/bpo-dev/bpo/eval/benchdata"
	"github.com/bpo-dev/bpo/eval/grader"
)

// maxLine is the longest JSONL line accepted (reference solutions can be long).
const maxLine = 64 << 20

// Load reads the benchmark called name from the JSONL file at path.
func Load(name, path string) ([]Sample, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	defer f.Close()
	return Parse(name, f, path)
}

// LoadEmbedded reads the split ("test" or "train") of benchmark name from the public sets built
// into the binary (package benchdata), checked against their SHA-256 before parsing.
func LoadEmbedded(name, split string) ([]Sample, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	set, err := benchdata.Find(name, split)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	data, err := set.Data()
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	return Parse(name, bytes.NewReader(data), "embedded "+set.Name())
}

// Parse reads JSONL rows of benchmark name from r; file names the source in error messages,
// which have the form "file:line: field \"x\": what was expected". Blank lines are skipped;
// duplicate ids are an error.
func Parse(name string, r io.Reader, file string) ([]Sample, error) {
	parse, ok := rowParsers[name]
	if !ok {
		return nil, CheckName(name)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), maxLine)
	var out []Sample
	seen := map[string]int{}
	line, rowNum := 0, 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var fields map[string]json.RawMessage
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&fields); err != nil {
			return nil, fmt.Errorf("%s:%d: expected a JSON object: %w", file, line, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%s:%d: expected one JSON object per line, found more", file, line)
		}
		s, err := parse(row{fields: fields, index: rowNum})
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, line, err)
		}
		s.Benchmark = name
		if prev, dup := seen[s.ID]; dup {
			return nil, fmt.Errorf("%s:%d: duplicate id %q (first on line %d)", file, line, s.ID, prev)
		}
		seen[s.ID] = line
		out = append(out, s)
		rowNum++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", file, line+1, err)
	}
	return out, nil
}

// row is one decoded JSONL line.
type row struct {
	fields map[string]json.RawMessage
	index  int
}

func (r row) has(k string) bool {
	v, ok := r.fields[k]
	return ok && string(v) != "null"
}

// str reads a required field as text; numbers are kept as written (27.0 stays "27.0").
func (r row) str(k string) (string, error) {
	v, ok := r.fields[k]
	if !ok || string(v) == "null" {
		return "", fmt.Errorf("field %q: missing, expected a string", k)
	}
	return scalarText(k, v)
}

// opt reads an optional scalar field ("" if absent or null).
func (r row) opt(k string) (string, error) {
	if !r.has(k) {
		return "", nil
	}
	return scalarText(k, r.fields[k])
}

func scalarText(k string, v json.RawMessage) (string, error) {
	var x any
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		return "", fmt.Errorf("field %q: %w", k, err)
	}
	switch t := x.(type) {
	case string:
		return t, nil
	case json.Number:
		return t.String(), nil
	case bool:
		return strconv.FormatBool(t), nil
	}
	return "", fmt.Errorf("field %q: expected a string or number, got %s", k, jsonKind(x))
}

// firstOfList reads a field that is a non-empty list of strings (or a single string) and returns
// its first element.
func (r row) firstOfList(k string) (string, error) {
	v, ok := r.fields[k]
	if !ok || string(v) == "null" {
		return "", fmt.Errorf("field %q: missing, expected a list of strings", k)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(v, &list); err != nil {
		return scalarText(k, v)
	}
	if len(list) == 0 {
		return "", fmt.Errorf("field %q: expected a non-empty list of strings", k)
	}
	return scalarText(k+"[0]", list[0])
}

// id returns the first present id field, else the row number.
func (r row) id(keys ...string) (string, error) {
	for _, k := range keys {
		if r.has(k) {
			s, err := r.str(k)
			if err != nil {
				return "", err
			}
			if s == "" {
				return "", fmt.Errorf("field %q: expected a non-empty id", k)
			}
			return s, nil
		}
	}
	return strconv.Itoa(r.index), nil
}

func jsonKind(x any) string {
	switch x.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", x)
}

// question returns the first present of the keys.
func (r row) question(keys ...string) (string, error) {
	for _, k := range keys {
		if r.has(k) {
			return r.str(k)
		}
	}
	return "", fmt.Errorf("field %q: missing, expected the question text", keys[0])
}

// normLevel turns "Level 3" or 3 into "3".
func normLevel(s string) string {
	return strings.TrimSpace(strings.TrimPrefix(s, "Level"))
}

type rowParser func(row) (Sample, error)

// rowParsers maps a benchmark name to its row decoder (read-only).
var rowParsers = map[string]rowParser{
	GSM8K:         parseGSM8K,
	MATH:          parseSolutionBoxed(MATH),
	MinervaMath:   parseSolutionBoxed(MinervaMath),
	MATH500:       parseAnswered,
	AIME24:        parseAnswered,
	AMC23:         parseAnswered,
	OlympiadBench: parseOlympiad,
}

func parseGSM8K(r row) (Sample, error) {
	var s Sample
	var err error
	if s.ID, err = r.id("id", "idx"); err != nil {
		return s, err
	}
	if s.Question, err = r.str("question"); err != nil {
		return s, err
	}
	if s.Solution, err = r.str("answer"); err != nil {
		return s, err
	}
	i := strings.LastIndex(s.Solution, "####")
	if i < 0 {
		return s, fmt.Errorf("field %q: expected a solution ending in \"#### <answer>\"", "answer")
	}
	s.Answer = strings.TrimSpace(s.Solution[i+4:])
	return s, nil
}

// parseSolutionBoxed reads MATH-style rows whose answer is the last \boxed of the solution.
func parseSolutionBoxed(name string) rowParser {
	return func(r row) (Sample, error) {
		var s Sample
		var err error
		if s.ID, err = r.id("unique_id", "idx", "id"); err != nil {
			return s, err
		}
		if s.Question, err = r.question("problem", "question"); err != nil {
			return s, err
		}
		if s.Solution, err = r.str("solution"); err != nil {
			return s, err
		}
		if r.has("answer") {
			if s.Answer, err = r.str("answer"); err != nil {
				return s, err
			}
		} else {
			s.Answer = grader.ExtractGoldFromSolution(s.Solution, name)
		}
		if s.Subject, err = subject(r); err != nil {
			return s, err
		}
		lv, err := r.opt("level")
		s.Level = normLevel(lv)
		return s, err
	}
}

func subject(r row) (string, error) {
	for _, k := range []string{"subject", "type", "subfield"} {
		if r.has(k) {
			return r.opt(k)
		}
	}
	return "", nil
}

// parseAnswered reads rows with an explicit "answer" (MATH-500, AIME24, AMC23).
func parseAnswered(r row) (Sample, error) {
	var s Sample
	var err error
	if s.ID, err = r.id("unique_id", "id", "idx"); err != nil {
		return s, err
	}
	if s.Question, err = r.question("problem", "question"); err != nil {
		return s, err
	}
	if s.Answer, err = r.str("answer"); err != nil {
		return s, err
	}
	if s.Solution, err = r.opt("solution"); err != nil {
		return s, err
	}
	if s.Subject, err = subject(r); err != nil {
		return s, err
	}
	lv, err := r.opt("level")
	s.Level = normLevel(lv)
	return s, err
}

func parseOlympiad(r row) (Sample, error) {
	var s Sample
	var err error
	if s.ID, err = r.id("id", "idx"); err != nil {
		return s, err
	}
	if s.Question, err = r.question("question", "problem"); err != nil {
		return s, err
	}
	if s.Answer, err = r.firstOfList("final_answer"); err != nil {
		return s, err
	}
	if r.has("solution") {
		if s.Solution, err = r.firstOfList("solution"); err != nil {
			return s, err
		}
	}
	s.Subject, err = subject(r)
	return s, err
}
