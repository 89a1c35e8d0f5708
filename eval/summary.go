package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/bpo-dev/bpo/eval/stats"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// Group is the accuracy of a subset of questions (a subject or a level).
type Group struct {
	Name     string  `json:"name"`
	N        int     `json:"n"`
	Correct  int     `json:"correct"`
	Accuracy float64 `json:"accuracy"`
	CILow    float64 `json:"ci_low"`
	CIHigh   float64 `json:"ci_high"`
}

// Summary is summary.json of a run directory.
type Summary struct {
	Benchmark string    `json:"benchmark"`
	Model     string    `json:"model,omitempty"`
	Adapters  []string  `json:"adapters,omitempty"`
	Method    string    `json:"method,omitempty"`
	Prompt    string    `json:"prompt,omitempty"`
	Params    GenParams `json:"params"`

	N        int     `json:"n"`        // graded questions
	Correct  int     `json:"correct"`  // questions whose first response is correct
	Accuracy float64 `json:"accuracy"` // Correct / N
	CILow    float64 `json:"ci_low"`   // Wilson 95% interval of Accuracy
	CIHigh   float64 `json:"ci_high"`

	K          int                `json:"k"`                     // responses per question
	MajCorrect int                `json:"maj_correct,omitempty"` // questions whose majority answer is correct (k > 1)
	MajAtK     float64            `json:"maj_at_k,omitempty"`
	PassAtK    map[string]float64 `json:"pass_at_k,omitempty"` // unbiased pass@j for j = 1, 2, 4, ... and k

	BySubject []Group `json:"by_subject,omitempty"`
	ByLevel   []Group `json:"by_level,omitempty"`

	GeneratedTokens int64   `json:"generated_tokens"`
	MeanTokens      float64 `json:"mean_tokens"` // per response
	Truncated       int     `json:"truncated"`   // responses that hit max_new_tokens (stop reason "length")
	SessionTokens   int64   `json:"session_tokens"`
	SessionSeconds  float64 `json:"session_seconds"`
	TokensPerSec    float64 `json:"tokens_per_sec"` // generated tokens per second in the last session

	Requested int    `json:"requested"` // questions asked for by the last run
	Failed    int    `json:"failed"`    // generator failures in the last run (retried next time)
	Complete  bool   `json:"complete"`
	UpdatedAt string `json:"updated_at"`
}

// Summarize computes the statistics of records (the run metadata fields are left empty).
func Summarize(benchmark string, recs []Record) *Summary {
	s := &Summary{Benchmark: benchmark, N: len(recs), UpdatedAt: time.Now().UTC().Format(time.RFC3339)}
	subj, lvl := map[string]*Group{}, map[string]*Group{}
	add := func(m map[string]*Group, name string, ok bool) {
		if name == "" {
			return
		}
		g := m[name]
		if g == nil {
			g = &Group{Name: name}
			m[name] = g
		}
		g.N++
		if ok {
			g.Correct++
		}
	}
	var nResp int
	for i := range recs {
		r := &recs[i]
		if r.Correct {
			s.Correct++
		}
		if r.MajCorrect {
			s.MajCorrect++
		}
		s.K = max(s.K, len(r.Responses))
		for _, t := range r.Tokens {
			s.GeneratedTokens += int64(t)
		}
		nResp += len(r.Responses)
		for _, st := range r.Stops {
			if st == "length" {
				s.Truncated++
			}
		}
		add(subj, r.Subject, r.Correct)
		add(lvl, r.Level, r.Correct)
	}
	if s.N > 0 {
		s.Accuracy = float64(s.Correct) / float64(s.N)
	}
	s.CILow, s.CIHigh = stats.Wilson(s.Correct, s.N, stats.Z95)
	if nResp > 0 {
		s.MeanTokens = float64(s.GeneratedTokens) / float64(nResp)
	}
	if s.K > 1 && s.N > 0 {
		s.MajAtK = float64(s.MajCorrect) / float64(s.N)
		s.PassAtK = map[string]float64{}
		for j := 1; ; j *= 2 {
			if j > s.K {
				j = s.K
			}
			sum := 0.0
			for i := range recs {
				n := len(recs[i].Responses)
				if p, err := stats.PassAtK(n, recs[i].NumCorrect(), min(j, n)); err == nil {
					sum += p
				}
			}
			s.PassAtK[strconv.Itoa(j)] = sum / float64(s.N)
			if j == s.K {
				break
			}
		}
	}
	s.BySubject, s.ByLevel = groups(subj), groups(lvl)
	return s
}

