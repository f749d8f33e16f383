package cacheroot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cachectl/cachectl/spec"
)

// Settings are the desired owner and directory mode of a cache root and
// the runtime whose naming rules its names follow.
type Settings struct {
	Runtime spec.Runtime
	DirMode spec.Mode
	// UID and GID to give created directories and placed files (-1 = not
	// enforced).
	UID, GID int
	// What the root is, in messages ("cache root" when empty), and how its
	// path is checked (RootCheck): Path.Whole for a root whose own
	// directory must be safe too (a node-local root, made under a scratch
	// directory every user may write), Path.Fix for what to do.
	What string
	Path PathCheck
}

// RootCheck is how Begin (and plan, with a cache's settings) checks the
// path of the root: CheckPlace with the settings' owner added.
func (set Settings) RootCheck(existing bool) (what string, pc PathCheck) {
	what, pc = set.What, set.Path
	if what == "" {
		what = "cache root"
	}
	pc.Owners = append(slices.Clip(pc.Owners), set.UID)
	pc.Existing = existing
	return what, pc
}

// CheckRoot refuses a root whose path someone other than root, the runner
// or the root's owner could point elsewhere (see Settings.RootCheck).
// Begin checks it before it creates or opens anything and again once the
// root exists; plan checks it too, so that it fails where apply would.
func CheckRoot(root string, set Settings) error {
	what, pc := set.RootCheck(false)
	return CheckPlace(what, root, pc)
}

// Session is a locked cache root: the only way cachectl changes one. It
// holds the root's handle, its verified state directory, the lock, the
// staging area (cleaned of what interrupted runs left) and the index, and
// carries out the placement protocol: every file placed, updated or
// deleted is reached through directory handles, and only files whose
// identity the index recorded at placement are ever changed.
type Session struct {
	Root    *Root
	state   *StateDir
	lock    *Lock
	staging *Staging
	set     Settings
	created bool
	// rootIno is the inode of the root when this session created it: it
	// is recorded in the index (as directory ".") with the first write, or
	// at Release, so that a plan made before the root existed still
	// matches the root's fingerprint.
	rootIno uint64
	written bool
	abandon bool
	// rehashed is set when Scan found files whose change time alone had
	// moved and recorded their new one in the index (RootState.Rehashed).
	rehashed bool
	// known holds the files hashed in this run whose content was still
	// what was placed (RootState.Rehashed): Scan, Update and Delete do not
	// hash one again while it is in exactly that state.
	known map[string]FileState

	mu sync.Mutex // guards ix and index writes
	ix *Index
}

// Begin opens (creating it when missing, with its directory mode and
// owner) and locks a cache root, checks its state directory, removes what
// interrupted runs left in it, and reads the index.
func Begin(ctx context.Context, rootPath string, set Settings, lockTimeout time.Duration) (*Session, error) {
	// The path to the root: before it is created or opened, and again
	// once it exists (a missing part could have been made meanwhile).
	if err := CheckRoot(rootPath, set); err != nil {
		return nil, err
	}
	r, created, err := CreateRoot(rootPath, set.DirMode, set.UID, set.GID)
	if err != nil {
		return nil, err
	}
	// The path is safe now and leads to the directory this session
	// holds: made in the order that leaves no gap (a path unsafe when it
	// was resolved cannot become safe but by losing a component).
	if err := r.resolvesTo(rootPath); err != nil {
		r.Close()
		return nil, err
	}
	what, pc := set.RootCheck(true)
	if err := CheckPlace(what, rootPath, pc); err != nil {
		r.Close()
		return nil, err
	}
	r.Trust(set.UID)
	s := &Session{Root: r, set: set, created: created}
	ok := false
	defer func() {
		if !ok {
			s.Release()
		}
	}()
	if s.state, err = r.OpenState(true); err != nil {
		return nil, err
	}
	if s.lock, err = s.state.Lock(ctx, lockTimeout); err != nil {
		return nil, err
	}
	if err := s.state.CleanLeftovers(); err != nil {
		return nil, err
	}
	if s.ix, err = s.state.ReadIndex(set.Runtime); err != nil {
		return nil, err
	}
	if created {
		st, err := fstat(r.dir)
		if err != nil {
			return nil, err
		}
		s.rootIno = st.Ino
		s.ix.addDirInode(".", st.Ino)
	}
	ok = true
	return s, nil
}

