package mpi

import (
	"strings"
	"testing"
)

// TestLaunchedSize reads the job size from each launcher's environment; SLURM_NTASKS counts only
// inside an srun step.
func TestLaunchedSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want int
	}{
		{"no launcher", nil, 0},
		{"mpirun", map[string]string{"OMPI_COMM_WORLD_SIZE": "4"}, 4},
		{"pmix", map[string]string{"PMIX_SIZE": "3"}, 3},
		{"slurm batch shell", map[string]string{"SLURM_NTASKS": "8"}, 0},
		{"srun step", map[string]string{"SLURM_NTASKS": "8", "SLURM_STEP_ID": "0"}, 8},
		{"garbage", map[string]string{"OMPI_COMM_WORLD_SIZE": "x"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range append(launcherSizeVars, "SLURM_STEP_ID") {
				t.Setenv(v, tc.env[v])
			}
			if got := LaunchedSize(); got != tc.want {
				t.Errorf("LaunchedSize = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestInitWithoutMPI: the default build is one process, and refuses to be one rank of several.
func TestInitWithoutMPI(t *testing.T) {
	if Enabled {
		t.Skip("built with the mpi tag: Init starts MPI")
	}
	for _, v := range append(launcherSizeVars, "SLURM_STEP_ID") {
		t.Setenv(v, "")
	}
	w, err := Init()
	if err != nil || w.Rank() != 0 || w.Size() != 1 {
		t.Fatalf("Init = %v, %v", w, err)
	}
	t.Setenv("OMPI_COMM_WORLD_SIZE", "2")
	if _, err := Init(); err == nil || !strings.Contains(err.Error(), "make build-mpi") {
		t.Errorf("Init under a 2-process launcher: %v, want a refusal naming make build-mpi", err)
	}
}
