package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/bpo-dev/bpo/llama"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// work is one measured job, written to a text file that the Go runner and the C baseline both read,
// so that both do exactly the same work with the same settings.
//
// Format (one item per line, ids separated by spaces):
//
//	bpo-bench-work 1
//	model PATH
//	mode score|gen
//	threads T
//	n_ctx N
//	n_batch B
//	n_seq S
//	max_tokens M        (gen: new tokens per request, greedy)
//	repack 0|1          (1: let llama.cpp repack weights for its CPU kernels; the Go bridge never does)
//	requests R
//	P n id...           (a request's prompt)
//	C n id...           (score: a completion of the preceding prompt; repeatable)
//	end
type work struct {
	Model     string
	Mode      string // "score" or "gen"
	Threads   int
	NCtx      int
	NBatch    int
	NSeq      int
	MaxTokens int
	Repack    bool
	Requests  []workRequest
}

type workRequest struct {
	Prompt      []llama.Token
	Completions [][]llama.Token
}

// tokens is the number of tokens the work decodes before generation: every prompt and completion.
func (w *work) tokens() int {
	n := 0
	for _, r := range w.Requests {
		n += len(r.Prompt)
		for _, c := range r.Completions {
			n += len(c)
		}
	}
	return n
}

func writeIDs(b *strings.Builder, tag string, ids []llama.Token) {
	fmt.Fprintf(b, "%s %d", tag, len(ids))
	for _, t := range ids {
		fmt.Fprintf(b, " %d", t)
	}
	b.WriteByte('\n')
}

// writeWork writes w to path atomically.
func writeWork(path string, w *work) error {
	var b strings.Builder
	repack := 0
	if w.Repack {
		repack = 1
	}
	fmt.Fprintf(
		&b,
		"bpo-bench-work 1\nmodel %s\nmode %s\nthreads %d\nn_ctx %d\nn_batch %d\nn_seq %d\nmax_tokens %d\nrepack %d\nrequests %d\n",
		w.Model,
		w.Mode,
		w.Threads,
		w.NCtx,
		w.NBatch,
		w.NSeq,
		w.MaxTokens,
		repack,
		len(w.Requests),
	)
	for _, r := range w.Requests {
		writeIDs(&b, "P", r.Prompt)
		for _, c := range r.Completions {
			writeIDs(&b, "C", c)
		}
	}
	b.WriteString("end\n")
	return atomicfile.Write(path, []byte(b.String()))
}

// readWork parses a work file; errors name the line.
func readWork(path string) (*work, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	w := &work{}
	line := 0
	nReq := -1
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		bad := func(what string) error { return fmt.Errorf("%s:%d: %s", path, line, what) }
		if line == 1 {
			if sc.Text() != "bpo-bench-work 1" {
				return nil, bad(`want header "bpo-bench-work 1"`)
			}
			continue
		}
		key := fields[0]
		switch key {
		case "model", "mode":
			if len(fields) != 2 {
				return nil, bad(key + " needs one value")
			}
			if key == "model" {
				w.Model = fields[1]
			} else {
				w.Mode = fields[1]
			}
		case "threads", "n_ctx", "n_batch", "n_seq", "max_tokens", "repack", "requests":
			if len(fields) != 2 {
				return nil, bad(key + " needs one value")
			}
			v, err := strconv.Atoi(fields[1])
			if err != nil || v < 0 {
				return nil, bad(key + ": want a non-negative integer")
			}
			switch key {
			case "threads":
				w.Threads = v
			case "n_ctx":
				w.NCtx = v
			case "n_batch":
				w.NBatch = v
			case "n_seq":
				w.NSeq = v
			case "max_tokens":
				w.MaxTokens = v
			case "repack":
				w.Repack = v != 0
			case "requests":
				nReq = v
			}
		case "P", "C":
			if len(fields) < 2 {
				return nil, bad(key + " needs a count")
			}
			n, err := strconv.Atoi(fields[1])
			if err != nil || n != len(fields)-2 {
				return nil, bad(fmt.Sprintf("%s count %q does not match %d ids", key, fields[1], len(fields)-2))
			}
			ids := make([]llama.Token, n)
			for i, s := range fields[2:] {
				v, err := strconv.ParseInt(s, 10, 32)
				if err != nil {
					return nil, bad(fmt.Sprintf("id %q is not an integer", s))
				}
				ids[i] = llama.Token(v)
			}
			if key == "P" {
				w.Requests = append(w.Requests, workRequest{Prompt: ids})
			} else {
				if len(w.Requests) == 0 {
					return nil, bad("C line before any P line")
				}
				last := &w.Requests[len(w.Requests)-1]
				last.Completions = append(last.Completions, ids)
			}
		case "end":
			if nReq != len(w.Requests) {
				return nil, bad(fmt.Sprintf("%d requests, header says %d", len(w.Requests), nReq))
			}
			if w.Model == "" {
				return nil, bad("no model line before end")
			}
			if w.Mode != "score" && w.Mode != "gen" {
				return nil, bad(fmt.Sprintf("mode %q, want score or gen", w.Mode))
			}
			return w, nil
		default:
			return nil, bad(fmt.Sprintf("unknown key %q", key))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return nil, fmt.Errorf("%s: no \"end\" line (truncated?)", path)
}
