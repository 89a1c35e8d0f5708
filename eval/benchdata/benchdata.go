// Package benchdata carries the public math evaluation sets inside the binary: gzip-compressed
// copies (gzip -9n) of the JSONL files that Qwen2.5-Math's evaluation ships with its code, each
// listed with its source, licence, row count and the SHA-256 of the original file. Reading a set
// decompresses it and checks it against that checksum, so what a run evaluates is byte for byte
// the public file.
package benchdata

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"strings"
)

//go:embed sets/*.jsonl.gz
var files embed.FS

// Set describes one embedded evaluation file.
type Set struct {
	Benchmark string // benchmark name as bench.Load knows it: gsm8k, math, math500, ...
	Split     string // "train" or "test"
	Rows      int    // JSONL rows in the file
	Bytes     int    // size of the original file
	SHA256    string // hex SHA-256 of the original (uncompressed) file
	Source    string // where the file comes from
	License   string // licence of the data as stated by its source
}

// Name is the set's name, "benchmark/split" (e.g. "gsm8k/train").
func (s Set) Name() string { return s.Benchmark + "/" + s.Split }

// embedPath is the set's compressed file inside the embedded file system.
func (s Set) embedPath() string { return "sets/" + s.Benchmark + "-" + s.Split + ".jsonl.gz" }

// CompressedSize returns the size of the set's gzip file in the binary.
func (s Set) CompressedSize() (int, error) {
	b, err := files.ReadFile(s.embedPath())
	if err != nil {
		return 0, fmt.Errorf("embedded set %s: %w", s.Name(), err)
	}
	return len(b), nil
}

// Data returns the set's original bytes, decompressed and checked against its size and SHA-256.
func (s Set) Data() ([]byte, error) {
	gz, err := files.ReadFile(s.embedPath())
	if err != nil {
		return nil, fmt.Errorf("embedded set %s: %w", s.Name(), err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("embedded set %s: %w", s.Name(), err)
	}
	var buf bytes.Buffer
	buf.Grow(s.Bytes)
	if _, err := buf.ReadFrom(zr); err != nil {
		return nil, fmt.Errorf("embedded set %s: decompress: %w", s.Name(), err)
	}
	data := buf.Bytes()
	if len(data) != s.Bytes {
		return nil, fmt.Errorf(
			"embedded set %s: %d bytes after decompression, the manifest says %d",
			s.Name(),
			len(data),
			s.Bytes,
		)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != s.SHA256 {
		return nil, fmt.Errorf("embedded set %s: sha256 %s, the manifest says %s", s.Name(), got, s.SHA256)
	}
	return data, nil
}

// All returns the embedded sets, ordered by benchmark then split.
func All() []Set { return append([]Set(nil), manifest...) }

// Lookup returns the set called name: "benchmark/split", or a bare benchmark name for its test split.
func Lookup(name string) (Set, error) {
	benchmark, split, ok := strings.Cut(name, "/")
	if !ok {
		split = "test"
	}
	return Find(benchmark, split)
}

// Find returns the embedded split of benchmark; the error lists what is embedded.
func Find(benchmark, split string) (Set, error) {
	for _, s := range manifest {
		if s.Benchmark == benchmark && s.Split == split {
			return s, nil
		}
	}
	names := make([]string, len(manifest))
	for i, s := range manifest {
		names[i] = s.Name()
	}
	return Set{}, fmt.Errorf(
		"no embedded evaluation set %s/%s (embedded: %s)",
		benchmark,
		split,
		strings.Join(names, ", "),
	)
}

// Has reports whether benchmark has an embedded split.
func Has(benchmark, split string) bool {
	_, err := Find(benchmark, split)
	return err == nil
}
