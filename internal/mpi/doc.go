// Package mpi is the small binding to MPI (Open MPI) that bpo's data-parallel runs need: start and
// stop, rank and size, allgather (of floats, and of bytes of any length), barrier and abort. It is
// compiled against the MPI library only with the build tag mpi (make build-mpi); the default build
// gets a stand-in whose Init refuses a job of more than one process with a message saying how to
// build with MPI.
//
// A World implements align.Comm and eval/shardgen.Comm. MPI is started only when the process was
// launched by an MPI launcher (mpirun, Slurm's srun, the Kubernetes MPI operator): see Launched.
package mpi

import (
	"os"
	"strconv"
)

// launcherSizeVars are the variables an MPI launcher sets to the number of processes of the job.
var launcherSizeVars = []string{"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "SLURM_NTASKS"}

// LaunchedSize returns the number of processes the launcher started, read from its environment,
// and 0 when the process was not started by an MPI launcher. SLURM_NTASKS counts only under srun
// (SLURM_STEP_ID set), not in a batch script's own shell.
func LaunchedSize() int {
	for _, v := range launcherSizeVars {
		if v == "SLURM_NTASKS" && os.Getenv("SLURM_STEP_ID") == "" {
			continue
		}
		if n, err := strconv.Atoi(os.Getenv(v)); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// Launched reports whether an MPI launcher started this process as part of a job of more than
// one process.
func Launched() bool { return LaunchedSize() > 1 }
