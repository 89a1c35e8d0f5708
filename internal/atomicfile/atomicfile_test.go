package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	tests := []struct {
		name    string
		write   func(w io.Writer) error
		want    string // content after the call
		wantErr string
	}{
		{"create", func(w io.Writer) error { _, err := io.WriteString(w, "first"); return err }, "first", ""},
		{"replace", func(w io.Writer) error { _, err := io.WriteString(w, "second"); return err }, "second", ""},
		{"failed write keeps the old file", func(w io.Writer) error {
			io.WriteString(w, "torn")
			return errors.New("disk on fire")
		}, "second", "disk on fire"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteFunc(path, tc.write)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			got, rerr := os.ReadFile(path)
			if rerr != nil || string(got) != tc.want {
				t.Fatalf("content %q (%v), want %q", got, rerr, tc.want)
			}
			st, _ := os.Stat(path)
			if st.Mode().Perm()&0o044 == 0 {
				t.Fatalf("mode %v: not readable by group/others", st.Mode())
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Fatalf("temporary files left: %v", entries)
			}
		})
	}
	if err := Write(filepath.Join(dir, "missing", "x"), []byte("x")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("write into a missing directory: %v", err)
	}
}

// TestWriteOntoDirectory: a directory as the target is a clear error (it used to be "file exists"),
// and the directory is left alone.
func TestWriteOntoDirectory(t *testing.T) {
	dir := t.TempDir()
	err := Write(dir, []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "is a directory; want a file path") {
		t.Fatalf("got %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("directory changed: %v", err)
	}
}
