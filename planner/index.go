package planner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/cachectl/cachectl/spec"
)

// IndexVersion is the on-disk format version of .cachectl/index.json.
const IndexVersion = 1

// Paths inside a cache root's hidden directory.
const (
	indexFile  = "index.json"
	lockFile   = "lock"
	stagingDir = "staging"
)

// Entry records one artifact cachectl placed in a cache root.
type Entry struct {
	// Name is the path relative to the root, slash separated.
	Name string `json:"name"`
	// Ref is the reference as written in the spec (or given to import).
	Ref string `json:"ref"`
	// Digest is what the reference pointed at when it was pulled (an index
	// or a manifest); empty for imported files.
	Digest string `json:"digest,omitempty"`
	// Manifest is the platform-specific image manifest that was built.
	Manifest string `json:"manifest,omitempty"`
	// Platform is os/arch[/variant].
	Platform string `json:"platform,omitempty"`
	// Size and SHA256 of the file as placed.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// ModTime of the file as placed, for cheap change detection.
	ModTime time.Time `json:"mtime"`
	// Mode, UID and GID as placed.
	Mode string `json:"mode"`
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
	// Builder is the format ("sif", "sqsh", "oci-archive") and its version.
	Builder        string `json:"builder"`
	BuilderVersion string `json:"builder_version"`
	// Imported marks a file adopted with `cachectl import`: it has no
	// upstream digest, so refresh does not replace it.
	Imported bool `json:"imported,omitempty"`
	// Placed is when cachectl placed the file.
	Placed time.Time `json:"placed"`
}

// Index is the content of <root>/.cachectl/index.json.
type Index struct {
	Version int    `json:"version"`
	Cache   string `json:"cache,omitempty"`
	Runtime string `json:"runtime,omitempty"`
	// Entries sorted by Name.
	Entries []Entry `json:"entries"`
	// Dirs lists the directories cachectl created ("." for the root
	// itself), sorted: their mode and owner are desired state, and they are
	// removed when a prune leaves them empty.
	Dirs []string `json:"dirs,omitempty"`
	// Pending holds artifacts whose rename into place may have happened
	// without the index recording it (a crash between the two). The next
	// scan promotes a pending entry whose file matches it, drops it otherwise.
	Pending []Entry `json:"pending,omitempty"`
}

// Lookup returns the entry for a relative name.
func (ix *Index) Lookup(name string) (*Entry, bool) {
	i := sort.Search(len(ix.Entries), func(i int) bool { return ix.Entries[i].Name >= name })
	if i < len(ix.Entries) && ix.Entries[i].Name == name {
		return &ix.Entries[i], true
	}
	return nil, false
}

// Put inserts or replaces an entry, keeping Entries sorted.
func (ix *Index) Put(e Entry) {
	i := sort.Search(len(ix.Entries), func(i int) bool { return ix.Entries[i].Name >= e.Name })
	if i < len(ix.Entries) && ix.Entries[i].Name == e.Name {
		ix.Entries[i] = e
		return
	}
	ix.Entries = append(ix.Entries, Entry{})
	copy(ix.Entries[i+1:], ix.Entries[i:])
	ix.Entries[i] = e
}

// Remove deletes the entry for name, if any.
func (ix *Index) Remove(name string) {
	i := sort.Search(len(ix.Entries), func(i int) bool { return ix.Entries[i].Name >= name })
	if i < len(ix.Entries) && ix.Entries[i].Name == name {
		ix.Entries = append(ix.Entries[:i], ix.Entries[i+1:]...)
	}
}

// AddDir records a directory cachectl created.
func (ix *Index) AddDir(name string) {
	i := sort.SearchStrings(ix.Dirs, name)
	if i < len(ix.Dirs) && ix.Dirs[i] == name {
		return
	}
	ix.Dirs = append(ix.Dirs, "")
	copy(ix.Dirs[i+1:], ix.Dirs[i:])
	ix.Dirs[i] = name
}

// HasDir reports whether cachectl created the directory.
func (ix *Index) HasDir(name string) bool {
	i := sort.SearchStrings(ix.Dirs, name)
	return i < len(ix.Dirs) && ix.Dirs[i] == name
}

// RemoveDir forgets a directory.
func (ix *Index) RemoveDir(name string) {
	i := sort.SearchStrings(ix.Dirs, name)
	if i < len(ix.Dirs) && ix.Dirs[i] == name {
		ix.Dirs = append(ix.Dirs[:i], ix.Dirs[i+1:]...)
	}
}

func (ix *Index) setPending(e Entry) {
	ix.clearPending(e.Name)
	ix.Pending = append(ix.Pending, e)
}

func (ix *Index) clearPending(name string) {
	out := ix.Pending[:0]
	for _, p := range ix.Pending {
		if p.Name != name {
			out = append(out, p)
		}
	}
	ix.Pending = out
	if len(ix.Pending) == 0 {
		ix.Pending = nil
	}
}

// MetaDir returns the hidden cachectl directory of a root.
func MetaDir(root string) string { return filepath.Join(root, spec.IndexDir) }

// IndexPath returns the path of a root's index file.
func IndexPath(root string) string { return filepath.Join(MetaDir(root), indexFile) }

// ReadIndex reads a root's index. A missing index (or root) is an empty index.
func ReadIndex(root string) (*Index, error) {
	b, err := os.ReadFile(IndexPath(root))
	if errors.Is(err, fs.ErrNotExist) {
		return &Index{Version: IndexVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	var ix Index
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("index %s is corrupt: %w (move it away to start over; files then show as unmanaged)", IndexPath(root), err)
	}
	if ix.Version != IndexVersion {
		return nil, fmt.Errorf("index %s has format version %d; this cachectl reads version %d", IndexPath(root), ix.Version, IndexVersion)
	}
	sort.Slice(ix.Entries, func(i, j int) bool { return ix.Entries[i].Name < ix.Entries[j].Name })
	sort.Strings(ix.Dirs)
	return &ix, nil
}

// WriteIndex writes a root's index atomically: temp file, fsync, rename,
// fsync of the directory.
func WriteIndex(root string, ix *Index) error {
	ix.Version = IndexVersion
	b, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if err := os.MkdirAll(MetaDir(root), 0o755); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return WriteFileAtomic(IndexPath(root), b, 0o644)
}

// WriteFileAtomic writes data to path via a temporary file in the same
// directory (fsync, rename, fsync of the directory): readers see the old
// file or the new one, never half of one.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
