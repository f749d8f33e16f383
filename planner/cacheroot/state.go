package cacheroot

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cachectl/cachectl/spec"
)

// Names inside a cache root's state directory (<root>/.cachectl).
const (
	indexFile  = "index.json"
	lockFile   = "lock"
	stagingDir = "staging"
)

// StateDir is an open, verified <root>/.cachectl directory. It belongs to
// the user running cachectl: made 0700, and on every run checked to be a
// real directory (not a symlink), owned by that user (or, for reading
// only, by root), and writable by nobody else. Its files are opened
// relative to it without following symlinks.
type StateDir struct {
	root *Root
	dir  *os.File
	path string
}

// StateError says what is wrong with a state directory or one of its
// files, and what to do.
type StateError struct {
	Path  string
	Found string
	// Hint replaces the default advice when set.
	Hint string
}

func (e *StateError) Error() string {
	if e.Hint != "" {
		return fmt.Sprintf("refusing to use %s: %s; %s", e.Path, e.Found, e.Hint)
	}
	return fmt.Sprintf("refusing to use %s: %s. cachectl keeps its index and lock there and trusts them only when they belong to the user running it and nobody else can write them; another user may have replaced it. Move it away (mv %s %s.suspect), look at what it holds, and run cachectl again: it then starts a new index, and the files it placed show as unmanaged until you take them over with \"cachectl adopt CACHE\"",
		e.Path, e.Found, e.Path, e.Path)
}

// OpenState opens the root's state directory. With create it is made
// (0700) when missing and must belong to the running user; without it a
// missing directory gives an error wrapping fs.ErrNotExist, and a
// directory owned by root is accepted too (read-only use by another
// account).
func (r *Root) OpenState(create bool) (*StateDir, error) {
	abs := filepath.Join(r.path, spec.IndexDir)
	if create {
		if err := unix.Mkdirat(fd(r.dir), spec.IndexDir, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, &PathError{Op: "create", Path: abs, Err: err}
		}
	}
	d, err := openDirAt(r.dir, spec.IndexDir, abs)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, &StateError{Path: abs, Found: "it is readable only by its owner (" + ownerOf(r.dir, spec.IndexDir) + ")",
				Hint: "cachectl keeps a root's index there, 0700: run this command as that user (sudo), or read the cache's files with enroot-sync, which needs no index"}
		}
		if errors.Is(err, ErrSymlink) {
			return nil, &StateError{Path: abs, Found: "it is a symbolic link"}
		}
		if errors.Is(err, ErrNotDir) {
			return nil, &StateError{Path: abs, Found: "it is not a directory"}
		}
		return nil, err
	}
	st, err := fstat(d)
	if err == nil {
		err = checkOwned(abs, st, !create, true)
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	return &StateDir{root: r, dir: d, path: abs}, nil
}

// ownerOf names the owner of name in dir, for messages.
func ownerOf(dir *os.File, name string) string {
	var st unix.Stat_t
	if unix.Fstatat(fd(dir), name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return "another user"
	}
	return userName(int(st.Uid))
}

// checkOwned refuses a state directory or file that is not owned by the
// running user (or root, when rootOK), or that group or others can write.
func checkOwned(abs string, st *unix.Stat_t, rootOK, isDir bool) error {
	euid := os.Geteuid()
	if int(st.Uid) != euid && !(rootOK && st.Uid == 0) {
		if st.Uid == 0 {
			return &StateError{Path: abs, Found: "it belongs to root", Hint: "changes to this cache root are made as root: run this command as root"}
		}
		return &StateError{Path: abs, Found: fmt.Sprintf("it is owned by %s, not by %s who runs cachectl", userName(int(st.Uid)), userName(euid))}
	}
	if st.Mode&0o022 != 0 {
		what := "group"
		if st.Mode&0o002 != 0 {
			what = "others"
			if st.Mode&0o020 != 0 {
				what = "group and others"
			}
		}
		return &StateError{Path: abs, Found: fmt.Sprintf("it is writable by %s (mode %04o)", what, st.Mode&0o7777)}
	}
	if !isDir && st.Nlink > 1 {
		return &StateError{Path: abs, Found: fmt.Sprintf("it has %d hard links", st.Nlink)}
	}
	return nil
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// Reopen returns a handle of its own on the state directory, for files of
// other packages kept there (the history); the caller closes it.
func (s *StateDir) Reopen() (*os.File, error) { return reopenDir(s.dir) }

// Path returns the state directory's path, for messages.
func (s *StateDir) Path() string { return s.path }

// Close releases the handle.
func (s *StateDir) Close() error {
	if s == nil || s.dir == nil {
		return nil
	}
	return s.dir.Close()
}

// openFile opens a file of the state directory without following a
// symlink and checks that it belongs to the runner (root too when rootOK)
// and that nobody else can write it.
func (s *StateDir) openFile(name string, flags int, rootOK bool) (*os.File, error) {
	abs := filepath.Join(s.path, name)
	n, err := unix.Openat(fd(s.dir), name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, &StateError{Path: abs, Found: "it is a symbolic link"}
		}
		return nil, &PathError{Op: "open", Path: abs, Err: err}
	}
	f := os.NewFile(uintptr(n), abs)
	st, err := fstat(f)
	if err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
		err = &StateError{Path: abs, Found: "it is not a regular file"}
	}
	if err == nil {
		err = checkOwned(abs, st, rootOK, false)
	}
	if err == nil {
		err = unix.SetNonblock(n, false)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// writeFileAtomic writes a state file through a temporary file in the
// state directory (created O_EXCL, fsynced, renamed, directory fsynced).
func (s *StateDir) writeFileAtomic(name string, data []byte) error {
	tmp := "." + name + ".tmp-" + randomName()
	n, err := unix.Openat(fd(s.dir), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(s.path, name), err)
	}
	f := os.NewFile(uintptr(n), tmp)
	ok := false
	defer func() {
		if !ok {
			f.Close()
			unix.Unlinkat(fd(s.dir), tmp, 0)
		}
	}()
	if _, err := f.Write(data); err == nil {
		err = f.Sync()
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(s.path, name), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(s.path, name), err)
	}
	if err := unix.Renameat(fd(s.dir), tmp, fd(s.dir), name); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(s.path, name), err)
	}
	ok = true
	return s.dir.Sync()
}

