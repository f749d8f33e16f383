package cacheroot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// This file holds what a process other than the one holding a root's lock
// needs: a build task on a compute node that writes into a work directory
// the locked apply made (OpenWorkDir), and node-local staging tasks that
// record their node's state in the shared root (WriteNodeState).

// workNameRE matches the names Staging.WorkDir gives work directories.
var workNameRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// Name returns the work directory's name in the staging area: what
// another process gives OpenWorkDir to reach it.
func (w *WorkDir) Name() string { return w.name }

// Close releases the handles without removing the directory (the process
// that made it removes it).
func (w *WorkDir) Close() error {
	err := w.dir.Close()
	if w.staging != nil && w.staging.owned {
		w.staging.Close()
	}
	return err
}

// OpenWorkDir opens the existing work directory name in the staging area
// of the root at rootPath, for a process that did not make it (a build
// task on another node, while the apply that made it holds the lock). It
// walks from the root through handles without following symlinks and
// checks the state directory, the staging area and the work directory
// itself: real directories owned by the running user that nobody else can
// write. The caller closes the work directory (WorkDir.Close) and the
// root.
func OpenWorkDir(rootPath, name string) (*Root, *WorkDir, error) {
	if !workNameRE.MatchString(name) {
		return nil, nil, fmt.Errorf("%q is not the name of a work directory", name)
	}
	r, err := OpenRoot(rootPath)
	if err != nil {
		return nil, nil, err
	}
	w, err := r.openWorkDir(name)
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	return r, w, nil
}

func (r *Root) openWorkDir(name string) (*WorkDir, error) {
	state, err := r.OpenState(false)
	if err != nil {
		return nil, err
	}
	defer state.Close()
	stAbs := filepath.Join(state.path, stagingDir)
	sd, err := openOwnedDir(state.dir, stagingDir, stAbs)
	if err != nil {
		return nil, err
	}
	staging := &Staging{dir: sd, owned: true}
	d, err := openOwnedDir(sd, name, filepath.Join(stAbs, name))
	if err != nil {
		staging.Close()
		return nil, err
	}
	return &WorkDir{staging: staging, name: name, dir: d}, nil
}

