package cacheroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cachectl/cachectl/providers/store"
	"golang.org/x/sys/unix"
)

// UnsafePathError says why a path (a node-local root, a Slurm log
// directory) is one that another user could redirect or take over.
type UnsafePathError struct {
	Path   string // the path as given
	At     string // the component found unsafe
	Reason string
}

func (e *UnsafePathError) Error() string {
	if e.At == e.Path {
		return fmt.Sprintf("%s %s", e.Path, e.Reason)
	}
	return fmt.Sprintf("%s: %s %s", e.Path, e.At, e.Reason)
}

// PathCheck says how CheckPlace checks a path.
type PathCheck struct {
	// Owners are the users besides root and the runner who may own the
	// path's directories (a cache's owner; -1 entries are ignored).
	Owners []int
	// Whole checks the last directory itself too. Without it only the
	// symbolic links and the directories above it are checked: a cache
	// root's own directory may belong to anyone (its owner is trusted
	// with what is below it, see Root).
	Whole bool
	// Existing is for a check made once the caller has made or opened
	// what is at the path: a missing component is then an error (someone
	// removed it since, perhaps a link that led elsewhere), not a part
	// still to make.
	Existing bool
	// Fix is what the message says to do (a default fits a cache root or
	// the blob store).
	Fix string
}

// CheckPlace refuses a path to what (a "cache root", the "blob store", a
// "local root", the "slurm log directory") that someone other than root,
// the runner or pc.Owners could redirect or take over: every symbolic
// link on the way (followed as the kernel would, each one checked) must
// belong to root or the runner, and every directory on the way (the last
// one with pc.Whole) must belong to root, the runner or one of pc.Owners,
// and be writable by nobody else unless it has the sticky bit (like /tmp,
// where others cannot rename or replace what is not theirs). Components
// that do not exist yet are not checked unless pc.Existing (the caller
// creates them, then checks again). An unsafe path is an error wrapping an
// *UnsafePathError that says what to do about it; a failed lookup is
// returned as it is.
func CheckPlace(what, path string, pc PathCheck) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	err = checkPath(abs, pc.Owners, !pc.Whole, pc.Existing)
	var ue *UnsafePathError
	if errors.As(err, &ue) {
		fix := pc.Fix
		if fix == "" {
			fix = fmt.Sprintf("whoever owns or can write it could point the %s elsewhere, where cachectl would create and change files; give its real path, or make the directories above it root's and writable only by their owner (or sticky)", what)
		}
		return fmt.Errorf("%s %w: %s", what, err, fix)
	}
	return err
}

func checkPath(path string, owners []int, exemptLast, mustExist bool) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%s: not an absolute path", path)
	}
	trusted := func(uid uint32) bool {
		return uid == 0 || int(uid) == os.Geteuid() || slices.Contains(owners, int(uid))
	}
	unsafe := func(at, format string, args ...any) error {
		return &UnsafePathError{Path: path, At: at, Reason: fmt.Sprintf(format, args...)}
	}
	checkDir := func(p string, st *unix.Stat_t) error {
		switch {
		case !trusted(st.Uid):
			return unsafe(p, "belongs to uid %d, not to root or to you (uid %d)%s", st.Uid, os.Geteuid(), ownersText(owners))
		case st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0:
			return unsafe(p, "is writable by group or others (mode %04o) without the sticky bit", st.Mode&0o7777)
		}
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat("/", &st); err != nil {
		return err
	}
	if err := checkDir("/", &st); err != nil {
		return err
	}
	dir, rest := "/", strings.Split(path, "/")
	for links := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			dir = filepath.Dir(dir)
			continue
		}
		p := filepath.Join(dir, c)
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, unix.ENOENT) && !mustExist {
				return nil
			}
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			if !trusted(st.Uid) {
				return unsafe(p, "is a symbolic link of uid %d, not of root or of you (uid %d)%s", st.Uid, os.Geteuid(), ownersText(owners))
			}
			if links++; links > 40 {
				return &os.PathError{Op: "resolve", Path: path, Err: unix.ELOOP}
			}
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if filepath.IsAbs(target) {
				dir = "/"
			}
			rest = append(strings.Split(target, "/"), rest...)
		case unix.S_IFDIR:
			if exemptLast && !slices.ContainsFunc(rest, func(c string) bool { return c != "" && c != "." }) {
				return nil // the root itself
			}
			if err := checkDir(p, &st); err != nil {
				return err
			}
			dir = p
		default:
			return unsafe(p, "is not a directory")
		}
	}
	return nil
}

func ownersText(owners []int) string {
	var ids []string
	for _, o := range owners {
		if o >= 0 && o != 0 && o != os.Geteuid() {
			ids = append(ids, fmt.Sprint(o))
		}
	}
	if len(ids) == 0 {
		return ""
	}
	return " or to the owner set in the spec (uid " + strings.Join(ids, ", ") + ")"
}

// OpenStore opens the blob store at dir (store.Open checks the store's
// own directories) once its path is one nobody else could point
// elsewhere, before Open creates anything there and again once it exists.
func OpenStore(dir string) (*store.Store, error) {
	if err := CheckPlace("blob store", dir, PathCheck{}); err != nil {
		return nil, err
	}
	st, err := store.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := CheckPlace("blob store", dir, PathCheck{Existing: true}); err != nil {
		return nil, err
	}
	return st, nil
}