// CleanLeftovers removes what interrupted runs left in the state
// directory: the staging area (builds, imports) and temporary index files.
// The lock must be held.
func (s *StateDir) CleanLeftovers() error {
	names, err := s.list()
	if err != nil {
		return err
	}
	for _, n := range names {
		switch {
		case n == stagingDir:
			if err := removeAllAt(s.dir, n); err != nil {
				return fmt.Errorf("clean staging area %s: %w", filepath.Join(s.path, n), err)
			}
		case strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-"):
			if err := unix.Unlinkat(fd(s.dir), n, 0); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("clean %s: %w", filepath.Join(s.path, n), err)
			}
		}
	}
	return nil
}

func (s *StateDir) list() ([]string, error) {
	d, err := reopenDir(s.dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// removeAllAt removes name in dir and everything below it, never following
// a symlink (a symlink is removed, not its target).
func removeAllAt(dir *os.File, name string) error {
	err := unix.Unlinkat(fd(dir), name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	sub, err := openDirAt(dir, name, filepath.Join(dir.Name(), name))
	if err != nil {
		return err
	}
	names, err := sub.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = removeAllAt(sub, n); err != nil {
				break
			}
		}
	}
	sub.Close()
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(fd(dir), name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// Staging is the root's staging area (<root>/.cachectl/staging), on the
// same file system as the artifacts, private to the runner.
type Staging struct {
	dir   *os.File
	owned bool // opened by OpenWorkDir: closed with its work directory
}

// Staging opens the staging area, creating it (0700) when missing.
func (s *StateDir) Staging() (*Staging, error) {
	abs := filepath.Join(s.path, stagingDir)
	if err := unix.Mkdirat(fd(s.dir), stagingDir, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, &PathError{Op: "create", Path: abs, Err: err}
	}
	d, err := openOwnedDir(s.dir, stagingDir, abs)
	if err != nil {
		return nil, err
	}
	return &Staging{dir: d}, nil
}

// Close releases the handle.
func (s *Staging) Close() error { return s.dir.Close() }

// WorkDir is a private scratch directory in the staging area. Its Path is
// a /proc/PID/fd link to the open directory, so a builder (or a child
// process such as mksquashfs) that writes there by path always reaches
// this very directory, whatever happens to the path names above it.
type WorkDir struct {
	staging *Staging
	name    string
	dir     *os.File
}

// WorkDir makes a new scratch directory in the staging area.
func (s *Staging) WorkDir() (*WorkDir, error) {
	name := randomName()
	if err := unix.Mkdirat(fd(s.dir), name, 0o700); err != nil {
		return nil, fmt.Errorf("create work directory in %s: %w", s.dir.Name(), err)
	}
	d, err := openDirAt(s.dir, name, filepath.Join(s.dir.Name(), name))
	if err != nil {
		return nil, err
	}
	return &WorkDir{staging: s, name: name, dir: d}, nil
}

// Path is a path that names the work directory itself: /proc/PID/fd/N.
func (w *WorkDir) Path() string {
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), w.dir.Fd())
}

// Remove deletes the work directory and what it holds.
func (w *WorkDir) Remove() error {
	w.dir.Close()
	return removeAllAt(w.staging.dir, w.name)
}

// Create makes a new file in the work directory for writing.
func (w *WorkDir) Create(name string) (*os.File, error) {
	n, err := unix.Openat(fd(w.dir), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s in the staging area: %w", name, err)
	}
	return os.NewFile(uintptr(n), name), nil
}

func randomName() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// isMissing reports whether err says the state directory does not exist.
func isMissing(err error) bool { return errors.Is(err, fs.ErrNotExist) }
