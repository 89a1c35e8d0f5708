package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/urfave/cli/v2"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/align/llamaalign"
	"github.com/bpo-dev/bpo/ches"
	"github.com/bpo-dev/bpo/internal/atomicfile"
	"github.com/bpo-dev/bpo/llama"
)

func filterCommand() *cli.Command {
	return &cli.Command{
		Name:      "filter",
		Usage:     "drop the preference pairs most likely to cause likelihood displacement (CHES score)",
		UsageText: "bpo filter --model M.gguf --data pairs.jsonl --ches KEEP --out kept.jsonl",
		Description: `Scores every pair with CHES (Razin et al. 2024): <H_w, H_l> - |H_w|^2, H the sum of the
model's last hidden states over a completion's tokens. Pairs whose chosen and rejected completions
look alike to the model score high and, trained on, lower the chosen response's likelihood. The
--ches share of pairs with the lowest scores is kept: their source lines are copied unchanged to
--out; every pair's score goes to --scores (default OUT.ches.jsonl). Tokenization (template, EOS,
truncation) is the one bpo train uses.`,
		Flags: []cli.Flag{
			modelFlag("GGUF model (the one to train)"),
			&cli.StringFlag{Name: "data", Aliases: []string{"d"}, Required: true, Usage: "preference JSONL"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Usage: "JSONL of the kept pairs"},
			&cli.Float64Flag{
				Name:     "ches",
				Required: true,
				Usage:    "share of the pairs to keep, in (0, 1]: those with the lowest CHES",
			},
			&cli.BoolFlag{
				Name:  "normalized",
				Usage: "rank by the length-normalized CHES (hidden sums divided by token counts)",
			},
			&cli.StringFlag{Name: "scores", Usage: "JSONL of every pair's scores (default OUT.ches.jsonl)"},
			&cli.StringFlag{Name: "template", Usage: "chat template for conversational prompts (as bpo train)"},
			&cli.IntFlag{Name: "max-length", Value: 2048, Usage: "max tokens of prompt + completion (as bpo train)"},
			&cli.IntFlag{Name: "max-prompt-length", Value: 256, Usage: "max prompt tokens (as bpo train)"},
			&cli.StringFlag{
				Name:  "truncation-mode",
				Value: "keep_end",
				Usage: "keep_end, keep_start or error (as bpo train)",
			},
			threadsFlag(),
		},
		Action: runFilter,
	}
}

// chesRecord is one line of the scores file.
type chesRecord struct {
	Line       int     `json:"line"`
	CHES       float64 `json:"ches"`
	Normalized float64 `json:"ches_normalized"`
	Kept       bool    `json:"kept"`
}

func runFilter(c *cli.Context) error {
	dataPath, outPath, keep := c.String("data"), c.String("out"), c.Float64("ches")
	if !(keep > 0 && keep <= 1) {
		return fmt.Errorf("--ches: the share to keep must be in (0, 1], got %v", keep)
	}
	if filepath.Clean(outPath) == filepath.Clean(dataPath) {
		return fmt.Errorf("--out %s would overwrite --data", outPath)
	}
	scoresPath := c.String("scores")
	if scoresPath == "" {
		scoresPath = outPath + ".ches.jsonl"
	}
	data, err := align.LoadPreferences(dataPath, align.LoadOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "filter: %s: %s\n", dataPath, data.Summary())
	if len(data.Examples) == 0 {
		return fmt.Errorf("%s: no valid pairs", dataPath)
	}
	m, err := llama.LoadModel(c.String("model"), llama.ModelOptions{VocabOnly: true})
	if err != nil {
		return err
	}
	trunc := truncationOf(c)
	pairs, _, err := llamaalign.TokenizePreferences(m, data.Examples, align.PromptTemplate(c.String("template")), trunc)
	m.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", dataPath, err)
	}
	longest := 2
	for _, p := range pairs {
		longest = max(longest, len(p.Prompt)+max(len(p.Chosen), len(p.Rejected)))
	}
	emb, err := llama.NewEmbedder(c.String("model"), longest, threadsOf(c))
	if err != nil {
		return err
	}
	defer emb.Close()
	records := make([]chesRecord, len(pairs))
	rank := make([]float64, len(pairs))
	bar := newProgress(len(pairs), "CHES")
	for i, p := range pairs {
		if err := c.Context.Err(); err != nil {
			return err
		}
		hw, err := emb.SumHidden(p.Prompt, p.Chosen)
		if err != nil {
			return fmt.Errorf("%s:%d: chosen: %w", dataPath, p.Line, err)
		}
		hl, err := emb.SumHidden(p.Prompt, p.Rejected)
		if err != nil {
			return fmt.Errorf("%s:%d: rejected: %w", dataPath, p.Line, err)
		}
		s, err := ches.FromSums(hw, hl, len(p.Chosen), len(p.Rejected))
		if err != nil {
			return fmt.Errorf("%s:%d: %w", dataPath, p.Line, err)
		}
		records[i] = chesRecord{Line: p.Line, CHES: s.CHES, Normalized: s.Normalized}
		rank[i] = s.CHES
		if c.Bool("normalized") {
			rank[i] = s.Normalized
		}
		bar.Add(1)
	}
	bar.Finish()
	kept, err := ches.KeepLowest(rank, keep)
	if err != nil {
		return err
	}
	keepLine := map[int]bool{}
	for _, i := range kept {
		records[i].Kept = true
		keepLine[records[i].Line] = true
	}
	if err := copyLines(dataPath, outPath, keepLine); err != nil {
		return err
	}
	if err := atomicfile.WriteFunc(scoresPath, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, r := range records {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	sorted := append([]float64(nil), rank...)
	sort.Float64s(sorted)
	fmt.Printf("filter: kept %d of %d pairs (CHES%s <= %.4g; median %.4g, max %.4g) -> %s; scores -> %s\n",
		len(kept), len(pairs), map[bool]string{true: " normalized", false: ""}[c.Bool("normalized")],
		sorted[len(kept)-1], sorted[len(sorted)/2], sorted[len(sorted)-1], outPath, scoresPath)
	return nil
}

// copyLines writes the lines of src whose 1-based numbers are in keep to dst, unchanged and atomically.
func copyLines(src, dst string, keep map[int]bool) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return atomicfile.WriteFunc(dst, func(w io.Writer) error {
		br := bufio.NewReader(f)
		for n := 1; ; n++ {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 && keep[n] {
				if !bytes.HasSuffix(line, []byte("\n")) {
					line = append(line, '\n')
				}
				if _, werr := w.Write(line); werr != nil {
					return werr
				}
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read %s:%d: %w", src, n, err)
			}
		}
	})
}
