//go:build !mpi

package mpi

import (
	"errors"
	"fmt"
)

// Enabled reports whether this build talks to MPI (build tag mpi).
const Enabled = false

// World is the single process of a build without MPI.
type World struct{}

// Init returns the world of this single process. A process that an MPI launcher started as one of
// several is refused: each rank would run the whole job on its own and write the same files.
func Init() (*World, error) {
	if n := LaunchedSize(); n > 1 {
		return nil, fmt.Errorf(
			"mpi: launched as one of %d MPI processes, but this bpo was built without MPI: build it with `make build-mpi` (needs Open MPI: apt-get install openmpi-bin libopenmpi-dev)",
			n,
		)
	}
	return &World{}, nil
}

// Rank is 0.
func (*World) Rank() int { return 0 }

// Size is 1.
func (*World) Size() int { return 1 }

// AllgatherFloat32 copies send into recv.
func (*World) AllgatherFloat32(send, recv []float32) error {
	if len(recv) != len(send) {
		return errors.New("mpi: allgather: receive buffer size differs from the send size")
	}
	copy(recv, send)
	return nil
}

// AllgatherFloat64 copies send into recv.
func (*World) AllgatherFloat64(send, recv []float64) error {
	if len(recv) != len(send) {
		return errors.New("mpi: allgather: receive buffer size differs from the send size")
	}
	copy(recv, send)
	return nil
}

// AllgatherBytes returns a copy of send as the only rank's bytes.
func (*World) AllgatherBytes(send []byte) ([][]byte, error) {
	return [][]byte{append([]byte(nil), send...)}, nil
}

// Barrier returns at once.
func (*World) Barrier() error { return nil }

// Abort does nothing: the caller exits.
func (*World) Abort(int) {}

// Finalize does nothing.
func (*World) Finalize() error { return nil }
