package cacheroot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// LockHolder says who holds a root's lock.
type LockHolder struct {
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	User  string    `json:"user"`
	Since time.Time `json:"since"`
}

func (h LockHolder) String() string {
	return fmt.Sprintf("%s@%s pid %d since %s", h.User, h.Host, h.PID, h.Since.Format(time.RFC3339))
}

// Lock is a held lock on a cache root (<root>/.cachectl/lock, flock(2)):
// a regular file owned by the runner, opened without following symlinks.
// The kernel releases it when the process dies, so a crashed apply never
// leaves a root locked.
type Lock struct {
	f *os.File
}

// ErrLocked is returned (wrapped) when the lock could not be taken in time.
var ErrLocked = errors.New("cache root is locked")

// Lock takes the root's lock, waiting up to timeout (0 = try once).
//
// A run that created the root and put nothing in it removes the lock file
// (and the state directory) before it lets go (Session.Abandon); whoever
// was waiting on that file then holds a lock nobody else can see. So a
// lock counts only when the file locked is still the state directory's
// "lock": otherwise the file is opened again, and a state directory that
// is itself gone is an error that says to run again.
func (s *StateDir) Lock(ctx context.Context, timeout time.Duration) (*Lock, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := s.lockOnce(ctx, deadline, timeout)
		if err != nil {
			return nil, err
		}
		if f != nil {
			return s.holdLock(f), nil
		}
	}
}

// lockOnce opens the lock file and waits for its flock until deadline. It
// returns (nil, nil) when the file it locked is no longer the state
// directory's lock (removed or replaced while it waited): try again.
func (s *StateDir) lockOnce(ctx context.Context, deadline time.Time, timeout time.Duration) (*os.File, error) {
	f, err := s.openFile(lockFile, unix.O_RDWR|unix.O_CREAT, false)
	if err != nil {
		var dir unix.Stat_t
		// A removed directory has no links left; over NFS its handle is
		// stale instead.
		if serr := unix.Fstat(fd(s.dir), &dir); serr == nil && dir.Nlink == 0 || errors.Is(serr, unix.ESTALE) || errors.Is(err, unix.ESTALE) {
			return nil, fmt.Errorf("lock %s: the root's state directory was removed while this run waited for it (another run found the root empty and removed it); run again", s.root.path)
		}
		return nil, fmt.Errorf("lock %s: %w", s.root.path, err)
	}
	delay := 50 * time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", s.root.path, err)
		}
		if !time.Now().Before(deadline) {
			holder := readHolder(f)
			f.Close()
			return nil, fmt.Errorf("%w: %s is held by %s; wait for it to finish or raise -lock-timeout (now %s)", ErrLocked, s.root.path, holder, timeout)
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
	var held, named unix.Stat_t
	if unix.Fstat(int(f.Fd()), &held) != nil || unix.Fstatat(fd(s.dir), lockFile, &named, unix.AT_SYMLINK_NOFOLLOW) != nil ||
		held.Dev != named.Dev || held.Ino != named.Ino {
		f.Close()
		return nil, nil
	}
	return f, nil
}

// holdLock writes who holds the lock into the locked file.
func (s *StateDir) holdLock(f *os.File) *Lock {
	h := LockHolder{PID: os.Getpid(), Since: time.Now().UTC()}
	h.Host, _ = os.Hostname()
	if u, err := user.Current(); err == nil {
		h.User = u.Username
	} else {
		h.User = strconv.Itoa(os.Getuid())
	}
	b, _ := json.Marshal(h)
	if err := f.Truncate(0); err == nil {
		f.WriteAt(append(b, '\n'), 0)
	}
	return &Lock{f: f}
}

// readHolder reads who holds the lock from the open lock file.
func readHolder(f *os.File) string {
	b, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, 0, 4096), 4096))
	if err != nil {
		return "another process"
	}
	var h LockHolder
	if json.Unmarshal(b, &h) != nil || h.PID == 0 {
		return "another process"
	}
	return h.String()
}

// Release frees the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0)
	err := l.f.Close() // closing the descriptor releases the flock
	l.f = nil
	return err
}
