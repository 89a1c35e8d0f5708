package align

import (
	"fmt"
	"os"
	"path/filepath"
)

// removeStaleCheckpointTemps removes the temporary checkpoint folders (".checkpoint-N.tmp") that a
// process killed while saving left in runDir: a checkpoint is whole once renamed, and its temporary
// folder is never resumed from. Only the rank that writes the run folder calls it, before it writes.
func removeStaleCheckpointTemps(runDir string) error {
	stale, err := filepath.Glob(filepath.Join(runDir, ".checkpoint-*.tmp"))
	if err != nil {
		return err
	}
	for _, dir := range stale {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove the unfinished checkpoint %s: %w", dir, err)
		}
	}
	return nil
}
