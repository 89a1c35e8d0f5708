package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFilterCHES: `bpo filter --ches 0.25` on stories260K keeps the quarter of the pairs with the
// lowest CHES, copies their source lines unchanged and scores every pair.
func TestFilterCHES(t *testing.T) {
	dir := t.TempDir()
	_, pairs := writeStoryData(t, dir)
	out := filepath.Join(dir, "kept.jsonl")
	res, err := bpoCmd("filter", "--model", stories(t), "--data", pairs, "--ches", "0.25", "--out", out, "--threads", "1").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, res)
	}
	src, _ := os.ReadFile(pairs)
	srcLines := strings.Split(strings.TrimSuffix(string(src), "\n"), "\n")
	f, err := os.Open(out + ".ches.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []chesRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r chesRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if len(recs) != len(srcLines) {
		t.Fatalf("%d scores for %d pairs", len(recs), len(srcLines))
	}
	var want []string
	maxKept, minDropped := -1e300, 1e300
	for _, r := range recs {
		if r.Kept {
			want = append(want, srcLines[r.Line-1])
			maxKept = max(maxKept, r.CHES)
		} else {
			minDropped = min(minDropped, r.CHES)
		}
	}
	if len(want) != 8 || maxKept > minDropped {
		t.Errorf("kept %d pairs, max kept CHES %v, min dropped %v", len(want), maxKept, minDropped)
	}
	got, _ := os.ReadFile(out)
	if string(got) != strings.Join(want, "\n")+"\n" {
		t.Errorf("kept file:\n%s\nwant the source lines:\n%s", got, strings.Join(want, "\n"))
	}
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--ches", "0"}, "--ches: the share to keep must be in (0, 1], got 0"},
		{[]string{"--ches", "1.5"}, "--ches: the share to keep must be in (0, 1]"},
	} {
		args := append([]string{"filter", "--model", stories(t), "--data", pairs, "--out", filepath.Join(dir, "x.jsonl")}, tc.args...)
		res, err := bpoCmd(args...).CombinedOutput()
		if err == nil || !strings.Contains(string(res), tc.wantErr) {
			t.Errorf("%v: %v %s", tc.args, err, res)
		}
	}
	res, err = bpoCmd("filter", "--model", stories(t), "--data", pairs, "--out", pairs, "--ches", "0.5").CombinedOutput()
	if err == nil || !strings.Contains(string(res), "would overwrite --data") {
		t.Errorf("overwrite: %v %s", err, res)
	}
}
