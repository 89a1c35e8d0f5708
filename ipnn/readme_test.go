package ipnn

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestReadmeReportsUpToDate regenerates the README's IPNN tables from the committed run
// JSON (ipnn/results) and fails if the README differs: the numbers there are exactly the runs'.
func TestReadmeReportsUpToDate(t *testing.T) {
	doc, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := UpdateReportBlocks(doc, "..")
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("README has %d report blocks, want the results table and the clusters", n)
	}
	if !bytes.Equal(got, doc) {
		t.Fatal("README's IPNN report blocks are stale: run `bin/bpo ipnn report --update README.md`")
	}
}

func TestUpdateReportBlocksErrors(t *testing.T) {
	dir := "results/mnist-cluster-2x10-eps2"
	cases := []struct {
		name, doc, want string
	}{
		{"no dirs", "a\n<!-- ipnn-report: -->\n<!-- ipnn-report:end -->\n", "line 2: report block names no run directory"},
		{"unclosed opener", "<!-- ipnn-report: " + dir, "line 1: report block opener is not closed"},
		{"no end", "x\n\n<!-- ipnn-report: " + dir + " -->\n| table |\n", "line 3: report block has no <!-- ipnn-report:end -->"},
		{"stray end", "<!-- ipnn-report:end -->", "line 1: <!-- ipnn-report:end --> without an opening block"},
		{"bad group", "<!-- ipnn-report: --clusters x " + dir + " -->\n<!-- ipnn-report:end -->", `--clusters "x"`},
		{"missing dir", "<!-- ipnn-report: results/nope -->\n<!-- ipnn-report:end -->", "no run-*.json files in results/nope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := UpdateReportBlocks([]byte(tc.doc), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// markers quoted inside a line are text, not blocks.
	quoted := "rewrites blocks marked `<!-- ipnn-report: DIR... -->` in place\n"
	if out, n, err := UpdateReportBlocks([]byte(quoted), ""); err != nil || n != 0 || string(out) != quoted {
		t.Fatalf("quoted marker: %d blocks, %v", n, err)
	}
	// a well-formed block is filled and the surrounding text kept.
	doc := "before\n<!-- ipnn-report: --clusters 1 " + dir + " -->\nold\n<!-- ipnn-report:end -->\nafter\n"
	out, n, err := UpdateReportBlocks([]byte(doc), "")
	if err != nil || n != 1 {
		t.Fatalf("update: %d blocks, %v", n, err)
	}
	s := string(out)
	if !strings.HasPrefix(s, "before\n<!-- ipnn-report: --clusters 1 "+dir+" -->\n#### Clusters: "+dir+"\n") ||
		!strings.HasSuffix(s, "<!-- ipnn-report:end -->\nafter\n") || strings.Contains(s, "\nold\n") {
		t.Fatalf("updated block:\n%s", s)
	}
}
