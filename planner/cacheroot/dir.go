package cacheroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cachectl/cachectl/spec"
)

// Root is an open cache root directory. Every operation below the root is
// made relative to this handle and to handles of the directories under it,
// opened one component at a time with O_NOFOLLOW: a path string is never
// resolved twice, so renaming a directory or putting a symlink in its place
// between a check and an action cannot redirect the action, and nothing is
// ever followed out of the root.
//
// Why not os.Root or filepath-securejoin: both follow symlinks that stay
// inside the root, and os.Root's Chmod/Chown act by name (its documentation
// lists the race). cachectl wants no symlink followed at all below a root,
// with an error that names it, on every kernel its users run (RHEL 8's 4.18
// has no openat2), which a component walk with openat(O_NOFOLLOW) gives.
type Root struct {
	path string
	dir  *os.File
	// owner is the owner of the root directory; with root, the running
	// user and the cache's owner (Trust), the only owners a directory
	// below the root may have for cachectl to go through it.
	owner   int
	trusted []int
}

// ErrSymlink is returned (wrapped) when a path component below a root is a
// symbolic link where cachectl needs a directory or a file.
var ErrSymlink = errors.New("is a symbolic link")

// ErrNotDir is returned (wrapped) when a path component that must be a
// directory is something else.
var ErrNotDir = errors.New("is not a directory")

// ErrUntrusted is returned (wrapped) when a directory below a root belongs
// to someone cachectl does not trust with its files: whoever owns a
// directory may rename and replace what is in it, whatever its mode.
var ErrUntrusted = errors.New("belongs to another user")

// ErrHardLinked is returned (wrapped) when a file cachectl would take
// over has more than one hard link.
var ErrHardLinked = errors.New("has another hard link")

// PathError names the path below a root that an operation refused.
type PathError struct {
	Op   string
	Path string // absolute, for messages
	Err  error
}

func (e *PathError) Error() string {
	switch {
	case errors.Is(e.Err, ErrSymlink):
		return fmt.Sprintf("%s: %s is a symbolic link; cachectl never follows symlinks below a cache root (move it away, or replace it with a real directory)", e.Op, e.Path)
	case errors.Is(e.Err, ErrNotDir):
		return fmt.Sprintf("%s: %s is not a directory", e.Op, e.Path)
	case errors.Is(e.Err, ErrUntrusted):
		return fmt.Sprintf("%s: %s %v; its owner could replace what cachectl puts there, whatever the mode (move it away, or chown it to root or the cache's owner)", e.Op, e.Path, e.Err)
	}
	return fmt.Sprintf("%s %s: %v", e.Op, e.Path, e.Err)
}

func (e *PathError) Unwrap() error { return e.Err }

// OpenRoot opens an existing cache root. The root path itself is resolved
// once, as the admin wrote it in the spec (its ancestors may be symlinks);
// it must be a directory. A missing root gives an error wrapping
// fs.ErrNotExist.
func OpenRoot(path string) (*Root, error) {
	path = filepath.Clean(path)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("cache root %s exists and is not a directory", path)
		}
		return nil, &PathError{Op: "open cache root", Path: path, Err: err}
	}
	return rootOf(path, os.NewFile(uintptr(fd), path))
}

// rootOf makes the Root of the open directory d (closed on error).
func rootOf(path string, d *os.File) (*Root, error) {
	r := &Root{path: path, dir: d}
	st, err := fstat(r.dir)
	if err != nil {
		r.Close()
		return nil, err
	}
	r.owner = int(st.Uid)
	return r, nil
}

// Trust adds the owner of the cache (its owner setting, -1 for none) to
// the owners a directory below the root may have.
func (r *Root) Trust(uid int) {
	if uid >= 0 {
		r.trusted = append(r.trusted, uid)
	}
}

// checkTrusted refuses a directory below the root whose owner is not
// root, the running user, the root directory's owner or the cache's owner.
func (r *Root) checkTrusted(d *os.File) error {
	st, err := fstat(d)
	if err != nil {
		return err
	}
	uid := int(st.Uid)
	if uid == 0 || uid == os.Geteuid() || uid == r.owner || slices.Contains(r.trusted, uid) {
		return nil
	}
	return &PathError{Op: "open", Path: d.Name(), Err: fmt.Errorf("%w (uid %d)", ErrUntrusted, uid)}
}

