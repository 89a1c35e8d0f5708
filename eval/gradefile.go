package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/bpo-dev/bpo/eval/bench"
	"github.com/bpo-dev/bpo/eval/grader"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// GradeCounts is the outcome of grading a file.
type GradeCounts struct {
	Correct int
	Total   int
}

// Accuracy is Correct/Total (0 when Total is 0).
func (g GradeCounts) Accuracy() float64 {
	if g.Total == 0 {
		return 0
	}
	return float64(g.Correct) / float64(g.Total)
}

// AccuracyLine is the line `bpo grade` prints last: "accuracy: 0.xxxx (n/N)".
func (g GradeCounts) AccuracyLine() string {
	return fmt.Sprintf("accuracy: %.4f (%d/%d)", g.Accuracy(), g.Correct, g.Total)
}

// GradeJSONL grades a JSONL stream whose lines are objects with "response" (the model output,
// a string) and "answer" (the reference final answer, a string or number). If out is not nil,
// every line is written to it with "pred" (extracted answer) and "correct" (bool) added, other
// fields kept. name is used in error messages ("name:line: ..."). Blank lines are skipped.
func GradeJSONL(benchmark string, method grader.Method, in io.Reader, name string, out io.Writer) (GradeCounts, error) {
	var counts GradeCounts
	if err := bench.CheckName(benchmark); err != nil {
		return counts, err
	}
	br := bufio.NewReaderSize(in, 1<<20)
	var enc *json.Encoder
	if out != nil {
		enc = json.NewEncoder(out)
		enc.SetEscapeHTML(false)
	}
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return counts, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if t := bytes.TrimSpace(b); len(t) > 0 {
			obj, resp, gold, perr := parseGradeLine(t)
			if perr != nil {
				return counts, fmt.Errorf("%s:%d: %w", name, line, perr)
			}
			r := grader.Grade(benchmark, method, resp, gold)
			counts.Total++
			if r.Correct {
				counts.Correct++
			}
			if enc != nil {
				obj["pred"], _ = json.Marshal(r.Pred)
				obj["correct"], _ = json.Marshal(r.Correct)
				if err := enc.Encode(obj); err != nil {
					return counts, fmt.Errorf("write graded line %d: %w", line, err)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	if counts.Total == 0 {
		return counts, fmt.Errorf("%s: no lines to grade", name)
	}
	return counts, nil
}

func parseGradeLine(b []byte) (map[string]json.RawMessage, string, string, error) {
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, "", "", fmt.Errorf(`expected a JSON object with "response" and "answer": %v`, err)
	}
	var resp string
	raw, ok := obj["response"]
	if !ok {
		return nil, "", "", errors.New(`field "response": missing, expected a string`)
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return nil, "", "", fmt.Errorf(`field "response": expected a string, got %s`, snippet(raw))
	}
	raw, ok = obj["answer"]
	if !ok {
		return nil, "", "", errors.New(`field "answer": missing, expected a string or number`)
	}
	var gold string
	if err := json.Unmarshal(raw, &gold); err != nil {
		var num json.Number
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if d.Decode(&num) != nil {
			return nil, "", "", fmt.Errorf(`field "answer": expected a string or number, got %s`, snippet(raw))
		}
		gold = num.String()
	}
	return obj, resp, gold, nil
}

func snippet(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// GradeFile grades inPath (see GradeJSONL) and, if outPath is not empty, writes the graded lines
// to outPath atomically.
func GradeFile(benchmark string, method grader.Method, inPath, outPath string) (GradeCounts, error) {
	f, err := os.Open(inPath)
	if err != nil {
		return GradeCounts{}, fmt.Errorf("grade: %w", err)
	}
	defer f.Close()
	var buf *bytes.Buffer
	var out io.Writer
	if outPath != "" {
		buf = &bytes.Buffer{}
		out = buf
	}
	counts, err := GradeJSONL(benchmark, method, f, inPath, out)
	if err != nil {
		return counts, fmt.Errorf("grade: %w", err)
	}
	if buf != nil {
		if err := atomicfile.Write(outPath, buf.Bytes()); err != nil {
			return counts, fmt.Errorf("grade: %w", err)
		}
	}
	return counts, nil
}
