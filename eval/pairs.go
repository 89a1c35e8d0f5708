package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// Pair is one on-policy preference pair, a line of the pairs file. It is read by `bpo train`
// (align.LoadPreferences) through its {"prompt","chosen","rejected"} fields: prompt is the chat
// message list (or the raw text prompt), chosen and rejected are completion strings. The other
// fields are for inspection. (There is deliberately no "question" key: the preference loader
// reads that key as the {"question","chosen":{"solution"}} shape.)
type Pair struct {
	Prompt       json.RawMessage `json:"prompt"`
	Chosen       string          `json:"chosen"`
	Rejected     string          `json:"rejected"`
	ID           string          `json:"id"`
	Benchmark    string          `json:"benchmark"`
	Problem      string          `json:"problem,omitempty"`
	Answer       string          `json:"answer"`
	ChosenPred   string          `json:"chosen_pred"`
	RejectedPred string          `json:"rejected_pred"`
}

// PairOptions configure BuildPairs.
type PairOptions struct {
	// Seed makes the choice among several correct/incorrect responses reproducible (per question,
	// whatever the order of the records).
	Seed uint64
	// MaxPerQuestion is the number of pairs per question (distinct chosen and distinct rejected
	// responses where available); 0 means 1.
	MaxPerQuestion int
}

// PairStats counts what BuildPairs found.
type PairStats struct {
	Questions  int `json:"questions"`   // questions seen
	Paired     int `json:"paired"`      // questions with at least one pair
	AllCorrect int `json:"all_correct"` // no pair: every response correct
	AllWrong   int `json:"all_wrong"`   // no pair: no response correct (or only empty wrong ones)
	Pairs      int `json:"pairs"`       // pairs written
}

// String is a one-line account.
func (s PairStats) String() string {
	return fmt.Sprintf("%d questions: %d with pairs (%d pairs), %d all correct, %d all wrong (no pair for %d)",
		s.Questions, s.Paired, s.Pairs, s.AllCorrect, s.AllWrong, s.AllCorrect+s.AllWrong)
}

// BuildPairs makes preference pairs from graded samples (k responses per question, e.g. a run
// with Gen.N = 8 and temperature > 0): chosen is a correct response, rejected an incorrect one.
// Empty responses are never used. Questions whose responses are all correct or all wrong give
// no pair and are counted in the stats.
func BuildPairs(recs []Record, opts PairOptions) ([]Pair, PairStats) {
	per := max(opts.MaxPerQuestion, 1)
	var st PairStats
	var out []Pair
	for i := range recs {
		r := &recs[i]
		st.Questions++
		var good, bad []int
		for j, text := range r.Responses {
			if strings.TrimSpace(text) == "" {
				continue
			}
			if r.Corrects[j] {
				good = append(good, j)
			} else {
				bad = append(bad, j)
			}
		}
		switch {
		case len(good) == 0:
			st.AllWrong++
			continue
		case len(bad) == 0:
			st.AllCorrect++
			continue
		}
		// One random stream per question: the choice does not depend on the records' order, which
		// differs between an interrupted-and-resumed run and an uninterrupted one.
		rng := rand.New(rand.NewPCG(opts.Seed, SampleSeed(0x70616972, r.ID, 0)))
		rng.Shuffle(len(good), func(a, b int) { good[a], good[b] = good[b], good[a] })
		rng.Shuffle(len(bad), func(a, b int) { bad[a], bad[b] = bad[b], bad[a] })
		prompt := promptJSON(r)
		n := min(per, max(len(good), len(bad)))
		for p := range n {
			c, x := good[p%len(good)], bad[p%len(bad)]
			out = append(out, Pair{
				Prompt: prompt, Chosen: r.Responses[c], Rejected: r.Responses[x],
				ID: r.ID, Benchmark: r.Benchmark, Problem: r.Question, Answer: r.Gold,
				ChosenPred: r.Preds[c], RejectedPred: r.Preds[x],
			})
		}
		st.Paired++
		st.Pairs += n
	}
	return out, st
}

// promptJSON is the record's chat messages as a JSON list, or its text prompt as a JSON string.
func promptJSON(r *Record) json.RawMessage {
	var b []byte
	if len(r.Prompt.Messages) > 0 {
		b, _ = json.Marshal(r.Prompt.Messages)
	} else {
		b, _ = json.Marshal(r.Prompt.Text)
	}
	return b
}

// WritePairs writes pairs as JSONL to path atomically.
func WritePairs(path string, pairs []Pair) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range pairs {
		if err := enc.Encode(&pairs[i]); err != nil {
			return fmt.Errorf("encode pair %d: %w", i, err)
		}
	}
	return atomicfile.Write(path, buf.Bytes())
}
