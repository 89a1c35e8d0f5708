package ipnn

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func idxBytes(dims []uint32, data []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 8, byte(len(dims))})
	for _, d := range dims {
		b.Write([]byte{byte(d >> 24), byte(d >> 16), byte(d >> 8), byte(d)})
	}
	b.Write(data)
	return b.Bytes()
}

func TestParseIDX(t *testing.T) {
	cases := []struct {
		name    string
		in      []byte
		dims    []int
		wantErr string
	}{
		{"labels", idxBytes([]uint32{3}, []byte{1, 2, 3}), []int{3}, ""},
		{"images", idxBytes([]uint32{1, 2, 2}, []byte{0, 255, 7, 9}), []int{1, 2, 2}, ""},
		{"short data", idxBytes([]uint32{4}, []byte{1}), nil, "header says 4 bytes"},
		{"float type", append([]byte{0, 0, 0x0d, 1}, 0, 0, 0, 1, 0, 0, 0, 0), nil, "element type 0x0d"},
		{"bad magic", []byte{1, 0, 8, 1, 0, 0, 0, 1, 5}, nil, "first two bytes"},
		{"zero dim", idxBytes([]uint32{0}, nil), nil, "dimension 1 is 0"},
		{"empty", nil, nil, "magic"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dims, data, err := parseIDX(bytes.NewReader(tc.in), "x.idx")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "x.idx") {
					t.Fatalf("error %v, want one naming x.idx and %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(dims) != len(tc.dims) || len(data) != len(tc.in)-4-4*len(dims) {
				t.Fatalf("dims %v data %d", dims, len(data))
			}
		})
	}
}

func FuzzParseIDX(f *testing.F) {
	f.Add(idxBytes([]uint32{2, 1, 1}, []byte{3, 4}))
	f.Add(idxBytes([]uint32{3}, []byte{1, 2}))
	f.Fuzz(func(t *testing.T, in []byte) {
		dims, data, err := parseIDX(bytes.NewReader(in), "fuzz")
		if err != nil {
			return
		}
		n := 1
		for _, d := range dims {
			n *= d
		}
		if n != len(data) {
			t.Fatalf("dims %v but %d bytes", dims, len(data))
		}
	})
}

// TestLoadImages reads the real MNIST and (when installed) Fashion-MNIST test splits and
// checks the errors for missing or inconsistent files.
func TestLoadImages(t *testing.T) {
	d := mnistTest(t)
	if d.Len() != 10000 || d.Dim != 784 {
		t.Fatalf("mnist test: %d samples of %d", d.Len(), d.Dim)
	}
	counts := make([]int, 10)
	for _, y := range d.Y {
		counts[y]++
	}
	// The MNIST test split has 980 zeros and 1135 ones.
	if counts[0] != 980 || counts[1] != 1135 {
		t.Fatalf("class counts %v", counts)
	}
	if fdir, err := DataDir(DatasetFashion, ""); err == nil {
		f, err := LoadImages(DatasetFashion, fdir, false)
		if err != nil {
			t.Fatal(err)
		}
		if f.Len() != 10000 {
			t.Fatalf("fashion test: %d samples", f.Len())
		}
	} else {
		t.Logf("Fashion-MNIST not fetched, its test split is not checked: %v", err)
	}
	dir := t.TempDir()
	if _, err := LoadImages("mnist", dir, false); err == nil || !strings.Contains(err.Error(), "t10k-images-idx3-ubyte") {
		t.Fatalf("missing files: %v", err)
	}
	// labels that disagree with the image count
	write := func(name string, b []byte) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644)
	}
	write("t10k-images-idx3-ubyte.gz", idxBytes([]uint32{2, 2, 2}, make([]byte, 8)))
	write("t10k-labels-idx1-ubyte.gz", idxBytes([]uint32{3}, []byte{1, 2, 3}))
	if _, err := LoadImages("mnist", dir, false); err == nil || !strings.Contains(err.Error(), "want [2]") {
		t.Fatalf("count mismatch: %v", err)
	}
	write("t10k-labels-idx1-ubyte.gz", idxBytes([]uint32{2}, []byte{1, 12}))
	if _, err := LoadImages("mnist", dir, false); err == nil || !strings.Contains(err.Error(), "label 12 of sample 1") {
		t.Fatalf("bad label: %v", err)
	}
}
