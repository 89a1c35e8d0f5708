// Package atomicfile writes files so that readers (and a process killed mid-write) see
// either the old file or the complete new one, never a torn write: the content goes to a
// temporary file in the same directory, is synced, and is renamed over the target.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Perm is the mode given to files written by this package (before the umask).
const Perm os.FileMode = 0o644

// WriteFunc creates path atomically with the bytes that write produces (buffered). If
// write or any file operation fails, path is left untouched and the temporary file removed.
func WriteFunc(path string, write func(w io.Writer) error) (err error) {
	if fi, serr := os.Stat(path); serr == nil && fi.IsDir() {
		return fmt.Errorf("write %s: it is a directory; want a file path", path)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err = write(bw); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Chmod(Perm); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync() // best effort: persist the rename itself
		d.Close()
	}
	return nil
}

// Write creates path atomically with data.
func Write(path string, data []byte) error {
	return WriteFunc(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
