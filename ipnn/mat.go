package ipnn

import (
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// Mat is a dense row-major float32 matrix.
type Mat struct {
	Rows, Cols int
	Data       []float32
}

// NewMat returns a zeroed rows×cols matrix.
func NewMat(rows, cols int) Mat {
	return Mat{Rows: rows, Cols: cols, Data: make([]float32, rows*cols)}
}

// Row returns row i as a slice sharing the matrix storage.
func (m Mat) Row(i int) []float32 { return m.Data[i*m.Cols : (i+1)*m.Cols] }

// reshape returns the same storage viewed as rows×cols; the element count must match.
func (m Mat) reshape(rows, cols int) Mat {
	if rows*cols != len(m.Data) {
		panic("ipnn: reshape size mismatch") // programming error, never input-driven
	}
	return Mat{Rows: rows, Cols: cols, Data: m.Data}
}

// ensure returns m resized to rows×cols, reusing its storage when large enough.
func ensure(m Mat, rows, cols int) Mat {
	n := rows * cols
	if cap(m.Data) < n {
		return NewMat(rows, cols)
	}
	return Mat{Rows: rows, Cols: cols, Data: m.Data[:n]}
}

func (m Mat) general() blas32.General {
	return blas32.General{Rows: m.Rows, Cols: m.Cols, Stride: m.Cols, Data: m.Data}
}

// gemm computes c = alpha*op(a)*op(b) + beta*c with gonum's float32 BLAS.
func gemm(transA, transB bool, alpha float32, a, b Mat, beta float32, c Mat) {
	ta, tb := blas.NoTrans, blas.NoTrans
	if transA {
		ta = blas.Trans
	}
	if transB {
		tb = blas.Trans
	}
	blas32.Gemm(ta, tb, alpha, a.general(), b.general(), beta, c.general())
}

// maxWorkers caps goroutine fan-out: the machines this runs on are small and shared.
func maxWorkers() int {
	w := runtime.GOMAXPROCS(0)
	if w > 2 {
		w = 2
	}
	if w < 1 {
		w = 1
	}
	return w
}

// parallelRows runs fn(worker, lo, hi) over [0,n) split into at most maxWorkers contiguous
// chunks; worker is in [0, maxWorkers()). Small n runs inline to avoid goroutine overhead.
func parallelRows(n, minPerWorker int, fn func(worker, lo, hi int)) {
	w := maxWorkers()
	if n < 2*minPerWorker || w == 1 {
		fn(0, 0, n)
		return
	}
	chunk := (n + w - 1) / w
	var wg sync.WaitGroup
	for i, lo := 0, 0; lo < n; i, lo = i+1, lo+chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func(i, lo, hi int) {
			defer wg.Done()
			fn(i, lo, hi)
		}(i, lo, hi)
	}
	wg.Wait()
}
