package main

import (
	"github.com/urfave/cli/v2"

	"github.com/bpo-dev/bpo/internal/runlock"
)

// lockedRun wraps the action of a command that writes the run directory --out: the directory is
// locked before any work starts, so a second run on it is refused at once instead of racing the
// first on its checkpoints.
func lockedRun(action cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		lock, err := runlock.Acquire(c.String("out"))
		if err != nil {
			return err
		}
		defer lock.Release()
		return action(c)
	}
}
