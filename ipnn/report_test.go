package ipnn

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestReportAndClusters runs a small real MNIST [2,10] eps-2 experiment (2 runs), then
// checks the markdown table and the clustering report built from its JSON files.
func TestReportAndClusters(t *testing.T) {
	dir := t.TempDir()
	e := Experiment{Dataset: DatasetMNIST, DataDir: mnistDataDir(t), Kind: KindIPNN, Split: []int{2, 10}, Hidden: []int{128, 36},
		Forget: 5, Eps: 2, Epochs: 1, Batch: 64, LR: 1e-3, Seed: 3, Runs: 2, TrainLimit: 4000, Out: dir}
	res, err := e.Run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteReport(&buf, []string{dir}); err != nil {
		t.Fatal(err)
	}
	m, s := meanStd([]float64{100 * res[0].Accuracy, 100 * res[1].Accuracy})
	want := fmt.Sprintf("| mnist | ipnn | 2,10 | class | 5 | 2 | 1 | 64 | 2 | %.2f ± %.2f |", m, s)
	if !strings.Contains(buf.String(), want) {
		t.Fatalf("report lacks %q:\n%s", want, buf.String())
	}
	rep, err := Clusters(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Runs != 2 || len(rep.PerRun) != 2 || len(rep.PairARI) != 1 {
		t.Fatalf("cluster report: %+v", rep)
	}
	for _, groups := range rep.PerRun {
		all := strings.Join(groups, "")
		for c := 0; c < 10; c++ {
			if strings.Count(all, fmt.Sprint(c)) != 1 {
				t.Fatalf("digit %d not in exactly one group: %v", c, groups)
			}
		}
	}
	for _, a := range append(rep.PairARI, rep.ClassARI...) {
		if a < -1 || a > 1 {
			t.Fatalf("ARI %v out of range", a)
		}
	}
	buf.Reset()
	rep.WriteClusters(&buf)
	if !strings.Contains(buf.String(), "Adjusted Rand index") {
		t.Fatal(buf.String())
	}
	if _, err := ReadRuns(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no run-*.json") {
		t.Fatalf("empty dir: %v", err)
	}
}