// CreateRoot opens the cache root, creating it (and, root-owned 0755, its
// missing ancestors) when it does not exist: the root itself gets dirMode
// and the owner. created reports whether this call made it.
func CreateRoot(path string, dirMode spec.Mode, uid, gid int) (r *Root, created bool, err error) {
	path = filepath.Clean(path)
	r, err = OpenRoot(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return r, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, false, fmt.Errorf("create cache root: %w", err)
	}
	parent, err := OpenRoot(filepath.Dir(path))
	if err != nil {
		return nil, false, err
	}
	defer parent.Close()
	d, made, err := mkdirAt(parent.dir, filepath.Dir(path), filepath.Base(path), dirMode, uid, gid)
	if err != nil {
		return nil, false, err
	}
	// The handle of the directory made (or found) there, not its path
	// again: the parent could be changed in between.
	r, err = rootOf(path, d)
	return r, made, err
}

// resolvesTo fails unless path leads (following symlinks, as OpenRoot
// does) to the directory r holds.
func (r *Root) resolvesTo(path string) error {
	var byPath, held unix.Stat_t
	if err := unix.Stat(path, &byPath); err != nil {
		return fmt.Errorf("cache root %s changed while it was being opened (%v); run again", path, err)
	}
	if err := unix.Fstat(fd(r.dir), &held); err != nil {
		return err
	}
	if byPath.Dev != held.Dev || byPath.Ino != held.Ino {
		return fmt.Errorf("cache root %s changed while it was being opened (it now leads to another directory); run again, and see who can change the directories above it", path)
	}
	return nil
}

// Path returns the root's path as given.
func (r *Root) Path() string { return r.path }

// Close releases the handle.
func (r *Root) Close() error {
	if r == nil || r.dir == nil {
		return nil
	}
	return r.dir.Close()
}

// Abs returns the absolute path of a checked name below the root, for
// messages and for the plan.
func (r *Root) Abs(name string) string {
	if name == "." || name == "" {
		return r.path
	}
	return spec.JoinRoot(r.path, name)
}

// fd returns the descriptor of an open directory.
func fd(f *os.File) int { return int(f.Fd()) }

// openDirAt opens the directory name in dir without following a symlink.
// abs names it in errors.
func openDirAt(dir *os.File, name, abs string) (*os.File, error) {
	for {
		n, err := unix.Openat(fd(dir), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			return os.NewFile(uintptr(n), abs), nil
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return nil, describeOpenErr("open", dir, name, abs, err)
	}
}

// describeOpenErr turns ELOOP/ENOTDIR from an O_NOFOLLOW|O_DIRECTORY open
// into an error that says what is in the way.
func describeOpenErr(op string, dir *os.File, name, abs string, err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		var st unix.Stat_t
		if unix.Fstatat(fd(dir), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			if st.Mode&unix.S_IFMT == unix.S_IFLNK {
				return &PathError{Op: op, Path: abs, Err: ErrSymlink}
			}
			return &PathError{Op: op, Path: abs, Err: ErrNotDir}
		}
	}
	return &PathError{Op: op, Path: abs, Err: err}
}

// mkdirAt creates the directory name in dir (0700 first, so that nobody
// can use it before it has its owner and mode), opens it without following
// symlinks, checks that it is the directory this call made, then gives it
// its owner and mode (chown first: it clears setgid). An existing directory
// is opened and returned as it is (made = false).
func mkdirAt(dir *os.File, dirAbs, name string, mode spec.Mode, uid, gid int) (d *os.File, made bool, err error) {
	abs := filepath.Join(dirAbs, name)
	err = unix.Mkdirat(fd(dir), name, 0o700)
	switch {
	case err == nil:
		made = true
	case errors.Is(err, unix.EEXIST):
	default:
		return nil, false, &PathError{Op: "create", Path: abs, Err: err}
	}
	d, err = openDirAt(dir, name, abs)
	if err != nil {
		return nil, false, err
	}
	if !made {
		return d, false, nil
	}
	st, err := fstat(d)
	if err != nil {
		d.Close()
		return nil, false, err
	}
	if int(st.Uid) != os.Geteuid() || st.Mode&0o777 != 0o700 { // (setgid may be inherited)
		d.Close()
		return nil, false, &PathError{Op: "create", Path: abs, Err: errors.New("was replaced by another directory while it was being created")}
	}
	if err := setAttrs(d, mode, uid, gid); err != nil {
		d.Close()
		return nil, false, err
	}
	return d, true, nil
}

