package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lockFile is the store's lock (flock(2)): commands that write or read
// blobs for a build (apply, bundle) hold it shared for their whole run; gc
// takes it exclusive, so it never removes a blob that a running apply just
// fetched and has not recorded in an index yet.
const lockFile = "lock"

// ErrBusy is returned (wrapped) by LockExclusive when the store stayed in
// use until the timeout.
var ErrBusy = errors.New("the blob store is in use")

// Lock is a held store lock.
type Lock struct{ f *os.File }

// Release frees the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

func (s *Store) openLock() (*os.File, error) {
	path := filepath.Join(s.dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("store: lock %s is not a regular file", path)
	}
	return f, nil
}

// LockShared takes the store's lock shared (waiting while a gc holds it,
// up to ctx).
func (s *Store) LockShared(ctx context.Context) (*Lock, error) {
	return s.lock(ctx, syscall.LOCK_SH, -1, nil)
}

// LockExclusive takes the store's lock exclusively, waiting up to timeout
// (0 = try once) while commands hold it shared; onWait is called once
// when it has to wait. A timeout gives an error wrapping ErrBusy.
func (s *Store) LockExclusive(ctx context.Context, timeout time.Duration, onWait func()) (*Lock, error) {
	return s.lock(ctx, syscall.LOCK_EX, timeout, onWait)
}

func (s *Store) lock(ctx context.Context, how int, timeout time.Duration, onWait func()) (*Lock, error) {
	f, err := s.openLock()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	delay := 50 * time.Millisecond
	for waited := false; ; waited = true {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return &Lock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("store: lock: %w", err)
		}
		if timeout >= 0 && !time.Now().Before(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w (%s)", ErrBusy, s.dir)
		}
		if !waited && onWait != nil {
			onWait()
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		if delay < time.Second {
			delay *= 2
		}
	}
}
