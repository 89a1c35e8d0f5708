package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/eval"
	"github.com/bpo-dev/bpo/eval/benchdata"
)

// runCLI runs the bpo app in-process and returns its standard output and error output.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errOut
	err = app.Run(append([]string{"bpo"}, args...))
	return out.String(), errOut.String(), err
}

func TestDataList(t *testing.T) {
	out, _, err := runCLI(t, "data", "list")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 5 {
			rows[f[0]] = f[1:]
		}
	}
	for _, s := range benchdata.All() {
		got := rows[s.Name()]
		if len(got) < 4 || got[0] != strconv.Itoa(s.Rows) || got[1] != strconv.Itoa(s.Bytes) || got[3] != s.SHA256 {
			t.Errorf("data list row of %s: %v, want rows %d, bytes %d, sha256 %s", s.Name(), got, s.Rows, s.Bytes, s.SHA256)
		}
	}
	if len(benchdata.All()) != 8 {
		t.Errorf("%d embedded sets, want 8 (gsm8k train+test, math, math500, aime24, amc23, minerva_math, olympiadbench)", len(benchdata.All()))
	}
	if !strings.Contains(out, "gsm8k/train: GSM8K (https://github.com/openai/grade-school-math") {
		t.Errorf("data list does not show the sources:\n%s", out)
	}
}

// TestDataExport: an exported set is the public file byte for byte (its SHA-256 is the manifest's),
// to a file and to standard output.
func TestDataExport(t *testing.T) {
	set, err := benchdata.Lookup("amc23")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "amc23.jsonl")
	if _, _, err := runCLI(t, "data", "export", "--out", path, "amc23/test"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stdout, _, err := runCLI(t, "data", "export", "amc23")
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"file": data, "stdout": []byte(stdout)} {
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != set.SHA256 {
			t.Errorf("%s: sha256 %s, want %s", name, got, set.SHA256)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"data", "export"}, "expected one set name"},
		{[]string{"data", "export", "math500/train"}, "no embedded evaluation set math500/train"},
	} {
		if _, _, err := runCLI(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.args, err, c.want)
		}
	}
}

// TestEvalWithoutData evaluates the embedded MATH-500 (no --data) with stories260K: the run has the
// first questions of the public file.
func TestEvalWithoutData(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	_, stderr, err := runCLI(t, "eval", "--model", cliStories(t), "--benchmark", "math500", "--limit", "3",
		"--template", "chatml", "--max-new-tokens", "4", "--threads", "1", "--parallel", "2", "--out", run)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "math500/test: 500 questions (embedded)") {
		t.Errorf("stderr does not name the embedded set:\n%s", stderr)
	}
	recs, err := eval.ReadRecords(run)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	want := []string{"test/algebra/2584.json", "test/intermediate_algebra/1994.json", "test/precalculus/807.json"}
	if !slices.Equal(ids, want) {
		t.Errorf("evaluated ids %v, want the first three of MATH-500 %v", ids, want)
	}
	if _, err := os.Stat(filepath.Join(run, "summary.json")); err != nil {
		t.Error(err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--benchmark", "math500", "--split", "train"}, "no embedded evaluation set math500/train (embedded: "},
		{[]string{"--benchmark", "math500", "--split", "test", "--data", "x.jsonl"}, "--split test picks an embedded set; it does not apply to --data x.jsonl"},
	} {
		args := append([]string{"eval", "--model", cliStories(t), "--out", filepath.Join(t.TempDir(), "r")}, c.args...)
		if _, _, err := runCLI(t, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.args, err, c.want)
		}
	}
}

// TestPairsDefaultSplit: without --data, bpo pairs samples the train split where the benchmark has
// one (GSM8K) and the test split otherwise (AMC23).
func TestPairsDefaultSplit(t *testing.T) {
	for _, c := range []struct{ benchmark, want string }{
		{"gsm8k", "gsm8k/train: 7473 questions (embedded)"},
		{"amc23", "amc23/test: 40 questions (embedded)"},
	} {
		out := filepath.Join(t.TempDir(), "pairs.jsonl")
		_, stderr, err := runCLI(t, "pairs", "--model", cliStories(t), "--benchmark", c.benchmark, "--limit", "1", "--n", "2",
			"--template", "chatml", "--max-new-tokens", "2", "--threads", "1", "--parallel", "2", "--out", out)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stderr, c.want) {
			t.Errorf("%s: stderr does not say %q:\n%s", c.benchmark, c.want, stderr)
		}
	}
}
