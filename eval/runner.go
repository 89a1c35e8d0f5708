package eval

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bpo-dev/bpo/eval/bench"
	"github.com/bpo-dev/bpo/eval/grader"
	"github.com/bpo-dev/bpo/eval/stats"
	"github.com/bpo-dev/bpo/internal/runlock"
)

// Options configure Run.
type Options struct {
	Prompter   bench.Prompter // how questions become prompts; nil: bench.BoxedPrompter
	PromptName string         // recorded in the summary (e.g. bench.FormatBoxed)
	Method     grader.Method  // grading method; "": grader.MethodQwen
	Gen        GenParams      // sampling settings; Gen.N is k
	Model      string         // recorded in the summary
	Adapters   []string       // recorded in the summary
	// ModelID, AdapterIDs (scale and fingerprint per adapter), PromptID (fingerprint of a prompt
	// template or shots) and ChatTemplate identify what generated the answers; with the benchmark,
	// prompt name, method and Gen they are the run's settings.json, which a resumed run must match.
	ModelID      string
	AdapterIDs   []string
	PromptID     string
	ChatTemplate string
	// BatchSize caps the requests handed to one Generate call (0: all pending at once).
	BatchSize int
	// OnProgress, if set, is called after each finished question with the number of requested
	// samples finished so far (including resumed ones) and the number requested.
	OnProgress func(done, total int)
}

