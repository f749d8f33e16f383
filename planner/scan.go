package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cachectl/cachectl/spec"
)

// FileState is what a stat (and, with verification, a hash) of a file shows.
type FileState struct {
	Exists  bool
	Regular bool
	Size    int64
	ModTime time.Time
	Mode    spec.Mode
	UID     int
	GID     int
	// SHA256 is set only when the scan verified content.
	SHA256 string
}

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
	// Unmanaged lists files cachectl did not place, sorted by name.
	Unmanaged []UnmanagedFile
	// Fingerprint summarises the index and the managed files' stat data;
	// a saved plan records it and apply refuses the plan when it changed.
	Fingerprint string
}

// ScanOptions tune Scan.
type ScanOptions struct {
	// Verify re-hashes every managed file (slow: reads every byte).
	Verify bool
	// SkipUnmanaged skips the walk that finds unmanaged files.
	SkipUnmanaged bool
}

// Scan reads a root's index and stats its files. It never writes.
func Scan(root string, opts ScanOptions) (*RootState, error) {
	st := &RootState{Root: root, Files: map[string]FileState{}, Dirs: map[string]FileState{}}
	fi, err := os.Stat(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st.Index = &Index{Version: IndexVersion}
		st.Fingerprint = fingerprint(st)
		return st, nil
	case err != nil:
		return nil, fmt.Errorf("scan %s: %w", root, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("scan %s: the cache root exists and is not a directory", root)
	}
	st.Exists = true
	ix, err := ReadIndex(root)
	if err != nil {
		return nil, err
	}
	st.Index = ix
	resolvePending(root, ix)
	for _, e := range ix.Entries {
		fs, err := statFile(filepath.Join(root, filepath.FromSlash(e.Name)), opts.Verify)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", root, err)
		}
		st.Files[e.Name] = fs
	}
	for _, d := range ix.Dirs {
		fs, err := statFile(filepath.Join(root, filepath.FromSlash(d)), false)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", root, err)
		}
		st.Dirs[d] = fs
	}
	if !opts.SkipUnmanaged {
		if err := st.findUnmanaged(); err != nil {
			return nil, err
		}
	}
	st.Fingerprint = fingerprint(st)
	return st, nil
}

// resolvePending promotes pending entries whose file is in place (the
// rename happened, the index update did not) and drops the others.
func resolvePending(root string, ix *Index) {
	for _, p := range ix.Pending {
		path := filepath.Join(root, filepath.FromSlash(p.Name))
		fs, err := statFile(path, false)
		if err != nil || !fs.Regular || fs.Size != p.Size {
			continue
		}
		if sum, err := hashFile(path); err == nil && sum == p.SHA256 {
			p.ModTime = fs.ModTime
			ix.Put(p)
		}
	}
	ix.Pending = nil
}

func (st *RootState) findUnmanaged() error {
	err := filepath.WalkDir(st.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == st.Root {
				return err
			}
			return nil // unreadable subtrees are not ours to judge
		}
		if p == st.Root {
			return nil
		}
		rel, _ := filepath.Rel(st.Root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == spec.IndexDir {
				return filepath.SkipDir
			}
			return nil
		}
		if _, ok := st.Index.Lookup(rel); ok {
			return nil
		}
		u := UnmanagedFile{Name: rel}
		if info, err := d.Info(); err == nil {
			u.Size, u.ModTime = info.Size(), info.ModTime()
		}
		st.Unmanaged = append(st.Unmanaged, u)
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan %s: %w", st.Root, err)
	}
	sort.Slice(st.Unmanaged, func(i, j int) bool { return st.Unmanaged[i].Name < st.Unmanaged[j].Name })
	return nil
}

// IsUnmanaged reports whether name is an unmanaged file of the root.
func (st *RootState) IsUnmanaged(name string) bool {
	i := sort.Search(len(st.Unmanaged), func(i int) bool { return st.Unmanaged[i].Name >= name })
	return i < len(st.Unmanaged) && st.Unmanaged[i].Name == name
}

// statFile lstats path (never following a symlink).
func statFile(path string, verify bool) (FileState, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return FileState{}, nil
	}
	if err != nil {
		return FileState{}, err
	}
	s := FileState{Exists: true, Regular: fi.Mode().IsRegular(), Size: fi.Size(), ModTime: fi.ModTime(), Mode: spec.ModeOf(fi.Mode())}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.UID, s.GID = int(sys.Uid), int(sys.Gid)
	}
	if verify && s.Regular {
		sum, err := hashFile(path)
		if err != nil {
			return FileState{}, err
		}
		s.SHA256 = sum
	}
	return s, nil
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func fingerprint(st *RootState) string {
	h := sha256.New()
	for _, e := range st.Index.Entries {
		f := st.Files[e.Name]
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%d\x00%s\x00%d:%d\x00%s|%v %d %d %s %d:%d\n",
			e.Name, e.Ref, e.Digest, e.Manifest, e.Size, e.Mode, e.UID, e.GID, e.BuilderVersion,
			f.Exists, f.Size, f.ModTime.UnixNano(), f.Mode, f.UID, f.GID)
	}
	for _, d := range st.Index.Dirs {
		f := st.Dirs[d]
		fmt.Fprintf(h, "dir %s|%v %s %d:%d\n", d, f.Exists, f.Mode, f.UID, f.GID)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:32]
}

// relName converts an absolute path under root into a slash-separated name.
func relName(root, path string) string {
	r, _ := filepath.Rel(root, path)
	return strings.TrimPrefix(filepath.ToSlash(r), "./")
}
