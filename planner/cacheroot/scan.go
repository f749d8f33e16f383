package cacheroot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cachectl/cachectl/spec"
)

// UnmanagedFile is a file under a root that the index does not know.
type UnmanagedFile struct {
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
}

// RootState is the actual state of one cache root.
type RootState struct {
	Root string
	// Exists is false when the root directory does not exist yet.
	Exists bool
	Index  *Index
	// Files holds the state of every indexed artifact's file, by Name.
	Files map[string]FileState
	// Dirs holds the state of the directories cachectl created, by name.
	Dirs map[string]FileState
	// Occupied holds the state of each of ScanOptions.Names that the index
	// does not hold (Exists false when nothing is there).
	Occupied map[string]FileState
	// Unmanaged lists files cachectl did not place, sorted by name.
	Unmanaged []UnmanagedFile
	// Fingerprint summarises the index and the managed files' stat data;
	// a saved plan records it and apply refuses the plan when it changed.
	Fingerprint string
	// Rehashed holds, by name, the state (from fstat of the descriptor
	// hashed, before reading; its hash in SHA256) of each managed file
	// whose change time alone had moved (a chmod, chmod -R or chown -R to
	// the same values, a backup tool's touch of xattrs) and whose content,
	// hashed for that reason, is still what was placed. A session keeps
	// them for the rest of its run (ScanOptions.Known, Update, Delete) and
	// records in the index the change times of those whose owner and mode
	// are also as placed (RecordChangeTimes), so that later scans need not
	// hash them again; the fingerprint leaves change times out, so a saved
	// plan stays valid.
	Rehashed map[string]FileState
}

// racyWindow is how old a change time must be, when the file is opened
// for hashing, to be recorded after a rehash. A write within the same
// clock tick as the change time seen, after the hash read that part of
// the file, would leave the change time as it was (timestamps have a tick
// of up to 10 ms on local file systems, up to a second on some network
// ones): such a "racily clean" file, as git calls it, is hashed again by
// a later scan instead.
const racyWindow = 2 * time.Second

// ScanOptions tune Scan.
type ScanOptions struct {
	// Runtime of the cache: names in the index are checked by its rules.
	Runtime spec.Runtime
	// Verify re-hashes every managed file (slow: reads every byte).
	Verify bool
	// SkipUnmanaged skips the walk that finds unmanaged files.
	SkipUnmanaged bool
	// Owner is the cache's owner (its uid; -1 for none): directories below
	// the root may belong to it (see Root.Trust).
	Owner int
	// Names the spec wants in the root: those the index does not hold are
	// looked at too (RootState.Occupied), so that the diff needs no file
	// system access of its own.
	Names []string
	// Known holds files hashed earlier in this run (a RootState.Rehashed):
	// one still in exactly that state (inode, size, mtime, change time) is
	// not hashed again.
	Known map[string]FileState
}

// Scan reads the index of the root at path and stats its files, read-only
// and without following any symlink below the root.
func Scan(rootPath string, opts ScanOptions) (*RootState, error) {
	r, err := OpenRoot(rootPath)
	if err != nil {
		if isMissing(err) {
			st := &RootState{Root: rootPath, Index: &Index{Version: IndexVersion}}
			st.Occupied = map[string]FileState{}
			st.Fingerprint = fingerprint(st)
			return st, nil
		}
		return nil, fmt.Errorf("scan %s: %w", rootPath, err)
	}
	defer r.Close()
	r.Trust(opts.Owner)
	s, err := r.OpenState(false)
	if err != nil && !isMissing(err) {
		return nil, err
	}
	defer s.Close()
	return r.Scan(s, opts)
}

