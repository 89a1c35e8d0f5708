package main

import (
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/bpo-dev/bpo/eval/benchdata"
	"github.com/bpo-dev/bpo/internal/atomicfile"
	"github.com/bpo-dev/bpo/mathgen"
	"github.com/urfave/cli/v2"
)

// dataCommand groups the embedded evaluation sets and the data-set generators.
func dataCommand() *cli.Command {
	return &cli.Command{
		Name:  "data",
		Usage: "list and export the evaluation sets built into bpo; generate the demo's synthetic math task",
		Subcommands: []*cli.Command{
			dataListCommand(),
			dataExportCommand(),
			dataMathgenCommand(),
		},
	}
}

// dataListCommand prints the embedded evaluation sets with their provenance.
func dataListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list the public evaluation sets built into bpo (rows, sizes, sha256, source, licence)",
		Description: "bpo eval and bpo pairs read these when --data is not given; bpo data export writes one out.\n" +
			"SHA256 is of the original public file, which export reproduces byte for byte.",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("data list: unexpected arguments %v", c.Args().Slice())
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROWS\tBYTES\tGZIP\tSHA256\tLICENCE")
			for _, s := range benchdata.All() {
				gz, err := s.CompressedSize()
				if err != nil {
					return fmt.Errorf("data list: %w", err)
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", s.Name(), s.Rows, s.Bytes, gz, s.SHA256, s.License)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, "\nSources:")
			for _, s := range benchdata.All() {
				fmt.Fprintf(c.App.Writer, "  %s: %s\n", s.Name(), s.Source)
			}
			return nil
		},
	}
}

// dataExportCommand writes an embedded evaluation set out as JSONL.
func dataExportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "write an embedded evaluation set out as JSONL (the original public file)",
		ArgsUsage: "[--out FILE] NAME",
		Description: "NAME is benchmark/split as bpo data list shows it, or a benchmark alone for its test split.\n\n" +
			"   bpo data export --out gsm8k-train.jsonl gsm8k/train\n" +
			"   bpo data export math500 | head -1",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "file to write (default: standard output)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf(
					"data export: expected one set name (see bpo data list; options go before it), got %d arguments",
					c.NArg(),
				)
			}
			set, err := benchdata.Lookup(c.Args().First())
			if err != nil {
				return fmt.Errorf("data export: %w", err)
			}
			data, err := set.Data()
			if err != nil {
				return fmt.Errorf("data export: %w", err)
			}
			out := c.String("out")
			if out == "" {
				_, err = c.App.Writer.Write(data)
				return err
			}
			if err := atomicfile.Write(out, data); err != nil {
				return fmt.Errorf("data export: %w", err)
			}
			fmt.Fprintf(c.App.ErrWriter, "wrote %s (%s, %d rows, %d bytes)\n", out, set.Name(), set.Rows, set.Bytes)
			return nil
		},
	}
}

// dataMathgenCommand writes the synthetic grade-school math task in GSM8K's JSONL shape.
func dataMathgenCommand() *cli.Command {
	return &cli.Command{
		Name:  "mathgen",
		Usage: "generate synthetic grade-school math word problems (GSM8K-shaped train/test JSONL)",
		Description: "Writes OUT/train.jsonl and OUT/test.jsonl: short word problems with 1 to 4 arithmetic steps\n" +
			"(+, -, *, exact /; the level is the number of steps), one JSON object per line:\n" +
			"  {\"question\": ..., \"answer\": \"<worked solution>\\n#### N\", \"level\": L, \"id\": \"test-00000\"}\n" +
			"Read them with --benchmark gsm8k. Test questions never appear in train; the same --seed gives\n" +
			"the same files, and the test split does not depend on --train.\n\n" +
			"   bpo data mathgen --train 4000 --test 200 --levels 1-3 --seed 1 --out data/",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "train", Value: 4000, Usage: "number of train problems"},
			&cli.IntFlag{Name: "test", Value: 200, Usage: "number of held-out test problems"},
			&cli.StringFlag{
				Name:  "levels",
				Value: "1-3",
				Usage: "difficulty levels (number of steps): N or LO-HI within 1-4",
			},
			&cli.IntFlag{
				Name:  "max-value",
				Value: mathgen.DefaultMaxValue,
				Usage: "every intermediate and final result is below this (>= 100; smaller numbers make an easier task)",
			},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed"},
			&cli.StringFlag{
				Name:     "out",
				Aliases:  []string{"o"},
				Required: true,
				Usage:    "output folder (created if missing)",
			},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("data mathgen: unexpected arguments %v (options only)", c.Args().Slice())
			}
			lo, hi, err := mathgen.ParseLevels(c.String("levels"))
			if err != nil {
				return fmt.Errorf("data mathgen: --levels: %w", err)
			}
			train, test, err := mathgen.Generate(mathgen.Config{
				Train: c.Int(
					"train",
				), Test: c.Int("test"), MinLevel: lo, MaxLevel: hi, MaxValue: c.Int("max-value"), Seed: c.Uint64("seed"),
			})
			if err != nil {
				return fmt.Errorf("data mathgen: %w", err)
			}
			dir := c.String("out")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("data mathgen: %w", err)
			}
			for _, s := range []struct {
				name string
				ps   []mathgen.Problem
			}{{"train.jsonl", train}, {"test.jsonl", test}} {
				path := filepath.Join(dir, s.name)
				if err := mathgen.WriteJSONL(path, s.ps); err != nil {
					return fmt.Errorf("data mathgen: %w", err)
				}
				fmt.Fprintf(
					c.App.Writer,
					"wrote %s (%d problems, levels %d-%d, seed %d)\n",
					path,
					len(s.ps),
					lo,
					hi,
					c.Uint64("seed"),
				)
			}
			return nil
		},
	}
}
