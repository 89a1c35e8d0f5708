package align

import "fmt"

// Comm is the collective communication a data-parallel run needs: every process of the job (a
// rank) runs the same Trainer on the same data, and Comm joins their work. internal/mpi
// implements it over MPI; a nil Comm in a config means one process.
type Comm interface {
	// Rank is this process's number in 0..Size()-1; rank 0 writes the run directory.
	Rank() int
	// Size is the number of processes of the job.
	Size() int
	// AllgatherFloat32 gathers every rank's send (all of the same length) into recv, in rank
	// order: recv[r*len(send):(r+1)*len(send)] is rank r's.
	AllgatherFloat32(send, recv []float32) error
	// AllgatherFloat64 is AllgatherFloat32 for float64 values.
	AllgatherFloat64(send, recv []float64) error
}

// singleProcess is the Comm of a run without MPI.
type singleProcess struct{}

func (singleProcess) Rank() int { return 0 }
func (singleProcess) Size() int { return 1 }
func (singleProcess) AllgatherFloat32(send, recv []float32) error {
	if len(recv) != len(send) {
		return fmt.Errorf("allgather: receive buffer has %d values, want %d", len(recv), len(send))
	}
	copy(recv, send)
	return nil
}
func (singleProcess) AllgatherFloat64(send, recv []float64) error {
	if len(recv) != len(send) {
		return fmt.Errorf("allgather: receive buffer has %d values, want %d", len(recv), len(send))
	}
	copy(recv, send)
	return nil
}

// SingleProcess returns the Comm of a job of one process.
func SingleProcess() Comm { return singleProcess{} }

// commOrSingle returns c, or SingleProcess for nil.
func commOrSingle(c Comm) Comm {
	if c == nil {
		return singleProcess{}
	}
	return c
}

// GatherFloat64s gathers every rank's values (any lengths, possibly different) and returns them
// in rank order: two allgathers, one for the lengths and one for the values padded to the longest.
func GatherFloat64s(c Comm, values []float64) ([][]float64, error) {
	c = commOrSingle(c)
	n := c.Size()
	lens := make([]float64, n)
	if err := c.AllgatherFloat64([]float64{float64(len(values))}, lens); err != nil {
		return nil, err
	}
	longest := 0
	for _, l := range lens {
		longest = max(longest, int(l))
	}
	send := make([]float64, longest)
	copy(send, values)
	recv := make([]float64, n*longest)
	if err := c.AllgatherFloat64(send, recv); err != nil {
		return nil, err
	}
	out := make([][]float64, n)
	for r := range out {
		out[r] = recv[r*longest : r*longest+int(lens[r])]
	}
	return out, nil
}