// Scan reads the index through s (nil: no state directory yet, an empty
// index) and stats the root's files.
func (r *Root) Scan(s *StateDir, opts ScanOptions) (*RootState, error) {
	st := &RootState{Root: r.path, Exists: true, Files: map[string]FileState{}, Dirs: map[string]FileState{}, Occupied: map[string]FileState{}}
	ix := &Index{Version: IndexVersion}
	if s != nil {
		var err error
		if ix, err = s.ReadIndex(opts.Runtime); err != nil {
			return nil, err
		}
	}
	st.Index = ix
	r.resolvePending(ix)
	for _, e := range ix.Entries {
		fs, err := r.stat(e.Name, opts.Verify)
		if err == nil && fs.SHA256 == "" && changedOnlyCtime(fs, &e) {
			// Only the content can tell whether this is still the file
			// placed (see Entry.Ctime): hash it.
			if k, ok := opts.Known[e.Name]; ok && sameState(k, fs) {
				fs.SHA256 = k.SHA256 // hashed earlier in this run, unchanged since
			} else {
				var hashed FileState
				opened := time.Now()
				if fs, hashed, err = r.statHashed(e.Name); err == nil && verified(hashed, &e, opened) {
					if st.Rehashed == nil {
						st.Rehashed = map[string]FileState{}
					}
					st.Rehashed[e.Name] = hashed
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", r.path, err)
		}
		st.Files[e.Name] = fs
	}
	for _, d := range ix.Dirs {
		fs, err := r.Lstat(d)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", r.path, err)
		}
		st.Dirs[d] = fs
	}
	for _, n := range opts.Names {
		if _, ok := ix.Lookup(n); ok {
			continue
		}
		fs, err := r.Lstat(n)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", r.path, err)
		}
		st.Occupied[n] = fs
	}
	if !opts.SkipUnmanaged {
		if err := r.findUnmanaged(st); err != nil {
			return nil, fmt.Errorf("scan %s: %w", r.path, err)
		}
	}
	st.Fingerprint = fingerprint(st)
	return st, nil
}

// Intact reports whether fs, a file's state from Scan, is still the file
// that e records as placed: a regular file with e's inode, size and mtime,
// and e's content wherever Scan hashed it (it does when only the change
// time moved, and for every file with ScanOptions.Verify).
func Intact(fs FileState, e *Entry) bool {
	return fs.Exists && fs.Regular && (e.Inode == 0 || fs.Inode == e.Inode) &&
		fs.Size == e.Size && fs.ModTime.Equal(e.ModTime) && (fs.SHA256 == "" || fs.SHA256 == e.SHA256)
}

// verified reports whether hashed, the state of a file hashed because
// only its change time had moved, may stand for its content later on: the
// content is still what was placed, and the change time is older than
// racyWindow at opened (before the file was opened).
func verified(hashed FileState, e *Entry, opened time.Time) bool {
	return hashed.SHA256 == e.SHA256 && changedOnlyCtime(hashed, e) && opened.Sub(hashed.Ctime) >= racyWindow
}

// recordable reports whether a verified state's change time may be
// recorded in the index: the owner and mode are also those placed (a file
// chmodded away from them is fixed by apply, which records the change).
func recordable(hashed FileState, e *Entry) bool {
	return hashed.Mode == e.Mode && hashed.UID == e.UID && hashed.GID == e.GID
}

// sameState reports whether a and b are the same file unchanged: inode,
// device, size, mtime and change time.
func sameState(a, b FileState) bool {
	return a.Inode == b.Inode && a.Dev == b.Dev && a.Size == b.Size && a.ModTime.Equal(b.ModTime) && a.Ctime.Equal(b.Ctime)
}

// changedOnlyCtime reports whether a placed file still has its recorded
// inode, size and mtime but another change time.
func changedOnlyCtime(fs FileState, e *Entry) bool {
	return fs.Regular && !e.Ctime.IsZero() && !fs.Ctime.Equal(e.Ctime) &&
		(e.Inode == 0 || fs.Inode == e.Inode) && fs.Size == e.Size && fs.ModTime.Equal(e.ModTime)
}

// stat is Lstat plus, with verify, the content hash of a regular file.
func (r *Root) stat(name string, verify bool) (FileState, error) {
	if !verify {
		return r.Lstat(name)
	}
	fs, _, err := r.statHashed(name)
	return fs, err
}

// statHashed is Lstat plus the content hash of a regular file, and the
// state of the file hashed (with its hash), taken on its open descriptor
// before reading: a change while it is read moves the change time past
// hashed.Ctime. When another file took the name between the Lstat and the
// open (entries swapped in a loop), fs is the state of the file hashed:
// a regular file's state from statHashed always carries its hash, which
// is what tells Intact and the diff that the content was checked.
func (r *Root) statHashed(name string) (fs, hashed FileState, err error) {
	fs, err = r.Lstat(name)
	if err != nil || !fs.Regular {
		return fs, FileState{}, err
	}
	sum, hashed, err := r.hash(name)
	if err != nil {
		return FileState{}, FileState{}, err
	}
	hashed.SHA256 = sum
	if hashed.Inode != fs.Inode || hashed.Dev != fs.Dev {
		return hashed, hashed, nil
	}
	fs.SHA256 = sum
	return fs, hashed, nil
}

