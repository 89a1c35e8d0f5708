package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestWorkRoundTrip(t *testing.T) {
	cases := []*work{
		scoreWork("/m.gguf", 2, 3, 8, 5, 1),
		genWork("/m.gguf", 1, 4, 6, 16, 2),
	}
	for _, w := range cases {
		p := filepath.Join(t.TempDir(), "w.txt")
		if err := writeWork(p, w); err != nil {
			t.Fatal(err)
		}
		back, err := readWork(p)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(w, back) {
			t.Fatalf("round trip:\n%+v\n%+v", w, back)
		}
	}
	if w := cases[0]; w.tokens() != 3*(8+2*5) || w.NSeq != 9 || w.NCtx != 256 {
		t.Fatalf("score work: %d tokens, n_seq %d, n_ctx %d", w.tokens(), w.NSeq, w.NCtx)
	}
}

func TestReadWorkErrors(t *testing.T) {
	head := "bpo-bench-work 1\nmodel m\nmode score\n"
	cases := []struct {
		name, content, want string
	}{
		{"header", "bpo-bench-work 2\n", ":1: want header"},
		{"count mismatch", head + "requests 1\nP 3 1 2\nend\n", ":5: P count \"3\" does not match 2 ids"},
		{"C first", head + "requests 1\nC 1 5\nend\n", ":5: C line before any P line"},
		{"bad id", head + "requests 1\nP 1 x\nend\n", `:5: id "x" is not an integer`},
		{"requests", head + "requests 2\nP 1 1\nend\n", ":6: 1 requests, header says 2"},
		{"negative", head + "threads -1\n", ":4: threads: want a non-negative integer"},
		{"mode", "bpo-bench-work 1\nmodel m\nmode x\nrequests 0\nend\n", `mode "x"`},
		{"no model", "bpo-bench-work 1\nmode gen\nrequests 0\nend\n", "no model line"},
		{"unknown key", head + "colour red\n", `:4: unknown key "colour"`},
		{"truncated", head + "requests 1\nP 1 1\n", `no "end" line`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "w.txt")
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := readWork(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzReadWork(f *testing.F) {
	f.Add("bpo-bench-work 1\nmodel m\nmode gen\nthreads 1\nrequests 1\nP 2 1 2\nend\n")
	f.Add("bpo-bench-work 1\nmodel x\nmode score\nrequests 1\nP 1 7\nC 2 1 2\nC 0\nend\n")
	f.Fuzz(func(t *testing.T, content string) {
		p := filepath.Join(t.TempDir(), "w.txt")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		w, err := readWork(p)
		if err != nil {
			return
		}
		// Whatever parses must survive a write/read round trip unchanged.
		q := filepath.Join(t.TempDir(), "back.txt")
		if err := writeWork(q, w); err != nil {
			t.Fatal(err)
		}
		back, err := readWork(q)
		if err != nil || !reflect.DeepEqual(w, back) {
			t.Fatalf("round trip of parsed work failed: %v\n%+v\n%+v", err, w, back)
		}
	})
}