// openOwnedDir opens an existing directory without following a symlink
// and checks that it belongs to the running user and that nobody else can
// write it.
func openOwnedDir(dir *os.File, name, abs string) (*os.File, error) {
	d, err := openDirAt(dir, name, abs)
	if err != nil {
		return nil, err
	}
	st, err := fstat(d)
	if err == nil {
		err = checkOwned(abs, st, false, true)
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// WriteFile writes a small file into the work directory atomically (a
// temporary file, fsynced, renamed over name): a reader sees the old file,
// no file, or the whole new one.
func (w *WorkDir) WriteFile(name string, data []byte) error {
	return writeAtomicAt(w.dir, name, data)
}

// ReadFile reads a regular file of the work directory (no symlink
// followed) of at most max bytes.
func (w *WorkDir) ReadFile(name string, max int64) ([]byte, error) {
	f, err := openRegularAt(w.dir, name, filepath.Join(w.staging.dir.Name(), w.name, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", f.Name(), max)
	}
	return data, nil
}

// writeAtomicAt writes name in dir through a temporary file (created
// O_EXCL, fsynced, renamed, directory fsynced).
func writeAtomicAt(dir *os.File, name string, data []byte) error {
	abs := filepath.Join(dir.Name(), name)
	tmp := "." + name + ".tmp-" + randomName()
	n, err := unix.Openat(fd(dir), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", abs, err)
	}
	f := os.NewFile(uintptr(n), tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(fd(dir), tmp, fd(dir), name)
	}
	if err != nil {
		unix.Unlinkat(fd(dir), tmp, 0)
		return fmt.Errorf("write %s: %w", abs, err)
	}
	return dir.Sync()
}

// nodesDir is the directory of the state directory that holds node-local
// caches' node states: nodes/<node cache>/<node>.json.
const nodesDir = "nodes"

// nodeNameRE is what a node cache or node name must look like to name a
// file: Slurm node names and cachectl's block labels fit.
var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// WriteNodeState records the state of node in node cache set (a JSON
// document the caller made) as nodes/<set>/<node>.json in the state
// directory, atomically; the directories are made 0700 when missing and
// must belong to the running user. Each node writes its own file, so
// nodes never contend.
func (s *StateDir) WriteNodeState(set, node string, data []byte) error {
	if !nodeNameRE.MatchString(set) || !nodeNameRE.MatchString(node) || len(node) > 200 {
		return fmt.Errorf("node cache %q, node %q: not usable as file names", set, node)
	}
	d := s.dir
	abs := s.path
	for _, c := range []string{nodesDir, set} {
		abs = filepath.Join(abs, c)
		if err := unix.Mkdirat(fd(d), c, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return &PathError{Op: "create", Path: abs, Err: err}
		}
		next, err := openOwnedDir(d, c, abs)
		if d != s.dir {
			d.Close()
		}
		if err != nil {
			return err
		}
		d = next
	}
	defer d.Close()
	return writeAtomicAt(d, node+".json", data)
}

// NodeStates reads every node state of node cache set (see
// WriteNodeState), by node name; none is an empty map. Files larger than
// max bytes are errors.
func (s *StateDir) NodeStates(set string, max int64) (map[string][]byte, error) {
	if !nodeNameRE.MatchString(set) {
		return nil, fmt.Errorf("node cache %q: not usable as a file name", set)
	}
	out := map[string][]byte{}
	abs := filepath.Join(s.path, nodesDir)
	nd, err := openDirAt(s.dir, nodesDir, abs)
	if isNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	defer nd.Close()
	abs = filepath.Join(abs, set)
	d, err := openDirAt(nd, set, abs)
	if isNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	for _, n := range names {
		node, ok := strings.CutSuffix(n, ".json")
		if !ok || strings.HasPrefix(n, ".") {
			continue
		}
		f, err := openRegularAt(d, n, filepath.Join(abs, n))
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(io.LimitReader(f, max+1))
		f.Close()
		if err != nil {
			return nil, err
		}
		if int64(len(data)) > max {
			return nil, fmt.Errorf("%s is larger than %d bytes", filepath.Join(abs, n), max)
		}
		out[node] = data
	}
	return out, nil
}

// Hash returns the size and the sha256 ("sha256:HEX", as the index records
// it) of a regular file of the work directory (no symlink followed).
func (w *WorkDir) Hash(name string) (int64, string, error) {
	f, err := openRegularAt(w.dir, name, filepath.Join(w.staging.dir.Name(), w.name, name))
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	sum, err := hashReader(f)
	if err != nil {
		return 0, "", fmt.Errorf("hash %s: %w", f.Name(), err)
	}
	st, err := fstat(f)
	if err != nil {
		return 0, "", err
	}
	return st.Size, sum, nil
}

// AccessTime returns the last access time of a file below the root (no
// symlink followed): when a job last read a node-local copy, as far as
// the file system's atime option records it.
func (r *Root) AccessTime(name string) (time.Time, error) {
	parent, leaf, _, err := r.OpenParent(name, false, 0, -1, -1)
	if err != nil {
		return time.Time{}, err
	}
	defer parent.Close()
	var st unix.Stat_t
	if err := unix.Fstatat(fd(parent), leaf, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return time.Time{}, &PathError{Op: "stat", Path: r.Abs(name), Err: err}
	}
	return time.Unix(st.Atim.Unix()).UTC(), nil
}

// OpenFileAt opens a regular file below the root for reading (see
// OpenFile) and returns its stat data too.
func (r *Root) OpenFileAt(name string) (*os.File, FileState, error) {
	f, err := r.OpenFile(name)
	if err != nil {
		return nil, FileState{}, err
	}
	st, err := fstat(f)
	if err != nil {
		f.Close()
		return nil, FileState{}, err
	}
	return f, stateOf(st), nil
}