// Hash returns the sha256 ("sha256:HEX") of a regular file below the root
// and the inode it read.
func (r *Root) Hash(name string) (string, uint64, error) {
	sum, fs, err := r.hash(name)
	return sum, fs.Inode, err
}

// hash returns the sha256 of a regular file below the root and its state
// from fstat before reading.
func (r *Root) hash(name string) (string, FileState, error) {
	f, err := r.OpenFile(name)
	if err != nil {
		return "", FileState{}, err
	}
	defer f.Close()
	st, err := fstat(f)
	if err != nil {
		return "", FileState{}, err
	}
	sum, err := hashReader(f)
	if err != nil {
		return "", FileState{}, fmt.Errorf("hash %s: %w", r.Abs(name), err)
	}
	return sum, stateOf(st), nil
}

func hashReader(rd io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, rd); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// resolvePending promotes pending entries whose file is in place (the
// rename happened, the index update did not) and drops the others. It
// changes only the index in memory.
func (r *Root) resolvePending(ix *Index) {
	for _, p := range ix.Pending {
		fs, err := r.Lstat(p.Name)
		if err != nil || !fs.Regular || fs.Size != p.Size || (p.Inode != 0 && fs.Inode != p.Inode) {
			continue
		}
		if sum, ino, err := r.Hash(p.Name); err == nil && sum == p.SHA256 && ino == fs.Inode {
			p.ModTime, p.Inode = fs.ModTime, fs.Inode
			ix.Put(p)
		}
	}
	ix.Pending = nil
}

// findUnmanaged walks the root through directory handles (never following
// a symlink; unreadable subtrees are skipped) and lists the files the
// index does not know.
func (r *Root) findUnmanaged(st *RootState) error {
	d, err := r.dupRoot()
	if err != nil {
		return err
	}
	if err := walkDir(d, "", st); err != nil {
		return err
	}
	sort.Slice(st.Unmanaged, func(i, j int) bool { return st.Unmanaged[i].Name < st.Unmanaged[j].Name })
	return nil
}

// walkDir lists dir (closing it) and recurses into its subdirectories.
func walkDir(dir *os.File, rel string, st *RootState) error {
	names, err := dir.Readdirnames(-1)
	if err != nil {
		dir.Close()
		if rel == "" {
			return err
		}
		return nil // unreadable subtrees are not ours to judge
	}
	sort.Strings(names)
	var subdirs []string
	for _, n := range names {
		name := n
		if rel != "" {
			name = path.Join(rel, n)
		} else if n == spec.IndexDir {
			continue
		}
		var s unix.Stat_t
		if unix.Fstatat(fd(dir), n, &s, unix.AT_SYMLINK_NOFOLLOW) != nil {
			continue
		}
		if s.Mode&unix.S_IFMT == unix.S_IFDIR {
			subdirs = append(subdirs, n)
			continue
		}
		if _, ok := st.Index.Lookup(name); ok {
			continue
		}
		st.Unmanaged = append(st.Unmanaged, UnmanagedFile{Name: name, Size: s.Size, ModTime: time.Unix(s.Mtim.Unix())})
	}
	for _, n := range subdirs {
		sub, err := openDirAt(dir, n, path.Join(dir.Name(), n))
		if err != nil {
			continue // replaced meanwhile, or unreadable
		}
		if err := walkDir(sub, path.Join(rel, n), st); err != nil {
			dir.Close()
			return err
		}
	}
	return dir.Close()
}

// IsUnmanaged reports whether name is an unmanaged file of the root.
func (st *RootState) IsUnmanaged(name string) bool {
	i := sort.Search(len(st.Unmanaged), func(i int) bool { return st.Unmanaged[i].Name >= name })
	return i < len(st.Unmanaged) && st.Unmanaged[i].Name == name
}

func fingerprint(st *RootState) string {
	h := sha256.New()
	for _, e := range st.Index.Entries {
		f := st.Files[e.Name]
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%d\x00%s\x00%d:%d\x00%s\x00%d|%v %d %d %s %d:%d %d %s\n",
			e.Name, e.Ref, e.Digest, e.Manifest, e.Size, e.Mode, e.UID, e.GID, e.BuilderVersion, e.Inode,
			f.Exists, f.Size, f.ModTime.UnixNano(), f.Mode, f.UID, f.GID, f.Inode, f.Blocked)
	}
	for _, d := range st.Index.Dirs {
		f := st.Dirs[d]
		fmt.Fprintf(h, "dir %s %d|%v %s %d:%d %d %s\n", d, st.Index.DirInodes[d], f.Exists, f.Mode, f.UID, f.GID, f.Inode, f.Blocked)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
