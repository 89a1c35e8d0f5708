package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/eval"
	"github.com/bpo-dev/bpo/internal/atomicfile"
)

// iterateSettingsFile remembers the settings of an iterate run folder; a resume must match them.
const iterateSettingsFile = "iterate-settings.json"

// iterateDoneFile marks a finished round folder; a resumed run skips such rounds.
const iterateDoneFile = "done"

// iterateOwnFlags are the flags of the pairs and train commands that iterate sets itself per round.
var iterateOwnFlags = []string{"out", "samples-dir", "adapter", "init-adapter"}

// iterateUnremembered are flags that may change between a run and its resume: they change speed
// and memory, not results.
var iterateUnremembered = []string{"threads", "save-minutes", "keep-checkpoints", "checkpointing"}

// iterateFileFlags are remembered by the fingerprint of the file they name, not by its path.
var iterateFileFlags = []string{"model", "data", "init-adapter", "eval-data", "prompt-template", "shots-data"}

// iterateFlags are the flags of `bpo pairs` and `bpo train` (each name once, pairs' first, so --data
// is the question file), minus those iterate sets per round, plus its own.
func iterateFlags() []cli.Flag {
	var flags []cli.Flag
	seen := map[string]bool{}
	for _, f := range append(slices.Clone(pairsCommand().Flags), trainCommand().Flags...) {
		name := f.Names()[0]
		if seen[name] || slices.Contains(iterateOwnFlags, name) {
			continue
		}
		seen[name] = true
		flags = append(flags, f)
	}
	return append(flags,
		&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Usage: "run folder (round-NNN/{pairs.jsonl,samples,train,eval}, adapter.gguf); an existing run there is resumed"},
		&cli.IntFlag{Name: "rounds", Value: 2, Usage: "sample -> grade -> pair -> train rounds"},
		&cli.StringFlag{Name: "init-adapter", Usage: "start from this LoRA adapter GGUF (round 1 samples with it and trains from it)"},
		&cli.StringFlag{Name: "eval-data", Usage: "benchmark JSONL evaluated greedily after every round (round-NNN/eval)"},
		&cli.IntFlag{Name: "eval-limit", Usage: "evaluate at most this many --eval-data questions"},
	)
}

func iterateCommand() *cli.Command {
	return &cli.Command{
		Name:      "iterate",
		Usage:     "iterative on-policy preference optimization: rounds of bpo pairs with the current adapter, then bpo train from it",
		UsageText: "bpo iterate --model M.gguf --benchmark gsm8k [--data train.jsonl] --n 8 --loss dpo --rounds R --out RUN [options]",
		Description: `Round r samples --n answers per question with the adapter of round r-1 (round 1: the base model, or
--init-adapter), grades and pairs them into RUN/round-NNN/pairs.jsonl exactly as bpo pairs does, then trains
a preference run (any --loss) in RUN/round-NNN/train that starts from the previous adapter, as bpo train
--init-adapter does. With --eval-data the round's adapter is evaluated greedily into RUN/round-NNN/eval
(bpo compare reads those folders). The last round's adapter is copied to RUN/adapter.gguf. The flags of
bpo pairs and bpo train apply to every round (--data is the question file). Ctrl-C or a kill stops the run;
re-running the same command resumes it (finished rounds are skipped) with the same result; other settings
are refused.`,
		Flags:  iterateFlags(),
		Action: lockedRun(checkIterateFlags, runIterate),
	}
}

// checkIterateFlags refuses bad settings before the run folder is created.
func checkIterateFlags(c *cli.Context) error {
	if r := c.Int("rounds"); r < 1 {
		return fmt.Errorf("iterate: --rounds %d, want at least 1", r)
	}
	if fi, err := os.Stat(c.String("out")); err == nil && !fi.IsDir() {
		return fmt.Errorf("iterate: --out %s is a file; want the run folder", c.String("out"))
	}
	return checkTrainFlags(c)
}

// iterateSettings are the flag values a resumed run must share with the run that started the folder.
func iterateSettings(c *cli.Context) (map[string]string, error) {
	m := map[string]string{}
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if name == "out" || slices.Contains(iterateUnremembered, name) {
			continue
		}
		if slices.Contains(iterateFileFlags, name) {
			if p := c.String(name); p != "" {
				fp, err := eval.FileFingerprint(p)
				if err != nil {
					return nil, fmt.Errorf("--%s: %w", name, err)
				}
				m[name] = fp
				continue
			}
		}
		m[name] = fmt.Sprint(c.Value(name))
	}
	return m, nil
}

