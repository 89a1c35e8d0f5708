//go:build mpi

package mpi

/*
#cgo pkg-config: ompi-c
#include <mpi.h>
#include <stdlib.h>

static int bpo_mpi_init(int *provided) {
	int done = 0;
	MPI_Initialized(&done);
	if (done) {
		MPI_Query_thread(provided);
		return MPI_SUCCESS;
	}
	// Go moves goroutines between threads, so calls may come from any thread (one at a time).
	return MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
}
static int bpo_mpi_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int bpo_mpi_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int bpo_mpi_allgather_f32(const float *send, int n, float *recv) {
	return MPI_Allgather(send, n, MPI_FLOAT, recv, n, MPI_FLOAT, MPI_COMM_WORLD);
}
static int bpo_mpi_allgather_f64(const double *send, int n, double *recv) {
	return MPI_Allgather(send, n, MPI_DOUBLE, recv, n, MPI_DOUBLE, MPI_COMM_WORLD);
}
static int bpo_mpi_allgather_int(int v, int *recv) {
	return MPI_Allgather(&v, 1, MPI_INT, recv, 1, MPI_INT, MPI_COMM_WORLD);
}
static int bpo_mpi_allgatherv_bytes(const void *send, int n, void *recv, const int *counts, const int *displs) {
	return MPI_Allgatherv(send, n, MPI_BYTE, recv, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
}
static int bpo_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static int bpo_mpi_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static int bpo_mpi_finalize(void) { return MPI_Finalize(); }
static void bpo_mpi_errstr(int code, char *buf) {
	int n = 0;
	if (MPI_Error_string(code, buf, &n) != MPI_SUCCESS) n = 0;
	buf[n] = 0;
}
static int bpo_mpi_errors_return(void) { return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN); }
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// Enabled reports whether this build talks to MPI (build tag mpi).
const Enabled = true

// World is MPI_COMM_WORLD after Init.
type World struct {
	rank, size int
	done       bool
}

func check(what string, rc C.int) error {
	if rc == C.MPI_SUCCESS {
		return nil
	}
	buf := (*C.char)(C.malloc(C.MPI_MAX_ERROR_STRING + 1))
	defer C.free(unsafe.Pointer(buf))
	C.bpo_mpi_errstr(rc, buf)
	return fmt.Errorf("mpi: %s: %s (error %d)", what, C.GoString(buf), int(rc))
}

// Init starts MPI (once per process) and returns MPI_COMM_WORLD. Errors of later calls are
// returned, not fatal, so that a caller can say what failed before it aborts the job.
func Init() (*World, error) {
	var provided C.int
	if err := check("init", C.bpo_mpi_init(&provided)); err != nil {
		return nil, err
	}
	if provided < C.MPI_THREAD_SERIALIZED {
		return nil, fmt.Errorf(
			"mpi: init: the MPI library gives thread level %d, bpo needs MPI_THREAD_SERIALIZED (%d)",
			int(provided),
			int(C.MPI_THREAD_SERIALIZED),
		)
	}
	if err := check("set error handler", C.bpo_mpi_errors_return()); err != nil {
		return nil, err
	}
	var r, s C.int
	if err := check("rank", C.bpo_mpi_rank(&r)); err != nil {
		return nil, err
	}
	if err := check("size", C.bpo_mpi_size(&s)); err != nil {
		return nil, err
	}
	return &World{rank: int(r), size: int(s)}, nil
}

// Rank is this process's rank in MPI_COMM_WORLD.
func (w *World) Rank() int { return w.rank }

// Size is the number of processes in MPI_COMM_WORLD.
func (w *World) Size() int { return w.size }

func (w *World) checkGather(n, recv int) error {
	if w.done {
		return errors.New("mpi: allgather after finalize")
	}
	if recv != n*w.size {
		return fmt.Errorf("mpi: allgather: receive buffer has %d values, want %d ranks x %d", recv, w.size, n)
	}
	if n > math.MaxInt32 {
		return fmt.Errorf("mpi: allgather of %d values: more than MPI's int count", n)
	}
	return nil
}

// AllgatherFloat32 gathers every rank's send into recv in rank order (MPI_Allgather).
func (w *World) AllgatherFloat32(send, recv []float32) error {
	if err := w.checkGather(len(send), len(recv)); err != nil || len(send) == 0 {
		return err
	}
	return check(
		"allgather",
		C.bpo_mpi_allgather_f32(
			(*C.float)(unsafe.Pointer(&send[0])),
			C.int(len(send)),
			(*C.float)(unsafe.Pointer(&recv[0])),
		),
	)
}

// AllgatherFloat64 gathers every rank's send into recv in rank order (MPI_Allgather).
func (w *World) AllgatherFloat64(send, recv []float64) error {
	if err := w.checkGather(len(send), len(recv)); err != nil || len(send) == 0 {
		return err
	}
	return check(
		"allgather",
		C.bpo_mpi_allgather_f64(
			(*C.double)(unsafe.Pointer(&send[0])),
			C.int(len(send)),
			(*C.double)(unsafe.Pointer(&recv[0])),
		),
	)
}

// AllgatherBytes gathers every rank's send (any lengths, possibly different) and returns them in
// rank order: an allgather of the lengths, then MPI_Allgatherv of the bytes.
func (w *World) AllgatherBytes(send []byte) ([][]byte, error) {
	if w.done {
		return nil, errors.New("mpi: allgather after finalize")
	}
	if len(send) > math.MaxInt32 {
		return nil, fmt.Errorf("mpi: allgather of %d bytes: more than MPI's int count", len(send))
	}
	counts := make([]C.int, w.size)
	if err := check("allgather (lengths)", C.bpo_mpi_allgather_int(C.int(len(send)), &counts[0])); err != nil {
		return nil, err
	}
	displs := make([]C.int, w.size)
	total := 0
	for r, n := range counts {
		if n < 0 || total+int(n) > math.MaxInt32 {
			return nil, fmt.Errorf(
				"mpi: allgather: rank %d sends %d bytes after %d: more than MPI's int count",
				r,
				int(n),
				total,
			)
		}
		displs[r] = C.int(total)
		total += int(n)
	}
	// One byte more than needed, so that empty buffers still have an address.
	recv := make([]byte, total+1)
	src := append(send[:len(send):len(send)], 0)
	err := check(
		"allgather",
		C.bpo_mpi_allgatherv_bytes(
			unsafe.Pointer(&src[0]),
			C.int(len(send)),
			unsafe.Pointer(&recv[0]),
			&counts[0],
			&displs[0],
		),
	)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, w.size)
	for r := range out {
		lo := int(displs[r])
		out[r] = recv[lo : lo+int(counts[r]) : lo+int(counts[r])]
	}
	return out, nil
}

// Barrier waits until every rank has called it.
func (w *World) Barrier() error { return check("barrier", C.bpo_mpi_barrier()) }

// Abort ends every process of the job with the exit code (MPI_Abort); the launcher reports it.
func (w *World) Abort(code int) { C.bpo_mpi_abort(C.int(code)) }

// Finalize stops MPI; every rank must call it before exiting normally.
func (w *World) Finalize() error {
	if w.done {
		return nil
	}
	w.done = true
	return check("finalize", C.bpo_mpi_finalize())
}
