package main

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bpo-dev/bpo/eval"
)

func pairsCommand() *cli.Command {
	flags := generationFlags(8, 1.0, "train where the benchmark has one, else test")
	flags = append(
		flags,
		&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Usage: "pairs JSONL file to write"},
		&cli.StringFlag{
			Name:  "samples-dir",
			Usage: "run directory for the graded samples (default: OUT.samples/); re-running resumes",
		},
		&cli.IntFlag{Name: "per-question", Value: 1, Usage: "pairs per question"},
	)
	return &cli.Command{
		Name:      "pairs",
		Usage:     "build on-policy preference pairs: sample k answers per question, grade them, pair a correct with an incorrect one",
		UsageText: "bpo pairs --model M.gguf --benchmark gsm8k [--data train.jsonl] --n 8 --out pairs.jsonl [options]",
		Description: `Samples --n answers per question (temperature 1 by default), grades them against the gold answer
and writes one {"prompt","chosen","rejected",...} line per pair, readable by bpo train. Questions whose
answers are all correct or all wrong give no pair; the counts are printed.`,
		Flags:  flags,
		Action: runPairs,
	}
}

func runPairs(c *cli.Context) error {
	if fi, err := os.Stat(c.String("out")); err == nil && fi.IsDir() {
		return fmt.Errorf("pairs: --out %s is a directory; want the pairs JSONL file to write", c.String("out"))
	}
	s, err := setupEval(c, true)
	if err != nil {
		return err
	}
	defer s.Close()
	out := c.String("out")
	dir := c.String("samples-dir")
	if dir == "" {
		dir = out + ".samples"
	}
	var sum *eval.Summary
	err = shardedGeneration(c, s.gen, func(gen eval.Generator) error {
		bar := newProgress(len(s.samples), "sampling")
		last := 0
		s.opts.OnProgress = func(done, total int) { bar.Add(done - last); last = done }
		sum, err = eval.Run(c.Context, gen, c.String("benchmark"), s.samples, s.opts, dir)
		bar.Finish()
		return err
	})
	if err != nil || !isRank0(c) {
		return err
	}
	recs, err := eval.ReadRecords(dir)
	if err != nil {
		return err
	}
	// Pairs in the data file's question order (records are appended in finishing order, which
	// an interruption changes); records of questions outside this selection go last, by id.
	rank := map[string]int{}
	for i, smp := range s.samples {
		rank[smp.ID] = i
	}
	slices.SortStableFunc(recs, func(a, b eval.Record) int {
		ra, okA := rank[a.ID]
		rb, okB := rank[b.ID]
		switch {
		case okA && okB:
			return cmp.Compare(ra, rb)
		case okA != okB:
			if okA {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	pairs, st := eval.BuildPairs(recs, eval.PairOptions{Seed: c.Uint64("seed"), MaxPerQuestion: c.Int("per-question")})
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := eval.WritePairs(out, pairs); err != nil {
		return err
	}
	fmt.Printf("pairs: %s\n", st)
	fmt.Printf(
		"pairs: sample accuracy %.4f (pass@%d %.4f); wrote %d pairs to %s\n",
		sum.Accuracy,
		sum.K,
		sum.PassAtK[fmt.Sprint(sum.K)],
		len(pairs),
		out,
	)
	return nil
}
