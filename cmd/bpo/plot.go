package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/bpo-dev/bpo/align"
	"github.com/urfave/cli/v2"
)

// plotCommand renders the reward curves of one or more training runs.
func plotCommand() *cli.Command {
	return &cli.Command{
		Name:      "plot",
		Usage:     "plot rewards/chosen, rewards/rejected and rewards/margins of training runs to a PNG",
		ArgsUsage: "RUN_DIR...",
		Description: "Reads RUN_DIR/" + align.MetricsFileName + " of each run (written by `bpo train`) and draws three\n" +
			"panels side by side — rewards/chosen, rewards/rejected, rewards/margins against the step — with one\n" +
			"line per run, labelled by the run directory's name, and a dashed zero line: a chosen reward below\n" +
			"zero is the BPO paper's Degraded Chosen Responses. Example:\n\n" +
			"   bpo plot --out dpo-vs-bpo.png runs/dpo runs/bpo\n\n" +
			"Online runs (bpo grpo) get reward, reward_std, kl, completions/mean_length and, when evaluated,\n" +
			"eval/accuracy per round.\n\n" +
			"Options go before the run directories.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: "rewards.png", Usage: "PNG file to write"},
			&cli.Float64Flag{
				Name:  "smooth",
				Value: 0,
				Usage: "exponential moving average weight in [0, 1) applied to every curve (0: raw values)",
			},
			&cli.IntFlag{Name: "width", Value: 1500, Usage: "image width in pixels"},
			&cli.IntFlag{Name: "height", Value: 480, Usage: "image height in pixels"},
		},
		Action: func(c *cli.Context) error {
			dirs := c.Args().Slice()
			if len(dirs) == 0 {
				return errors.New("plot: give at least one RUN_DIR (a directory holding " + align.MetricsFileName + ")")
			}
			for _, d := range dirs {
				if len(d) > 1 && d[0] == '-' {
					return fmt.Errorf("plot: %q looks like an option: put options before the RUN_DIRs", d)
				}
			}
			labels := align.RunLabels(dirs)
			opts := align.PlotOptions{WidthPx: c.Int("width"), HeightPx: c.Int("height"), Smooth: c.Float64("smooth")}
			online := 0
			for _, d := range dirs {
				if align.IsGRPOMetricsFile(filepath.Join(d, align.MetricsFileName)) {
					online++
				}
			}
			if online > 0 {
				if online != len(dirs) {
					return errors.New("plot: give either preference runs (bpo train) or online runs (bpo grpo), not both")
				}
				if err := align.PlotGRPO(dirs, labels, c.String("out"), opts); err != nil {
					return fmt.Errorf("plot: %w", err)
				}
				fmt.Fprintf(c.App.Writer, "wrote %s (reward, reward_std, kl, completions/mean_length, eval/accuracy)\n", c.String("out"))
				return nil
			}
			runs := make([]align.Run, 0, len(dirs))
			for i, d := range dirs {
				r, err := align.LoadRun(d)
				if err != nil {
					return fmt.Errorf("plot: %w", err)
				}
				r.Name = labels[i]
				runs = append(runs, r)
			}
			out := c.String("out")
			if err := align.PlotRewards(runs, out, opts); err != nil {
				return err
			}
			for _, r := range runs {
				last := r.Steps[len(r.Steps)-1]
				fmt.Fprintf(
					c.App.Writer,
					"%s: %d steps, last step %d: rewards/chosen %.4f rewards/rejected %.4f rewards/margins %.4f dcr_rate %.2f\n",
					r.Name,
					len(r.Steps),
					last.Step,
					last.RewardsChosen,
					last.RewardsRejected,
					last.RewardsMargins,
					last.DCRRate,
				)
			}
			fmt.Fprintf(c.App.Writer, "wrote %s\n", out)
			return nil
		},
	}
}
