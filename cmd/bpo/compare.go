package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bpo-dev/bpo/eval"
	"github.com/urfave/cli/v2"

	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// compareCommand prints a side-by-side accuracy table of evaluation runs with paired tests.
func compareCommand() *cli.Command {
	return &cli.Command{
		Name:      "compare",
		Usage:     "compare evaluation runs side by side over benchmarks, with paired significance tests",
		ArgsUsage: "RUN_A RUN_B [RUN...]",
		Description: "Each RUN is a run directory written by `bpo eval` (holding samples.jsonl) or a directory whose\n" +
			"subdirectories are such runs, one per benchmark (RUN/math500, RUN/gsm8k, ...). Prints a markdown\n" +
			"table: accuracy (%) of each run per benchmark, and for every run after the first its difference\n" +
			"to the first in points on the questions both answered, with a paired bootstrap 95% CI and the\n" +
			"exact McNemar p-value.\n\n" +
			"   bpo compare runs/dpo runs/bpo\n\n" +
			"Options go before the run directories.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "bootstrap", Value: 10000, Usage: "bootstrap resamples"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "bootstrap seed"},
			&cli.StringFlag{Name: "names", Usage: "comma-separated column names (default: directory names)"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "also write the table to this markdown file"},
		},
		Action: func(c *cli.Context) error {
			dirs := c.Args().Slice()
			if len(dirs) < 2 {
				return errors.New("compare: give at least two run directories")
			}
			for _, d := range dirs {
				if strings.HasPrefix(d, "-") {
					return fmt.Errorf("compare: %q looks like an option: put options before the run directories", d)
				}
			}
			var names []string
			if s := c.String("names"); s != "" {
				names = strings.Split(s, ",")
				if len(names) != len(dirs) {
					return fmt.Errorf("compare: --names has %d names for %d runs", len(names), len(dirs))
				}
			}
			runs := make([]*eval.RunSet, len(dirs))
			for i, d := range dirs {
				rs, err := eval.LoadRunSet(d)
				if err != nil {
					return err
				}
				if names != nil {
					rs.Name = strings.TrimSpace(names[i])
				} else if dup(dirs, i) {
					rs.Name = d
				}
				runs[i] = rs
			}
			rows, err := eval.Compare(
				runs,
				eval.CompareOptions{BootstrapIters: c.Int("bootstrap"), Seed: c.Uint64("seed")},
			)
			if err != nil {
				return err
			}
			var b strings.Builder
			if err := eval.WriteCompareMarkdown(&b, runs, rows); err != nil {
				return err
			}
			fmt.Fprint(c.App.Writer, b.String())
			if p := c.String("out"); p != "" {
				if err := atomicfile.Write(p, []byte(b.String())); err != nil {
					return fmt.Errorf("compare: %w", err)
				}
			}
			return nil
		},
	}
}

// dup reports whether the base name of dirs[i] is shared with another directory.
func dup(dirs []string, i int) bool {
	base := func(s string) string {
		s = strings.TrimRight(s, "/")
		return s[strings.LastIndex(s, "/")+1:]
	}
	for j := range dirs {
		if j != i && base(dirs[j]) == base(dirs[i]) {
			return true
		}
	}
	return false
}
