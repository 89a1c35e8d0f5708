package benchdata

import (
	"bytes"
	"io/fs"
	"strings"
	"testing"
)

// TestSetsMatchManifest decompresses every embedded set and checks it is the public file byte for
// byte (size and SHA-256 of the original) with the listed number of JSONL rows.
func TestSetsMatchManifest(t *testing.T) {
	for _, s := range All() {
		t.Run(s.Name(), func(t *testing.T) {
			data, err := s.Data()
			if err != nil {
				t.Fatal(err)
			}
			rows := 0
			for line := range bytes.Lines(data) {
				if len(bytes.TrimSpace(line)) > 0 {
					rows++
				}
			}
			if rows != s.Rows {
				t.Errorf("%d rows, manifest says %d", rows, s.Rows)
			}
			gz, err := s.CompressedSize()
			if err != nil {
				t.Fatal(err)
			}
			if gz >= s.Bytes {
				t.Errorf("compressed %d bytes, not smaller than the original %d", gz, s.Bytes)
			}
			if s.Source == "" || s.License == "" {
				t.Errorf("source %q, licence %q: both must be stated", s.Source, s.License)
			}
		})
	}
}

// TestEveryFileListed fails on an embedded file the manifest does not describe (it would ship
// without provenance or checksum) and on a manifest row without its file.
func TestEveryFileListed(t *testing.T) {
	listed := map[string]bool{}
	for _, s := range All() {
		listed[s.embedPath()] = true
	}
	paths, err := fs.Glob(files, "sets/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if !listed[p] {
			t.Errorf("%s is embedded but not in the manifest", p)
		}
		delete(listed, p)
	}
	for p := range listed {
		t.Errorf("manifest lists %s, which is not embedded", p)
	}
}

func TestChecksumMismatchIsAnError(t *testing.T) {
	s, err := Find("amc23", "test")
	if err != nil {
		t.Fatal(err)
	}
	bad := s
	bad.SHA256 = strings.Repeat("0", 64)
	if _, err := bad.Data(); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("wrong checksum: err = %v, want a sha256 mismatch", err)
	}
	bad = s
	bad.Bytes++
	if _, err := bad.Data(); err == nil || !strings.Contains(err.Error(), "bytes after decompression") {
		t.Errorf("wrong size: err = %v, want a size mismatch", err)
	}
}

func TestLookup(t *testing.T) {
	cases := []struct {
		name, want, err string
	}{
		{"math500", "math500/test", ""},
		{"gsm8k/train", "gsm8k/train", ""},
		{"gsm8k/test", "gsm8k/test", ""},
		{"math500/train", "", "no embedded evaluation set math500/train"},
		{"nope", "", "no embedded evaluation set nope/test (embedded: aime24/test"},
	}
	for _, c := range cases {
		s, err := Lookup(c.name)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Lookup(%q): err = %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || s.Name() != c.want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", c.name, s.Name(), err, c.want)
		}
	}
}
