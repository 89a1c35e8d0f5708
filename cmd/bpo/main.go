// Command bpo fine-tunes local GGUF language models with preference optimization (BPO and the DPO
// family), evaluates math accuracy, compares checkpoints and runs IPNN experiments.
//
// Every subcommand is a thin layer over the packages llama, align, eval and ipnn.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/urfave/cli/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	world, err := startWorld()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bpo:", err)
		os.Exit(1)
	}
	app := newApp()
	app.Metadata = map[string]any{worldKey: world}
	for i, cmd := range app.Commands {
		app.Commands[i] = singleProcessOnly(cmd)
	}
	if err := app.RunContext(ctx, os.Args); err != nil {
		prefix := "bpo:"
		if world.Size() > 1 {
			prefix = fmt.Sprintf("bpo (rank %d of %d):", world.Rank(), world.Size())
		}
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, prefix, "interrupted")
			exitJob(world, 130)
		}
		fmt.Fprintln(os.Stderr, prefix, err)
		exitJob(world, 1)
	}
	exitJob(world, 0)
}

// newApp builds the command tree. Each subcommand lives in its own file of this package.
func newApp() *cli.App {
	return &cli.App{
		Name:    "bpo",
		Version: buildVersion(),
		Usage:   "preference optimization (BPO, DPO, ...) and math evaluation for local GGUF models",
		Commands: []*cli.Command{
			// COMMANDS: one line per subcommand constructor, kept in this order.
			infoCommand(),
			tokenizeCommand(),
			generateCommand(),
			logprobsCommand(),
			modelCommand(),
			exportCommand(),
			importCommand(),
			sftCommand(),
			trainCommand(),
			filterCommand(),
			plotCommand(),
			evalCommand(),
			pairsCommand(),
			grpoCommand(),
			iterateCommand(),
			gradeCommand(),
			compareCommand(),
			ipnnCommand(),
			dataCommand(),
			devicesCommand(),
		},
	}
}

// buildVersion is the module version and VCS revision the binary was built from (go build records
// them), e.g. "(devel) 3b5cd8d (modified)".
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value[:min(len(s.Value), 12)]
		case "vcs.modified":
			if s.Value == "true" {
				modified = " (modified)"
			}
		}
	}
	if rev != "" {
		v += " " + rev + modified
	}
	return v
}
