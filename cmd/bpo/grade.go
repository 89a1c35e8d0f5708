package main

import (
	"fmt"
	"strings"

	"github.com/bpo-dev/bpo/eval"
	"github.com/bpo-dev/bpo/eval/bench"
	"github.com/bpo-dev/bpo/eval/grader"
	"github.com/urfave/cli/v2"
)

// gradeCommand grades given responses without a model.
func gradeCommand() *cli.Command {
	return &cli.Command{
		Name:  "grade",
		Usage: "grade model responses against reference answers (no model needed)",
		Description: "Reads IN.jsonl, one JSON object per line with \"response\" (the model output) and \"answer\"\n" +
			"(the reference final answer; a full GSM8K answer ending in \"#### N\" also works). Answers are\n" +
			"extracted and compared like the Qwen2.5-Math grader (--method qwen, the default) or like\n" +
			"lm-evaluation-harness's GSM8K filters (--method strict | cot-strict | flexible).\n" +
			"With --out, every line is written back with \"pred\" and \"correct\" added.\n" +
			"The last line on stdout is exactly: accuracy: 0.xxxx (n/N)\n\n" +
			"   bpo grade --benchmark math500 --in responses.jsonl --out graded.jsonl",
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:     "benchmark",
				Aliases:  []string{"b"},
				Required: true,
				Usage:    "benchmark name: " + strings.Join(bench.Names(), ", "),
			},
			&cli.StringFlag{
				Name:     "in",
				Aliases:  []string{"i"},
				Required: true,
				Usage:    "input JSONL with \"response\" and \"answer\"",
			},
			&cli.StringFlag{
				Name:    "out",
				Aliases: []string{"o"},
				Usage:   "output JSONL (input lines plus \"pred\" and \"correct\"), written atomically",
			},
			&cli.StringFlag{
				Name:  "method",
				Value: string(grader.MethodQwen),
				Usage: "grading method: qwen, strict, cot-strict or flexible",
			},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("grade: unexpected arguments %v (options only)", c.Args().Slice())
			}
			m, err := grader.ParseMethod(c.String("method"))
			if err != nil {
				return fmt.Errorf("grade: %w", err)
			}
			counts, err := eval.GradeFile(c.String("benchmark"), m, c.String("in"), c.String("out"))
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, counts.AccuracyLine())
			return nil
		},
	}
}