// Created reports whether Begin made the root.
func (s *Session) Created() bool { return s.created }

// Release removes the staging area and frees the lock and handles.
func (s *Session) Release() {
	if s == nil {
		return
	}
	if s.staging != nil {
		s.staging.Close()
		s.staging = nil
	}
	if s.state != nil && s.lock != nil {
		s.state.CleanLeftovers()
		s.mu.Lock()
		if s.created && !s.written && s.ix != nil {
			if s.abandon && s.removeUnused() {
				s.mu.Unlock()
				s.lock.Release()
				s.lock = nil
				s.state.Close()
				s.Root.Close()
				return
			}
			s.writeIndex()
		} else if s.rehashed && !s.written && s.ix != nil {
			s.writeIndex()
		}
		s.mu.Unlock()
	}
	s.lock.Release()
	s.lock = nil
	s.state.Close()
	s.Root.Close()
}

// Abandon releases the session like Release, but first removes the root
// when this session created it and nothing was put in it: what a declined
// or refused apply leaves is nothing at all.
func (s *Session) Abandon() {
	if s == nil {
		return
	}
	s.abandon = true
	s.Release()
}

// removeUnused removes a root this session created when nothing was put
// in it: its state directory (lock, staging) and the root directory
// itself, only when they hold nothing else. It reports whether it removed
// the lock file (after which the session must write nothing).
func (s *Session) removeUnused() bool {
	names, err := s.state.list()
	if err != nil {
		return false
	}
	for _, n := range names {
		if n != lockFile {
			return false
		}
	}
	rootNames, err := func() ([]string, error) {
		d, err := reopenDir(s.Root.dir)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		return d.Readdirnames(-1)
	}()
	if err != nil || len(rootNames) != 1 || rootNames[0] != spec.IndexDir {
		return false
	}
	if unix.Unlinkat(fd(s.state.dir), lockFile, 0) != nil {
		return false
	}
	// From here on the lock file is gone: a run that was waiting on it
	// takes the root afresh (StateDir.Lock), so this session writes
	// nothing more, even when the state directory cannot go (that run
	// has just made its new lock file there).
	if unix.Unlinkat(fd(s.Root.dir), spec.IndexDir, unix.AT_REMOVEDIR) != nil {
		return true
	}
	parent, err := OpenRoot(filepath.Dir(s.Root.path))
	if err != nil {
		return true
	}
	defer parent.Close()
	var st unix.Stat_t
	if unix.Fstatat(fd(parent.dir), filepath.Base(s.Root.path), &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Ino == s.rootIno {
		unix.Unlinkat(fd(parent.dir), filepath.Base(s.Root.path), unix.AT_REMOVEDIR)
	}
	return true
}

// Scan scans the locked root (see Root.Scan).
func (s *Session) Scan(opts ScanOptions) (*RootState, error) {
	opts.Runtime = s.set.Runtime
	s.mu.Lock()
	opts.Known = maps.Clone(s.known)
	s.mu.Unlock()
	st, err := s.Root.Scan(s.state, opts)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.created && !st.Index.HasDir(".") {
		st.Index.addDirInode(".", s.rootIno) // not in the fingerprint: see rootIno
	}
	s.ix = st.Index
	if s.remember(st.Rehashed) {
		s.rehashed = true // written with the index, at the latest at Release
	}
	s.mu.Unlock()
	return st, nil
}

// remember keeps rehashed (a RootState.Rehashed) for the rest of the run
// and records in the index the change times it may (Index.setCtime); it
// reports whether it recorded any (mu held).
func (s *Session) remember(rehashed map[string]FileState) bool {
	recorded := false
	for name, hashed := range rehashed {
		if s.known == nil {
			s.known = map[string]FileState{}
		}
		s.known[name] = hashed
		if s.ix.setCtime(name, hashed) {
			recorded = true
		}
	}
	return recorded
}

// knownSum returns the hash this run found for name when fs is still
// exactly the state it hashed ("" otherwise; mu held).
func (s *Session) knownSum(name string, fs FileState) string {
	if k, ok := s.known[name]; ok && sameState(k, fs) {
		return k.SHA256
	}
	return ""
}

// RecordChangeTimes takes, from a scan of this locked root made since
// Begin (RootState.Rehashed), the files whose change time alone had moved
// and whose content was still what was placed: the session does not hash
// them again (Scan, Update, Delete), and it records in the index, written
// now, the change times of those whose owner and mode are as placed, so
// that later runs need not hash them either. Change times are not in the
// root's fingerprint: plans made from the scan stay valid.
func (s *Session) RecordChangeTimes(rehashed map[string]FileState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.remember(rehashed) {
		return nil
	}
	return s.writeIndex()
}

// Lookup returns a copy of the index entry of name.
func (s *Session) Lookup(name string) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.ix.Lookup(name)
	if !ok {
		return Entry{}, false
	}
	return *e, true
}