// setAttrs gives an open file or directory its owner, then its mode.
func setAttrs(f *os.File, mode spec.Mode, uid, gid int) error {
	if uid >= 0 || gid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("set owner of %s: %w", f.Name(), err)
		}
	}
	if err := f.Chmod(mode.FileMode()); err != nil {
		return fmt.Errorf("set mode of %s: %w", f.Name(), err)
	}
	return nil
}

func fstat(f *os.File) (*unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd(f), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	return &st, nil
}

// split splits a checked slash-separated name into its parent components
// and its last component.
func split(name string) (dirs []string, leaf string) {
	parts := strings.Split(name, "/")
	return parts[:len(parts)-1], parts[len(parts)-1]
}

// OpenParent opens the directory that holds name (a name checked with
// spec.CheckName), walking from the root one component at a time without
// following symlinks. With create, missing directories are made with
// dirMode and the owner, and their names (relative to the root) returned
// in created, outermost first. The caller closes the returned directory.
func (r *Root) OpenParent(name string, create bool, dirMode spec.Mode, uid, gid int) (parent *os.File, leaf string, created []string, err error) {
	dirs, leaf := split(name)
	cur, err := r.dupRoot()
	if err != nil {
		return nil, "", nil, err
	}
	abs := r.path
	for i, c := range dirs {
		abs = filepath.Join(abs, c)
		var next *os.File
		if create {
			var made bool
			next, made, err = mkdirAt(cur, filepath.Dir(abs), c, dirMode, uid, gid)
			if made {
				created = append(created, strings.Join(dirs[:i+1], "/"))
			}
		} else {
			next, err = openDirAt(cur, c, abs)
		}
		cur.Close()
		if err == nil {
			if err = r.checkTrusted(next); err != nil {
				next.Close()
			}
		}
		if err != nil {
			return nil, "", created, err
		}
		cur = next
	}
	return cur, leaf, created, nil
}

// OpenDir opens a directory below the root ("." is the root itself)
// without following symlinks.
func (r *Root) OpenDir(name string) (*os.File, error) {
	if name == "." {
		return r.dupRoot()
	}
	parent, leaf, _, err := r.OpenParent(name, false, 0, -1, -1)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	return openDirAt(parent, leaf, r.Abs(name))
}

// dupRoot returns a second handle of the root directory (closed by the
// caller independently of the Root).
func (r *Root) dupRoot() (*os.File, error) { return reopenDir(r.dir) }

// reopenDir opens an open directory again: a handle of its own, with its
// own read offset (a dup would share it).
func reopenDir(d *os.File) (*os.File, error) {
	n, err := unix.Openat(fd(d), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reopen %s: %w", d.Name(), err)
	}
	return os.NewFile(uintptr(n), d.Name()), nil
}

// FileState is what an lstat (and, with verification, a hash) of a path
// below a root shows.
type FileState struct {
	Exists  bool
	Regular bool
	Dir     bool
	Size    int64
	ModTime time.Time
	Mode    spec.Mode
	UID     int
	GID     int
	// Inode identifies the file on its file system (Dev).
	Inode uint64
	Dev   uint64
	// Ctime is the inode's change time, set by the kernel at every change
	// (content, mode, owner, links, rename): nobody can set it back.
	Ctime time.Time
	// SHA256 is set only when the scan verified content.
	SHA256 string
	// Blocked is set when a parent of the path cannot be gone through: a
	// symlink or a file where a directory should be, or a directory of an
	// untrusted owner; BlockedBy says which (ErrSymlink, ErrNotDir,
	// ErrUntrusted, wrapped).
	Blocked   string
	BlockedBy error
}

