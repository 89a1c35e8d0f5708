package ipnn

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// readIDX reads an IDX file (optionally gzip-compressed, by content) holding unsigned
// bytes, returning its dimensions and data. Errors name the file and what was expected.
func readIDX(path string) (dims []int, data []byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("idx file %s does not exist: %w", path, err)
		}
		return nil, nil, fmt.Errorf("open idx file: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("idx file %s: gzip header: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	return parseIDX(r, path)
}

// parseIDX parses IDX content from r; name is used in error messages.
func parseIDX(r io.Reader, name string) ([]int, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, fmt.Errorf("idx %s: reading 4-byte magic: %w", name, err)
	}
	if hdr[0] != 0 || hdr[1] != 0 {
		return nil, nil, fmt.Errorf("idx %s: magic % x: first two bytes must be zero", name, hdr)
	}
	if hdr[2] != 0x08 {
		return nil, nil, fmt.Errorf("idx %s: element type 0x%02x, want 0x08 (unsigned byte)", name, hdr[2])
	}
	nd := int(hdr[3])
	if nd < 1 || nd > 4 {
		return nil, nil, fmt.Errorf("idx %s: %d dimensions, want 1..4", name, nd)
	}
	dims := make([]int, nd)
	total := 1
	for i := range dims {
		var d uint32
		if err := binary.Read(r, binary.BigEndian, &d); err != nil {
			return nil, nil, fmt.Errorf("idx %s: reading dimension %d: %w", name, i+1, err)
		}
		if d == 0 || d > 1<<24 {
			return nil, nil, fmt.Errorf("idx %s: dimension %d is %d, want 1..%d", name, i+1, d, 1<<24)
		}
		dims[i] = int(d)
		total *= int(d)
		if total > 1<<30 {
			return nil, nil, fmt.Errorf("idx %s: %v elements is too large", name, dims[:i+1])
		}
	}
	data := make([]byte, total)
	if n, err := io.ReadFull(r, data); err != nil {
		return nil, nil, fmt.Errorf(
			"idx %s: header says %d bytes of data (dims %v), got %d: %w",
			name,
			total,
			dims,
			n,
			err,
		)
	}
	return dims, data, nil
}

// findIDX returns dir/base or dir/base.gz, whichever exists.
func findIDX(dir, base string) (string, error) {
	for _, name := range []string{base + ".gz", base} {
		p := dir + "/" + name
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s(.gz) not found in %s", base, strings.TrimRight(dir, "/"))
}