// Run evaluates samples of benchmark with gen and writes the run directory runDir (see the
// package documentation for its format). Questions already in runDir/samples.jsonl are skipped,
// so re-running after an interruption resumes; each finished question is appended and fsynced
// at once. summary.json and summary.md are rewritten atomically at the end, also after a
// cancellation (then Summary.Complete is false and ctx's error is returned). A request the
// generator reports as failed is left out and retried by the next run. The summary covers every
// record in the directory (also ones from earlier runs with a larger selection).
func Run(
	ctx context.Context,
	gen Generator,
	benchmark string,
	samples []bench.Sample,
	opts Options,
	runDir string,
) (*Summary, error) {
	if err := bench.CheckName(benchmark); err != nil {
		return nil, fmt.Errorf("eval run: %w", err)
	}
	if gen == nil {
		return nil, errors.New("eval run: nil generator")
	}
	if opts.Prompter == nil {
		opts.Prompter = bench.BoxedPrompter{}
	}
	m, err := grader.ParseMethod(string(opts.Method))
	if err != nil {
		return nil, fmt.Errorf("eval run: %w", err)
	}
	opts.Method = m
	if opts.Gen.N <= 0 {
		opts.Gen.N = 1
	}
	lock, err := runlock.Acquire(runDir)
	if err != nil {
		return nil, fmt.Errorf("eval run: %w", err)
	}
	defer lock.Release()
	if err := checkSettings(runDir, settingsOf(benchmark, opts)); err != nil {
		return nil, fmt.Errorf("eval run: %w", err)
	}
	path := filepath.Join(runDir, SamplesFile)
	prev, good, err := readExisting(path)
	if err != nil {
		return nil, fmt.Errorf("eval run: %w", err)
	}
	done := map[string]bool{}
	for _, r := range prev {
		if r.Benchmark != benchmark {
			return nil, fmt.Errorf(
				"eval run: %s holds benchmark %q, not %q (use one directory per benchmark)",
				path,
				r.Benchmark,
				benchmark,
			)
		}
		if len(r.Responses) != opts.Gen.N {
			return nil, fmt.Errorf(
				"eval run: %s was written with %d responses per question, this run asks for %d",
				path,
				len(r.Responses),
				opts.Gen.N,
			)
		}
		done[r.ID] = true
	}
	seen := map[string]bool{}
	var pending []bench.Sample
	for _, s := range samples {
		if seen[s.ID] {
			return nil, fmt.Errorf("eval run: duplicate sample id %q", s.ID)
		}
		seen[s.ID] = true
		if !done[s.ID] {
			pending = append(pending, s)
		}
	}

	w, err := openRecordWriter(path, good)
	if err != nil {
		return nil, fmt.Errorf("eval run: %w", err)
	}
	recs := prev
	var (
		mu       sync.Mutex
		writeErr error
		failed   int
		tokens   int64
	)
	total := len(samples)
	finished := total - len(pending) // requested samples already in the directory
	start := time.Now()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var genErr error
	for lo := 0; lo < len(pending) && genErr == nil; {
		hi := len(pending)
		if opts.BatchSize > 0 {
			hi = min(lo+opts.BatchSize, hi)
		}
		batch := pending[lo:hi]
		reqs := make([]GenRequest, len(batch))
		prompts := make([]bench.Prompt, len(batch))
		for i, s := range batch {
			p, err := opts.Prompter.Prompt(s)
			if err != nil {
				w.close()
				return nil, fmt.Errorf("eval run: %w", err)
			}
			prompts[i] = p
			params := opts.Gen
			params.Stop = append(append([]string{}, opts.Gen.Stop...), p.Stop...)
			reqs[i] = GenRequest{ID: s.ID, Prompt: p, Params: params}
		}
		genErr = gen.Generate(runCtx, reqs, func(i int, res GenResult) {
			mu.Lock()
			defer mu.Unlock()
			if writeErr != nil {
				return
			}
			if i < 0 || i >= len(batch) {
				writeErr = fmt.Errorf("generator reported request %d of %d", i, len(batch))
				cancel()
				return
			}
			if res.Err != nil || len(res.Texts) == 0 {
				failed++
				return
			}
			r := gradeRecord(benchmark, opts.Method, batch[i], prompts[i], res)
			if err := w.append(&r); err != nil {
				writeErr = err
				cancel()
				return
			}
			for _, t := range r.Tokens {
				tokens += int64(t)
			}
			recs = append(recs, r)
			finished++
			if opts.OnProgress != nil {
				opts.OnProgress(finished, total)
			}
		})
		lo = hi
	}
	elapsed := time.Since(start)
	if err := w.close(); err != nil && writeErr == nil {
		writeErr = fmt.Errorf("close %s: %w", path, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if writeErr != nil {
		return nil, fmt.Errorf("eval run: %w", writeErr)
	}
	sum := Summarize(benchmark, recs)
	sum.Model, sum.Adapters, sum.Method, sum.Prompt, sum.Params = opts.Model, opts.Adapters, string(
		opts.Method,
	), opts.PromptName, opts.Gen
	sum.Requested = total
	sum.Failed = failed
	have := map[string]bool{}
	for _, r := range recs {
		have[r.ID] = true
	}
	missing := 0
	for id := range seen {
		if !have[id] {
			missing++
		}
	}
	sum.Complete = missing == 0 && genErr == nil
	sum.SessionTokens = tokens
	sum.SessionSeconds = elapsed.Seconds()
	if elapsed > 0 {
		sum.TokensPerSec = float64(tokens) / elapsed.Seconds()
	}
	if err := WriteSummary(runDir, sum); err != nil {
		return nil, fmt.Errorf("eval run: %w", err)
	}
	if genErr != nil {
		return sum, fmt.Errorf("eval run: generate: %w", genErr)
	}
	return sum, nil
}

// readExisting reads an existing samples file; a missing file is an empty run.
func readExisting(path string) ([]Record, int64, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	return readRecordsFile(path)
}

// gradeRecord grades all completions of one question.
func gradeRecord(benchmark string, method grader.Method, s bench.Sample, p bench.Prompt, res GenResult) Record {
	r := Record{
		ID: s.ID, Benchmark: benchmark, Prompt: p, Question: s.Question,
		Subject: s.Subject, Level: s.Level, PromptToks: res.PromptTokens,
		Responses: res.Texts, Stops: res.StopReasons,
	}
	for j, text := range res.Texts {
		g := grader.Grade(benchmark, method, text, s.Answer)
		r.Gold = g.Gold
		r.Preds = append(r.Preds, g.Pred)
		r.Corrects = append(r.Corrects, g.Correct)
		n := 0
		if j < len(res.Tokens) {
			n = res.Tokens[j]
		}
		r.Tokens = append(r.Tokens, n)
	}
	r.Response, r.Pred, r.Correct = r.Responses[0], r.Preds[0], r.Corrects[0]
	r.MajPred, _ = stats.MajorityVote(r.Preds)
	for j, p := range r.Preds {
		if p == r.MajPred && r.MajPred != "" {
			r.MajCorrect = r.Corrects[j]
			break
		}
	}
	return r
}