// WorkDir makes a private scratch directory in the staging area.
func (s *Session) WorkDir() (*WorkDir, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.staging == nil {
		st, err := s.state.Staging()
		if err != nil {
			return nil, err
		}
		s.staging = st
	}
	return s.staging.WorkDir()
}

// Finished is what Finish found of a built file.
type Finished struct {
	Size    int64
	SHA256  string
	ModTime time.Time
	Mode    spec.Mode
	UID     int
	GID     int
	Inode   uint64
	Ctime   time.Time
}

// Finish prepares a file that a builder wrote into a work directory: it
// opens it there (no symlink followed), gives it its owner and mode (chown
// first: it clears setuid/setgid), fsyncs it and hashes it.
func (w *WorkDir) Finish(name string, mode spec.Mode, uid, gid int) (Finished, error) {
	f, err := openRegularAt(w.dir, name, name)
	if err != nil {
		return Finished{}, fmt.Errorf("builder left no file: %w", err)
	}
	defer f.Close()
	return finishOpen(f, mode, uid, gid)
}

func finishOpen(f *os.File, mode spec.Mode, uid, gid int) (Finished, error) {
	if err := setAttrs(f, mode, uid, gid); err != nil {
		return Finished{}, err
	}
	if err := f.Sync(); err != nil {
		return Finished{}, fmt.Errorf("fsync: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Finished{}, err
	}
	sum, err := hashReader(f)
	if err != nil {
		return Finished{}, fmt.Errorf("hash: %w", err)
	}
	st, err := fstat(f)
	if err != nil {
		return Finished{}, err
	}
	fs := stateOf(st)
	return Finished{Size: fs.Size, SHA256: sum, ModTime: fs.ModTime, Mode: fs.Mode, UID: fs.UID, GID: fs.GID, Inode: fs.Inode, Ctime: fs.Ctime}, nil
}

// Entry fills an index entry's file fields from what Finish found (Place
// records the change time after its rename).
func (f Finished) Entry(e Entry) Entry {
	e.Size, e.SHA256, e.ModTime, e.Mode, e.UID, e.GID, e.Inode, e.Ctime = f.Size, f.SHA256, f.ModTime, f.Mode, f.UID, f.GID, f.Inode, f.Ctime
	return e
}

// Place renames the finished file name of work dir w into its final place
// e.Name, creating the parent directories it needs (recorded in the index,
// with their inodes), and records e in the index. Before the rename the
// index records e as pending, so that a crash right after it still lets
// the next scan recognise the file as cachectl's. A name the index does not
// hold is placed only where nothing is (RENAME_NOREPLACE); a directory is
// never replaced.
func (s *Session) Place(w *WorkDir, name string, e Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dest := s.Root.Abs(e.Name)
	parent, leaf, created, err := s.Root.OpenParent(e.Name, true, s.set.DirMode, s.set.UID, s.set.GID)
	if len(created) > 0 {
		s.recordCreatedDirs(created)
		if werr := s.writeIndex(); err == nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	defer parent.Close()
	var st unix.Stat_t
	_, managed := s.ix.Lookup(e.Name)
	switch err := unix.Fstatat(fd(parent), leaf, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return fmt.Errorf("%s is a directory; not replaced", dest)
	case err == nil && !managed:
		return fmt.Errorf("%s appeared since the plan was made and was not placed by cachectl; not overwritten", dest)
	case err != nil && !errors.Is(err, unix.ENOENT):
		return &PathError{Op: "stat", Path: dest, Err: err}
	}
	s.ix.SetPending(e)
	if err := s.writeIndex(); err != nil {
		return err
	}
	var flags uint
	if !managed {
		flags = unix.RENAME_NOREPLACE
	}
	if err := unix.Renameat2(fd(w.dir), name, fd(parent), leaf, flags); err != nil {
		s.ix.ClearPending(e.Name)
		s.writeIndex()
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%s appeared since the plan was made and was not placed by cachectl; not overwritten", dest)
		}
		return fmt.Errorf("place %s: %w", dest, err)
	}
	if err := parent.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", parent.Name(), err)
	}
	// The rename changed the file's ctime: record it as it is now.
	if err := unix.Fstatat(fd(parent), leaf, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Ino == e.Inode {
		e.Ctime = stateOf(&st).Ctime
	}
	s.ix.ClearPending(e.Name)
	s.ix.Put(e)
	return s.writeIndex()
}

// writeIndex writes the session's index (mu held).
func (s *Session) writeIndex() error {
	s.written = true
	return s.state.WriteIndex(s.ix)
}

// recordCreatedDirs adds directories Place created to the index with
// their inodes (lock and mu held).
func (s *Session) recordCreatedDirs(created []string) {
	for _, d := range created {
		fs, err := s.Root.Lstat(d)
		if err == nil && fs.Dir {
			s.ix.addDirInode(d, fs.Inode)
		}
	}
}

// openPlaced opens the managed file name for changing its attributes and
// checks that it is the very file cachectl placed: a regular file with the
// recorded inode (entries older than inode recording: the recorded size
// and modification time).
func (s *Session) openPlaced(name string, e *Entry) (*os.File, error) {
	dest := s.Root.Abs(name)
	f, err := s.Root.OpenFile(name)
	if err != nil {
		return nil, err
	}
	st, err := fstat(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	fs := stateOf(st)
	if err := samePlaced(dest, fs, e, func() (string, error) {
		if sum := s.knownSum(name, fs); sum != "" {
			return sum, nil
		}
		return HashFile(f)
	}); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// HashFile returns the sha256 ("sha256:HEX") of the open file f, read from
// its start whatever its offset.
func HashFile(f *os.File) (string, error) {
	return hashReader(io.NewSectionReader(f, 0, 1<<62))
}

// samePlaced checks that a file's state is that of the entry cachectl
// recorded when it placed it: inode, size and mtime, and the change time —
// when only that differs (a chmod, or a file that took the inode number of
// the one placed), the content (hash) must still be what was placed.
func samePlaced(dest string, fs FileState, e *Entry, hash func() (string, error)) error {
	if e.Inode != 0 && fs.Inode != e.Inode {
		return fmt.Errorf("%s is not the file cachectl placed (inode %d, recorded %d); not changed (run plan: it replaces it)", dest, fs.Inode, e.Inode)
	}
	if fs.Size != e.Size || !fs.ModTime.Equal(e.ModTime) {
		return fmt.Errorf("%s changed since cachectl placed it; not changed (remove it by hand, or take it over with \"cachectl import\" (or \"cachectl adopt\" for a whole root))", dest)
	}
	if hash != nil && !e.Ctime.IsZero() && !fs.Ctime.Equal(e.Ctime) {
		sum, err := hash()
		if err != nil {
			return err
		}
		if sum != e.SHA256 {
			return fmt.Errorf("%s is not the file cachectl placed (its content differs from what was placed); not changed (run plan: it replaces it)", dest)
		}
	}
	return nil
}

// Update gives the managed file name the mode and owner, acting on the
// very file cachectl placed (see openPlaced), and records them.
func (s *Session) Update(name string, mode spec.Mode, uid, gid int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.ix.Lookup(name)
	if !ok {
		return fmt.Errorf("%s is not in the index", s.Root.Abs(name))
	}
	f, err := s.openPlaced(name, e)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := setAttrs(f, mode, uid, gid); err != nil {
		return err
	}
	st, err := fstat(f)
	if err != nil {
		return err
	}
	fs := stateOf(st)
	e.Mode, e.UID, e.GID, e.ModTime, e.Inode, e.Ctime = fs.Mode, fs.UID, fs.GID, fs.ModTime, fs.Inode, fs.Ctime
	return s.writeIndex()
}

// UpdateDir gives a directory cachectl created ("." is the root) the mode
// and owner, acting only on the directory the index recorded.
func (s *Session) UpdateDir(name string, mode spec.Mode, uid, gid int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ix.HasDir(name) {
		return fmt.Errorf("%s is not a directory cachectl created", s.Root.Abs(name))
	}
	d, err := s.Root.OpenDir(name)
	if err != nil {
		return err
	}
	defer d.Close()
	st, err := fstat(d)
	if err != nil {
		return err
	}
	if want, ok := s.ix.DirInodes[name]; ok && st.Ino != want {
		return fmt.Errorf("%s is not the directory cachectl created (inode %d, recorded %d); not changed", s.Root.Abs(name), st.Ino, want)
	}
	if err := setAttrs(d, mode, uid, gid); err != nil {
		return err
	}
	if _, ok := s.ix.DirInodes[name]; !ok {
		s.ix.addDirInode(name, st.Ino)
		return s.writeIndex()
	}
	return nil
}

// Delete removes the managed file name. The file is first moved aside into
// the staging area (one atomic rename through the parent's handle), then
// checked there: only the very file cachectl placed is deleted; anything
// else is moved back and the delete refused. Parents cachectl created that
// are now empty are removed too. A name already gone is forgotten.
func (s *Session) Delete(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.ix.Lookup(name)
	if !ok {
		return nil
	}
	dest := s.Root.Abs(name)
	fs, err := s.Root.Lstat(name)
	if err != nil {
		return err
	}
	if fs.Blocked != "" {
		return &PathError{Op: "delete", Path: fs.Blocked, Err: fs.BlockedBy}
	}
	if fs.Exists {
		if !fs.Regular {
			return fmt.Errorf("%s is no longer the regular file cachectl placed; not deleted (remove it by hand)", dest)
		}
		if err := samePlaced(dest, fs, e, nil); err != nil {
			return err // (the content is checked after the move aside)
		}
		// Unchanged since placed (inode, size, mtime and change time as
		// recorded), or hashed in this run in this very state: the move
		// aside, which moves the change time, need not be followed by
		// hashing the whole file.
		checked := fs.Ctime.Equal(e.Ctime) || e.SHA256 != "" && s.knownSum(name, fs) == e.SHA256
		if err := s.removePlaced(name, e, checked); err != nil {
			return err
		}
	}
	s.ix.Remove(name)
	s.removeEmptyDirs(name)
	return s.writeIndex()
}

// removePlaced moves name aside into the staging area, checks the moved
// file is the one placed, and unlinks it (or moves it back). checked
// says the content at name was known to be the one placed just before
// (the recorded change time, or a hash of this run in that very state):
// then the moved file's inode, size and mtime suffice, else its content
// must match too. (Between that look and the move only someone who may write
// the file, its owner, could change its content; the inode is still the
// one cachectl placed.)
func (s *Session) removePlaced(name string, e *Entry, checked bool) error {
	dest := s.Root.Abs(name)
	if s.staging == nil {
		st, err := s.state.Staging()
		if err != nil {
			return err
		}
		s.staging = st
	}
	parent, leaf, _, err := s.Root.OpenParent(name, false, 0, -1, -1)
	if err != nil {
		return err
	}
	defer parent.Close()
	aside := "delete-" + randomName()
	if err := unix.Renameat2(fd(parent), leaf, fd(s.staging.dir), aside, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("delete %s: %w", dest, err)
	}
	var st unix.Stat_t
	err = unix.Fstatat(fd(s.staging.dir), aside, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
		err = fmt.Errorf("%s was replaced by something that is not a regular file", dest)
	}
	if err == nil {
		moved := stateOf(&st)
		if checked {
			moved.Ctime = e.Ctime // the move's own change, not content's
		}
		err = samePlaced(dest, moved, e, func() (string, error) {
			f, err := openRegularAt(s.staging.dir, aside, dest)
			if err != nil {
				return "", err
			}
			defer f.Close()
			return HashFile(f)
		})
	}
	if err != nil {
		if rerr := unix.Renameat2(fd(s.staging.dir), aside, fd(parent), leaf, unix.RENAME_NOREPLACE); rerr != nil {
			return fmt.Errorf("%w; and moving it back failed (%v): it is in %s/%s/%s", err, rerr, s.state.path, stagingDir, aside)
		}
		return fmt.Errorf("%w; not deleted", err)
	}
	if err := unix.Unlinkat(fd(s.staging.dir), aside, 0); err != nil {
		return fmt.Errorf("delete %s: %w", dest, err)
	}
	return parent.Sync()
}

// removeEmptyDirs removes the parents of name that cachectl created and
// that are now empty, deepest first (never the root itself), and only the
// very directories it recorded.
func (s *Session) removeEmptyDirs(name string) {
	for i := strings.LastIndexByte(name, '/'); i > 0; i = strings.LastIndexByte(name[:i], '/') {
		d := name[:i]
		if !s.ix.HasDir(d) {
			return
		}
		parent, leaf, _, err := s.Root.OpenParent(d, false, 0, -1, -1)
		if err != nil {
			return
		}
		var st unix.Stat_t
		err = unix.Fstatat(fd(parent), leaf, &st, unix.AT_SYMLINK_NOFOLLOW)
		if want, ok := s.ix.DirInodes[d]; err == nil && ok && st.Ino != want {
			err = errors.New("not ours")
		}
		if err == nil {
			err = unix.Unlinkat(fd(parent), leaf, unix.AT_REMOVEDIR)
		}
		parent.Close()
		if err != nil {
			return // not empty, gone, or not the directory cachectl made
		}
		s.ix.RemoveDir(d)
	}
}

// Adopt takes over a file that already sits at its final path (import in
// place): it gives it the mode and owner through its handle, hashes it and
// records e for it. When e.Inode is set, the file must still be that inode
// (the one the caller checked), else nothing is changed. A file with a
// second hard link is refused (ErrHardLinked): the other name is the same
// file, maybe another user's, which the chown and chmod would change too.
func (s *Session) Adopt(name string, e Entry, mode spec.Mode) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.Root.OpenFile(name)
	if err != nil {
		return Entry{}, err
	}
	defer f.Close()
	st, err := fstat(f)
	if err != nil {
		return Entry{}, err
	}
	if e.Inode != 0 && st.Ino != e.Inode {
		return Entry{}, fmt.Errorf("%s was replaced since it was checked (inode %d, checked %d); not adopted", s.Root.Abs(name), st.Ino, e.Inode)
	}
	if st.Nlink != 1 {
		return Entry{}, fmt.Errorf("%s: %w (%d names): the other names are the same file, perhaps another user's, whose owner and mode taking it over would change too; not adopted (copy it to a file of its own and import that)", s.Root.Abs(name), ErrHardLinked, st.Nlink)
	}
	fin, err := finishOpen(f, mode, s.set.UID, s.set.GID)
	if err != nil {
		return Entry{}, err
	}
	e = fin.Entry(e)
	s.ix.Put(e)
	return e, s.writeIndex()
}

// EditIndex locks the root at path (which must exist), lets fn change its
// index and writes it back: for repairs and tests; apply and import go
// through a Session.
func EditIndex(ctx context.Context, path string, rt spec.Runtime, fn func(*Index) error) error {
	r, err := OpenRoot(path)
	if err != nil {
		return err
	}
	defer r.Close()
	s, err := r.OpenState(true)
	if err != nil {
		return err
	}
	defer s.Close()
	l, err := s.Lock(ctx, 0)
	if err != nil {
		return err
	}
	defer l.Release()
	ix, err := s.ReadIndex(rt)
	if err != nil {
		return err
	}
	if err := fn(ix); err != nil {
		return err
	}
	return s.WriteIndex(ix)
}