func groups(m map[string]*Group) []Group {
	out := make([]Group, 0, len(m))
	for _, g := range m {
		g.Accuracy = float64(g.Correct) / float64(g.N)
		g.CILow, g.CIHigh = stats.Wilson(g.Correct, g.N, stats.Z95)
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// WriteSummary writes summary.json and summary.md into dir atomically.
func WriteSummary(dir string, s *Summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, SummaryFile), append(b, '\n')); err != nil {
		return err
	}
	var md bytes.Buffer
	if err := s.WriteMarkdown(&md); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, SummaryMDFile), md.Bytes())
}

// ReadSummary reads dir/summary.json.
func ReadSummary(dir string) (*Summary, error) {
	path := filepath.Join(dir, SummaryFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read summary: %w", err)
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: expected a summary JSON object: %w", path, err)
	}
	return &s, nil
}

// WriteMarkdown renders the summary as markdown tables.
func (s *Summary) WriteMarkdown(w io.Writer) error {
	title := s.Benchmark
	if s.Model != "" {
		title += " — " + s.Model
	}
	fmt.Fprintf(w, "# %s\n\n", title)
	if !s.Complete {
		fmt.Fprintf(
			w,
			"**Partial run:** %d of %d questions answered; re-run the same command to finish it.\n\n",
			s.N,
			s.Requested,
		)
	}
	t := stats.Table{Header: []string{"metric", "value"}, Align: []byte{'l', 'r'}}
	t.AddRow("accuracy (%)", fmt.Sprintf("%s [%s, %s]", stats.Pct(s.Accuracy), stats.Pct(s.CILow), stats.Pct(s.CIHigh)))
	t.AddRow("correct / n", fmt.Sprintf("%d / %d", s.Correct, s.N))
	if s.K > 1 {
		t.AddRow(fmt.Sprintf("maj@%d (%%)", s.K), stats.Pct(s.MajAtK))
		keys := make([]int, 0, len(s.PassAtK))
		for k := range s.PassAtK {
			v, _ := strconv.Atoi(k)
			keys = append(keys, v)
		}
		sort.Ints(keys)
		for _, k := range keys {
			t.AddRow(fmt.Sprintf("pass@%d (%%)", k), stats.Pct(s.PassAtK[strconv.Itoa(k)]))
		}
	}
	t.AddRow("generated tokens", strconv.FormatInt(s.GeneratedTokens, 10))
	t.AddRow("mean tokens / response", fmt.Sprintf("%.1f", s.MeanTokens))
	t.AddRow("truncated responses", strconv.Itoa(s.Truncated))
	t.AddRow("tokens/s (last session)", fmt.Sprintf("%.1f", s.TokensPerSec))
	if err := t.WriteMarkdown(w); err != nil {
		return err
	}
	for _, sec := range []struct {
		name string
		gs   []Group
	}{{"subject", s.BySubject}, {"level", s.ByLevel}} {
		if len(sec.gs) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n## By %s\n\n", sec.name)
		gt := stats.Table{
			Header: []string{sec.name, "n", "correct", "acc (%)", "95% CI"},
			Align:  []byte{'l', 'r', 'r', 'r', 'r'},
		}
		for _, g := range sec.gs {
			gt.AddRow(g.Name, strconv.Itoa(g.N), strconv.Itoa(g.Correct), stats.Pct(g.Accuracy),
				fmt.Sprintf("[%s, %s]", stats.Pct(g.CILow), stats.Pct(g.CIHigh)))
		}
		if err := gt.WriteMarkdown(w); err != nil {
			return err
		}
	}
	return nil
}
