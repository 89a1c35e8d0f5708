package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/ipnn"
)

// TestIPNNTrainEvalReport drives `bpo ipnn` end to end on the 6-bit toy task with -1/+1
// inputs: train writes a run JSON and model, eval of the saved model rebuilds the same
// (signed) inputs and reproduces the run's accuracy, and report --update fills a block.
func TestIPNNTrainEvalReport(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "toy6")
	if _, err := runLlamaCLI(t, "ipnn", "train", "--dataset", "toy-bits", "--bits", "6", "--bit-labels", "--signed-bits",
		"--split", "2,2,2,2,2,2", "--batch", "256", "--repeat", "40", "--epochs", "3", "--lr", "3e-3", "--out", out); err != nil {
		t.Fatal(err)
	}
	runs, err := ipnn.ReadRuns(out)
	if err != nil {
		t.Fatal(err)
	}
	r := runs[0]
	if !r.SignedBits || r.Accuracy < 0.9 || len(r.GroupBits) != 6 {
		t.Fatalf("run: signed %v accuracy %.3f group bits %v", r.SignedBits, r.Accuracy, r.GroupBits)
	}
	evalOut, err := runLlamaCLI(t, "ipnn", "eval", "--model", filepath.Join(out, "run-01.model"), "--dataset", "toy-bits", "--bits", "6")
	if err != nil {
		t.Fatal(err)
	}
	// the model file records the signed coding: eval must not fall back to 0/1 inputs.
	if want := fmt.Sprintf("test accuracy %.2f%% on 64 samples", 100*r.Accuracy); !strings.Contains(evalOut, want) {
		t.Fatalf("eval printed %q, want %q", evalOut, want)
	}
	md := filepath.Join(dir, "results.md")
	if err := os.WriteFile(md, []byte("# results\n<!-- ipnn-report: toy6 -->\n<!-- ipnn-report:end -->\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runLlamaCLI(t, "ipnn", "report", "--update", md); err != nil {
		t.Fatal(err)
	}
	doc, _ := os.ReadFile(md)
	if !strings.Contains(string(doc), "| toy6 | toy-bits | ipnn | 2×6 | class + 6 bit sets |") || !strings.Contains(string(doc), "input bits ±1") {
		t.Fatalf("updated report:\n%s", doc)
	}
}

func TestIPNNCommandErrors(t *testing.T) {
	dir := t.TempDir()
	noBlock := filepath.Join(dir, "plain.md")
	os.WriteFile(noBlock, []byte("# nothing here\n"), 0o644)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown dataset", []string{"ipnn", "train", "--dataset", "cifar", "--out", dir}, `unknown dataset "cifar"`},
		{"bit labels need 2-state groups", []string{"ipnn", "train", "--dataset", "toy-bits", "--bits", "4", "--bit-labels", "--split", "4,4", "--out", dir}, "per-bit labels need 4 two-state groups"},
		{"negative weight decay", []string{"ipnn", "train", "--dataset", "toy-bits", "--bits", "4", "--split", "2,2,2,2", "--weight-decay", "-1", "--out", dir}, "weight decay -1, want >= 0"},
		{"model file missing", []string{"ipnn", "eval", "--model", filepath.Join(dir, "none.model"), "--dataset", "toy-bits"}, "none.model"},
		{"report without dirs", []string{"ipnn", "report"}, "give at least one RUN_DIR"},
		{"update without blocks", []string{"ipnn", "report", "--update", noBlock}, "has no <!-- ipnn-report: DIR... --> block"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runLlamaCLI(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