// checkIterateSettings writes the settings of a new run folder, or refuses a resume whose settings
// differ from the remembered ones, naming the first changed flag.
func checkIterateSettings(dir string, now map[string]string) error {
	path := filepath.Join(dir, iterateSettingsFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		b, err := json.MarshalIndent(now, "", "  ")
		if err != nil {
			return err
		}
		return atomicfile.Write(path, append(b, '\n'))
	}
	if err != nil {
		return fmt.Errorf("iterate: %w", err)
	}
	var was map[string]string
	if err := json.Unmarshal(raw, &was); err != nil {
		return fmt.Errorf("iterate: %s: %w (want a JSON object of flag settings)", path, err)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range now {
			if !yield(k) {
				return
			}
		}
		for k := range was {
			if _, ok := now[k]; !ok && !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		if was[k] != now[k] {
			return fmt.Errorf("iterate: %s was started with --%s=%q, now %q; resume with the same settings or use another --out", dir, k, was[k], now[k])
		}
	}
	return nil
}

// forwardedArgs renders the flags of c that were set and that cmd also has, as command-line arguments
// for cmd (iterate's own per-round flags excluded).
func forwardedArgs(c *cli.Context, cmd *cli.Command, skip ...string) []string {
	var args []string
	for _, f := range cmd.Flags {
		name := f.Names()[0]
		if slices.Contains(iterateOwnFlags, name) || slices.Contains(skip, name) || !c.IsSet(name) {
			continue
		}
		switch f.(type) {
		case *cli.StringSliceFlag:
			for _, v := range c.StringSlice(name) {
				args = append(args, "--"+name, v)
			}
		case *cli.BoolFlag:
			args = append(args, "--"+name+"="+strconv.FormatBool(c.Bool(name)))
		default:
			args = append(args, "--"+name, fmt.Sprint(c.Value(name)))
		}
	}
	return args
}

// runSub runs one bpo subcommand with args in the same process, as the command line would.
func runSub(c *cli.Context, args ...string) error {
	app := newApp()
	app.Metadata = c.App.Metadata
	app.Writer, app.ErrWriter = c.App.Writer, c.App.ErrWriter
	if err := app.RunContext(c.Context, append([]string{"bpo"}, args...)); err != nil {
		return fmt.Errorf("iterate: %s: %w", args[0], err)
	}
	return nil
}

// iterateRoundDir is the folder of round r (1-based) of the run in dir.
func iterateRoundDir(dir string, r int) string {
	return filepath.Join(dir, fmt.Sprintf("round-%03d", r))
}

func runIterate(c *cli.Context) error {
	runDir := c.String("out")
	settings, err := iterateSettings(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	if err := checkIterateSettings(runDir, settings); err != nil {
		return err
	}
	adapter := c.String("init-adapter")
	for r := 1; r <= c.Int("rounds"); r++ {
		dir := iterateRoundDir(runDir, r)
		trained := filepath.Join(dir, "train", align.AdapterFileName)
		if _, err := os.Stat(filepath.Join(dir, iterateDoneFile)); err == nil {
			fmt.Fprintf(c.App.ErrWriter, "iterate: round %d already done\n", r)
			adapter = trained
			continue
		}
		if err := iterateRound(c, r, dir, adapter); err != nil {
			return fmt.Errorf("round %d: %w", r, err)
		}
		if err := atomicfile.Write(filepath.Join(dir, iterateDoneFile), []byte("done\n")); err != nil {
			return err
		}
		adapter = trained
	}
	final := filepath.Join(runDir, align.AdapterFileName)
	if err := copyFileAtomic(adapter, final); err != nil {
		return err
	}
	fmt.Printf("iterate: %d rounds; adapter %s\n", c.Int("rounds"), final)
	return nil
}

// iterateRound samples and pairs with adapter (none: the base model), trains from it and evaluates
// the result; each step resumes what an interrupted run left in dir.
func iterateRound(c *cli.Context, r int, dir, adapter string) error {
	pairs := filepath.Join(dir, "pairs.jsonl")
	if _, err := os.Stat(pairs); err != nil {
		args := append([]string{"pairs", "--out", pairs, "--samples-dir", filepath.Join(dir, "samples")},
			forwardedArgs(c, pairsCommand())...)
		if adapter != "" {
			args = append(args, "--adapter", adapter)
		}
		fmt.Fprintf(c.App.ErrWriter, "iterate: round %d: sampling pairs\n", r)
		if err := runSub(c, args...); err != nil {
			return err
		}
	}
	trainDir := filepath.Join(dir, "train")
	if _, err := os.Stat(filepath.Join(trainDir, align.AdapterFileName)); err != nil {
		args := append([]string{"train", "--data", pairs, "--out", trainDir}, forwardedArgs(c, trainCommand(), "data")...)
		if adapter != "" {
			args = append(args, "--init-adapter", adapter)
		}
		fmt.Fprintf(c.App.ErrWriter, "iterate: round %d: training\n", r)
		if err := runSub(c, args...); err != nil {
			return err
		}
	}
	if p := c.String("eval-data"); p != "" {
		// Greedy, one answer per question: the sampling flags of the rounds do not apply.
		args := append([]string{"eval", "--data", p, "--out", filepath.Join(dir, "eval"), "--adapter", filepath.Join(trainDir, align.AdapterFileName)},
			forwardedArgs(c, evalCommand(), "data", "n", "temperature", "top-p", "top-k", "seed", "limit", "shard", "id", "split")...)
		if k := c.Int("eval-limit"); k > 0 {
			args = append(args, "--limit", strconv.Itoa(k))
		}
		fmt.Fprintf(c.App.ErrWriter, "iterate: round %d: evaluating\n", r)
		if err := runSub(c, args...); err != nil {
			return err
		}
	}
	return nil
}
