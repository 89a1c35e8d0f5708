// Package runlock guards a run directory with an exclusive advisory lock (flock) so that two
// processes cannot write the same run. The kernel drops the lock when the holder exits, also on
// SIGKILL, so a killed run never leaves a stale lock behind.
package runlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// FileName is the lock file created in the run directory.
const FileName = ".lock"

// ErrLocked means another process holds the run directory's lock.
var ErrLocked = errors.New("run directory is in use by another run")

// Lock is a held run-directory lock.
type Lock struct {
	f *os.File
}

// Acquire creates dir if needed and locks it without waiting. When another process holds the lock
// it returns an error wrapping ErrLocked that names the directory and, when known, that process's id.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = fmt.Sprintf(" (process %d)", pid)
			}
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w%s: wait for it to finish or use another directory", dir, ErrLocked, holder)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	// Record the holder for the message above; the lock, not this content, is what excludes.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release unlocks the directory. It is safe to call on a nil Lock and more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor drops the flock
	l.f = nil
	return err
}
