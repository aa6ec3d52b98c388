package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrLocked means another run holds the output directory.
var ErrLocked = errors.New("another run is using this directory")

// DirLock is an exclusive lock on an output directory. It is an flock on a
// lock file, so the kernel releases it when its holder dies: a lock left by a
// killed run is stale by construction and the next run simply takes it.
type DirLock struct {
	f *os.File
}

// LockDir takes the lock on dir or fails at once with ErrLocked.
func LockDir(dir string) (*DirLock, error) {
	path := filepath.Join(dir, ".selfinstruct.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := strings.TrimSpace(string(holder))
			if who != "" {
				who = " (pid " + who + ")"
			}
			return nil, fmt.Errorf("%s%s: %w", dir, who, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	// The pid is only for the message a second run prints.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &DirLock{f: f}, nil
}

// LockRunDir creates dir if needed and takes its lock: every run that
// journals into a directory starts here.
func LockRunDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return LockDir(dir)
}

// Unlock releases the lock.
func (l *DirLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