func stateOf(st *unix.Stat_t) FileState {
	return FileState{
		Exists:  true,
		Regular: st.Mode&unix.S_IFMT == unix.S_IFREG,
		Dir:     st.Mode&unix.S_IFMT == unix.S_IFDIR,
		Size:    st.Size,
		ModTime: time.Unix(st.Mtim.Unix()).UTC(),
		Mode:    modeOf(st.Mode),
		UID:     int(st.Uid),
		GID:     int(st.Gid),
		Inode:   st.Ino,
		Dev:     st.Dev,
		Ctime:   time.Unix(st.Ctim.Unix()).UTC(),
	}
}

func modeOf(m uint32) spec.Mode { return spec.Mode(m & 0o7777) }

// Lstat returns the state of a name below the root, never following a
// symlink (neither the name nor any parent). A missing path is a state with
// Exists false; a parent that is a symlink or a file gives Blocked.
func (r *Root) Lstat(name string) (FileState, error) {
	if name == "." {
		st, err := fstat(r.dir)
		if err != nil {
			return FileState{}, err
		}
		return stateOf(st), nil
	}
	parent, leaf, _, err := r.OpenParent(name, false, 0, -1, -1)
	if err != nil {
		var pe *PathError
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return FileState{}, nil
		case errors.As(err, &pe) && (errors.Is(err, ErrSymlink) || errors.Is(err, ErrNotDir) || errors.Is(err, ErrUntrusted)):
			return FileState{Blocked: pe.Path, BlockedBy: pe.Err}, nil
		}
		return FileState{}, err
	}
	defer parent.Close()
	var st unix.Stat_t
	if err := unix.Fstatat(fd(parent), leaf, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return FileState{}, nil
		}
		return FileState{}, &PathError{Op: "stat", Path: r.Abs(name), Err: err}
	}
	return stateOf(&st), nil
}

// OpenFile opens a regular file below the root for reading, without
// following a symlink anywhere on the way and without blocking on a FIFO;
// anything but a regular file is refused.
func (r *Root) OpenFile(name string) (*os.File, error) {
	parent, leaf, _, err := r.OpenParent(name, false, 0, -1, -1)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	return openRegularAt(parent, leaf, r.Abs(name))
}

// openRegularAt opens a regular file in dir read-only, O_NOFOLLOW and
// O_NONBLOCK (a FIFO cannot hang it), and checks its type on the handle.
func openRegularAt(dir *os.File, name, abs string) (*os.File, error) {
	n, err := unix.Openat(fd(dir), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, &PathError{Op: "open", Path: abs, Err: ErrSymlink}
		}
		return nil, &PathError{Op: "open", Path: abs, Err: err}
	}
	f := os.NewFile(uintptr(n), abs)
	st, err := fstat(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, &PathError{Op: "open", Path: abs, Err: errors.New("is not a regular file")}
	}
	// Back to blocking reads for a regular file.
	if err := unix.SetNonblock(n, false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// isNotExist reports whether err means a path is absent.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOENT)
}

// OpenRegularNoSymlinks opens the regular file at an absolute path for
// reading, following no symlink anywhere on the path (each directory is
// opened relative to the last with O_NOFOLLOW): a file a user hands to
// root (import) cannot redirect root through a symlinked directory to a
// file the user may not read. A symlink on the way is an error naming it,
// so that the caller can give the real path.
func OpenRegularNoSymlinks(path string) (*os.File, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%s: not an absolute path", path)
	}
	path = filepath.Clean(path)
	dirs, leaf := split(strings.TrimPrefix(path, "/"))
	n, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	cur := os.NewFile(uintptr(n), "/")
	abs := "/"
	for _, c := range dirs {
		abs = filepath.Join(abs, c)
		next, err := openDirAt(cur, c, abs)
		cur.Close()
		if err != nil {
			return nil, err
		}
		cur = next
	}
	defer cur.Close()
	return openRegularAt(cur, leaf, path)
}
