package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/eval"
	"github.com/bpo-dev/bpo/eval/shardgen"
	"github.com/bpo-dev/bpo/internal/mpi"
)

// The MPI job (README "Past one machine"): main starts MPI when an MPI launcher started bpo as one
// of several processes and keeps the world in the app's metadata.
const worldKey = "mpi.world"

// dataParallelCommands run as one job over several MPI ranks; the others refuse to.
var dataParallelCommands = map[string]bool{"train": true, "sft": true, "eval": true, "pairs": true}

// startWorld starts MPI when launched by mpirun/srun with more than one process, and otherwise
// returns the single-process world without touching MPI.
func startWorld() (*mpi.World, error) {
	if !mpi.Launched() {
		return new(mpi.World), nil
	}
	return mpi.Init()
}

// worldOf returns the job's world (one process when the app runs without MPI, as in tests).
func worldOf(c *cli.Context) *mpi.World {
	if w, ok := c.App.Metadata[worldKey].(*mpi.World); ok && w != nil {
		return w
	}
	return new(mpi.World)
}

// commOf returns the communicator of the job for align, nil for a single process.
func commOf(c *cli.Context) align.Comm {
	if w := worldOf(c); w.Size() > 1 {
		return w
	}
	return nil
}

// isRank0 reports whether this process writes the run's files and reports progress.
func isRank0(c *cli.Context) bool { return worldOf(c).Rank() == 0 }

// singleProcessOnly wraps the action of a command that does not run data-parallel: under a launcher
// with several processes it refuses instead of letting each rank run the whole job.
func singleProcessOnly(cmd *cli.Command) *cli.Command {
	if cmd.Action == nil || dataParallelCommands[cmd.Name] {
		return cmd
	}
	action := cmd.Action
	cmd.Action = func(c *cli.Context) error {
		if w := worldOf(c); w.Size() > 1 {
			return fmt.Errorf(
				"bpo %s runs in one process; under mpirun only bpo train, sft, eval and pairs run as one job (launched here with %d processes)",
				c.Command.Name,
				w.Size(),
			)
		}
		return action(c)
	}
	return cmd
}

// exitJob ends the process: under MPI a failed rank aborts the whole job (MPI_Abort, which the
// launcher reports), so that no rank waits forever for it; a finished one finalizes MPI.
func exitJob(w *mpi.World, code int) {
	if w.Size() > 1 {
		if code != 0 && code != 130 { // 130: every rank was interrupted after the same step
			fmt.Fprintf(
				os.Stderr,
				"bpo: rank %d of %d failed: aborting the MPI job (the run folder keeps what was saved: relaunch the same command to resume)\n",
				w.Rank(),
				w.Size(),
			)
			w.Abort(code)
		}
		if err := w.Finalize(); err != nil {
			fmt.Fprintln(os.Stderr, "bpo:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// shardedGeneration runs the generating part of bpo eval or bpo pairs. In one process it is
// run(local). Under MPI rank 0 calls run with a generator that shares each batch with the other
// ranks (eval/shardgen), so that only rank 0 writes the run folder, exactly as one process would;
// the other ranks generate their shares until rank 0 is done.
func shardedGeneration(c *cli.Context, local eval.Generator, run func(gen eval.Generator) error) error {
	w := worldOf(c)
	if w.Size() <= 1 { // the zero World of a single process built with MPI has size 0
		return run(local)
	}
	if w.Rank() != 0 {
		fmt.Fprintf(
			os.Stderr,
			"%s: rank %d of %d: generating its share of rank 0's batches\n",
			c.Command.Name,
			w.Rank(),
			w.Size(),
		)
		return shardgen.Serve(c.Context, w, local)
	}
	leader, err := shardgen.NewLeader(w, local)
	if err != nil {
		return err
	}
	fmt.Fprintf(
		os.Stderr,
		"%s: rank 0 of %d: batches shared with the other ranks, run folder written here\n",
		c.Command.Name,
		w.Size(),
	)
	err = run(leader)
	return errors.Join(err, leader.Close())
}
