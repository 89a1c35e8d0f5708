//go:build mpi

// Command mpicomm measures what data-parallel training (align's Comm over internal/mpi) costs in
// communication per optimizer round: the gather of the micro-batches' records (two small
// allgathers of float64) and the allgather of every rank's LoRA gradient (float32), for the
// gradient sizes of two model shapes with LoRA rank 16 on all seven projections:
//
//   - Qwen2.5-0.5B: 24 layers, hidden 896, MLP 4864, 2 KV heads of 64: 8,798,208 values;
//   - Llama-3.1-8B: 32 layers, hidden 4096, MLP 14336, 8 KV heads of 128: 41,943,040 values.
//
// Run it under mpirun (make bench runs 2 ranks on this machine over loopback TCP); rank 0 writes
// -out/mpicomm.json (see package bench).
//
//	mpirun -np 2 mpicomm [-reps 5] [-out bench/results] [-command "make bench"]
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/bpo-dev/bpo/align"
	"github.com/bpo-dev/bpo/bench"
	"github.com/bpo-dev/bpo/internal/mpi"
)

// shape is a model's LoRA gradient size.
type shape struct {
	name                                 string
	layers, hidden, mlp, kvHeads, headSz int
}

// loraValues is the number of LoRA values (A and B) of rank r on q, k, v, o, gate, up and down.
func (s shape) loraValues(r int) int {
	kv := s.kvHeads * s.headSz
	perLayer := r*(s.hidden+s.hidden)*2 + r*(s.hidden+kv)*2 + r*(s.hidden+s.mlp)*3
	return s.layers * perLayer
}

func main() {
	reps := flag.Int("reps", 5, "measured rounds per shape (after one warm-up)")
	out := flag.String("out", "bench/results", "results folder")
	command := flag.String("command", "make bench", "the command that reproduces the result")
	flag.Parse()
	w, err := mpi.Init()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mpicomm:", err)
		os.Exit(1)
	}
	if err := run(w, *reps, *out, *command); err != nil {
		fmt.Fprintf(os.Stderr, "mpicomm (rank %d): %v\n", w.Rank(), err)
		w.Abort(1)
	}
	if err := w.Finalize(); err != nil {
		fmt.Fprintln(os.Stderr, "mpicomm:", err)
		os.Exit(1)
	}
}

func run(w *mpi.World, reps int, out, command string) error {
	res := bench.Start("mpicomm", "Data-parallel training: communication per optimizer round (MPI allgather)", command)
	res.Config["ranks"] = fmt.Sprint(w.Size())
	res.Config["transport"] = os.Getenv("OMPI_MCA_btl")
	res.Config["lora"] = "rank 16 on q, k, v, o, gate, up, down (float32 gradients)"
	res.Config["micro-batch record"] = "2 pairs: status, loss, count and 2 x 2 log-probs (float64)"
	shapes := []shape{
		{"Qwen2.5-0.5B", 24, 896, 4864, 2, 64},
		{"Llama-3.1-8B", 32, 4096, 14336, 8, 128},
	}
	for _, s := range shapes {
		n := s.loraValues(16)
		send := make([]float32, n)
		for i := range send {
			send[i] = float32(i%97) * 1e-3
		}
		recv := make([]float32, n*w.Size())
		meta := []float64{1, 0.69, 2, -10, -11, -12, -13}
		var samples, loads []float64
		for i := 0; i <= reps; i++ {
			t0 := time.Now()
			if _, err := align.GatherFloat64s(w, meta); err != nil {
				return err
			}
			if err := w.AllgatherFloat32(send, recv); err != nil {
				return err
			}
			if i > 0 { // the first round is a warm-up (connections, page faults)
				samples = append(samples, time.Since(t0).Seconds()*1e3)
				loads = append(loads, bench.LoadAvg()[0])
			}
		}
		for r := 0; r < w.Size(); r++ {
			if recv[r*n+n-1] != send[n-1] {
				return fmt.Errorf("%s: rank %d's gradient arrived wrong", s.name, r)
			}
		}
		res.Metrics = append(
			res.Metrics,
			bench.NewMetric(fmt.Sprintf("%s: %d values, round time", s.name, n), "ms", false, samples, loads),
		)
		mb := float64(n*4*(w.Size()-1)) / 1e6
		res.Notes = append(
			res.Notes,
			fmt.Sprintf(
				"%s: each rank receives %.1f MB per round (%d values x 4 bytes x %d other ranks); median %.1f ms = %.2f GB/s",
				s.name,
				mb,
				n,
				w.Size()-1,
				bench.Median(samples),
				mb/1e3/(bench.Median(samples)/1e3),
			),
		)
	}
	if w.Rank() != 0 {
		return nil
	}
	path, err := res.Finish(out)
	if err != nil {
		return err
	}
	for _, m := range res.Metrics {
		fmt.Printf("%s: median %.1f ms (min %.1f, max %.1f)\n", m.Name, m.Median, m.Min, m.Max)
	}
	for _, n := range res.Notes {
		fmt.Println(n)
	}
	fmt.Println("mpicomm:", path)
	return nil
}
