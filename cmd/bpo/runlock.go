package main

import (
	"github.com/urfave/cli/v2"

	"github.com/bpo-dev/bpo/internal/runlock"
)

// lockedRun wraps the action of a command that writes the run directory --out: the directory is
// locked before any work starts, so a second run on it is refused at once instead of racing the
// first on its checkpoints. check (may be nil) validates the flags first, so that bad settings are
// refused before the directory is even created.
func lockedRun(check, action cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		if check != nil {
			if err := check(c); err != nil {
				return err
			}
		}
		if !isRank0(c) {
			return action(c) // rank 0 of the MPI job holds the lock for all of its ranks
		}
		lock, err := runlock.Acquire(c.String("out"))
		if err != nil {
			return err
		}
		defer lock.Release()
		return action(c)
	}
}
