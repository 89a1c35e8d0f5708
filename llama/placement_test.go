package llama

import (
	"errors"
	"testing"

	"github.com/bpo-dev/bpo/internal/fixture"
)

// placementText is long enough (> 32 tokens) for ggml to consider offloading ops with CPU weights.
const placementText = "Once upon a time, there was a little girl who liked to play. She had a red ball and a big dog. " +
	"One day, the dog ran after the ball into the park."

func logPlacement(t *testing.T, m *Model, opts ContextOptions) (rows int, cpu, all int, reasons map[string]string) {
	t.Helper()
	pl, err := m.Placement(mustTokenize(t, m, placementText, true), opts)
	if err != nil {
		t.Fatal(err)
	}
	reasons = map[string]string{}
	for _, r := range pl.Rows {
		t.Logf("%-10s %-8s %4d  %s", r.Op, r.Backend, r.Nodes, r.Reason)
		if r.Backend == "CPU" {
			reasons[r.Op] = r.Reason
		}
	}
	return len(pl.Rows), pl.Nodes("CPU"), pl.Nodes(""), reasons
}

// TestPlacementCPU: a model on the CPU computes every node of llama.cpp's graph on the CPU, with no
// reason given; too few tokens are an error.
func TestPlacementCPU(t *testing.T) {
	m := mustLoad(t, fixture.File(t, stories260K))
	rows, cpu, all, reasons := logPlacement(t, m, ContextOptions{Threads: 1})
	if rows < 5 || cpu != all || all < 100 {
		t.Fatalf("%d rows, %d of %d nodes on the CPU", rows, cpu, all)
	}
	for op, r := range reasons {
		if r != "" {
			t.Errorf("%s on the CPU for %q without a device", op, r)
		}
	}
	if _, ok := reasons["MUL_MAT"]; !ok {
		t.Error("no MUL_MAT on the CPU")
	}
	if _, err := m.Placement([]Token{1}, ContextOptions{Threads: 1}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("one token: error %v, want ErrInvalidArgument", err)
	}
}
