package align

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestRemoveStaleCheckpointTemps: the temporary folder of a checkpoint whose writer was killed goes,
// whole checkpoints and the other files stay.
func TestRemoveStaleCheckpointTemps(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{".checkpoint-000003.tmp", "checkpoint-000002"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, d, stateFileName), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{MetricsFileName, latestCheckpointFile, ".lock"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := removeStaleCheckpointTemps(dir); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{".lock", "checkpoint-000002", latestCheckpointFile, MetricsFileName}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("left %v, want %v", names, want)
	}
}
