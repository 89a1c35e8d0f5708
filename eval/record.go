package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bpo-dev/bpo/eval/bench"
)

// File names inside a run directory.
const (
	SamplesFile   = "samples.jsonl"
	SummaryFile   = "summary.json"
	SummaryMDFile = "summary.md"
)

// Record is one line of samples.jsonl: a graded question.
type Record struct {
	ID         string       `json:"id"`
	Benchmark  string       `json:"benchmark"`
	Prompt     bench.Prompt `json:"prompt"`
	Question   string       `json:"question,omitempty"`
	Gold       string       `json:"gold"` // normalized reference answer
	Subject    string       `json:"subject,omitempty"`
	Level      string       `json:"level,omitempty"`
	Response   string       `json:"response"` // Responses[0]
	Pred       string       `json:"pred"`     // Preds[0]
	Correct    bool         `json:"correct"`  // Corrects[0]
	Responses  []string     `json:"responses"`
	Preds      []string     `json:"preds"`
	Corrects   []bool       `json:"corrects"`
	Tokens     []int        `json:"tokens"` // generated tokens per response
	Stops      []string     `json:"stop_reasons,omitempty"`
	MajPred    string       `json:"maj_pred"`
	MajCorrect bool         `json:"maj_correct"`
	PromptToks int          `json:"prompt_tokens,omitempty"`
}

// NumCorrect counts the correct responses.
func (r *Record) NumCorrect() int {
	n := 0
	for _, c := range r.Corrects {
		if c {
			n++
		}
	}
	return n
}

// validate checks the internal consistency of a decoded record.
func (r *Record) validate() error {
	switch {
	case r.ID == "":
		return errors.New(`field "id": missing`)
	case r.Benchmark == "":
		return errors.New(`field "benchmark": missing`)
	case len(r.Responses) == 0:
		return errors.New(`field "responses": expected at least one response`)
	case len(r.Preds) != len(r.Responses) || len(r.Corrects) != len(r.Responses):
		return fmt.Errorf(`fields "preds"/"corrects": expected %d entries like "responses", got %d/%d`,
			len(r.Responses), len(r.Preds), len(r.Corrects))
	}
	return nil
}

// ReadRecords reads dir/samples.jsonl. A final line without a newline (a write cut short by a
// kill) is ignored; any other malformed line is an error naming file and line.
func ReadRecords(dir string) ([]Record, error) {
	recs, _, err := readRecordsFile(filepath.Join(dir, SamplesFile))
	return recs, err
}

// readRecordsFile returns the records and the byte length of the complete lines.
func readRecordsFile(path string) ([]Record, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("read records: %w", err)
	}
	defer f.Close()
	return readRecords(f, path)
}

// readRecords parses samples.jsonl content; name is used in messages.
func readRecords(r io.Reader, name string) ([]Record, int64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var recs []Record
	var good int64
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break // an unterminated tail is a torn write: ignore it
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if t := bytes.TrimSpace(b); len(t) > 0 {
			var r Record
			if err := json.Unmarshal(t, &r); err != nil {
				return nil, 0, fmt.Errorf("%s:%d: expected a JSON record: %w", name, line, err)
			}
			if err := r.validate(); err != nil {
				return nil, 0, fmt.Errorf("%s:%d: %w", name, line, err)
			}
			recs = append(recs, r)
		}
		good += int64(len(b))
	}
	return recs, good, nil
}

// recordWriter appends records to samples.jsonl, syncing after each.
type recordWriter struct{ f *os.File }

// openRecordWriter opens path for appending after truncating any torn tail beyond good bytes.
func openRecordWriter(path string, good int64) (*recordWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("truncate torn tail of %s: %w", path, err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek %s: %w", path, err)
	}
	return &recordWriter{f: f}, nil
}

func (w *recordWriter) append(r *Record) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode record %s: %w", r.ID, err)
	}
	if _, err := w.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("append record %s: %w", r.ID, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync record %s: %w", r.ID, err)
	}
	return nil
}

func (w *recordWriter) close() error { return w.f.Close() }
