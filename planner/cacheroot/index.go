package cacheroot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cachectl/cachectl/spec"
)

// IndexVersion is the on-disk format version of .cachectl/index.json.
const IndexVersion = 1

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
	Mode spec.Mode `json:"mode"`
	UID  int       `json:"uid"`
	GID  int       `json:"gid"`
	// Builder is the format ("sif", "sqsh", "oci-archive") and its version.
	Builder        string `json:"builder"`
	BuilderVersion string `json:"builder_version"`
	// Imported marks a file adopted with `cachectl import`: it has no
	// upstream digest, so refresh does not replace it.
	Imported bool `json:"imported,omitempty"`
	// Placed is when cachectl placed the file.
	Placed time.Time `json:"placed"`
	// Inode identifies the very file cachectl placed (recorded since index
	// entries got it; 0 in older entries): update and delete act only on
	// that file, and another file at the name is drift.
	Inode uint64 `json:"inode,omitempty"`
	// Ctime is the file's change time after cachectl's last change to it.
	// Size, mtime and inode can be made to match by a user who replaced
	// the file (a freed inode number comes back; an owner may set mtime);
	// ctime cannot. When it differs, only the file's content (its sha256)
	// can tell that the file is still the one placed.
	Ctime time.Time `json:"ctime,omitempty"`
	// Adopted is set for a file another tool made that `cachectl adopt`
	// took over in place: what the file told about itself. Such a file is
	// not replaced because cachectl's builder changed.
	Adopted *Adoption `json:"adopted,omitempty"`
}

// Adoption is what `cachectl adopt` found of a file it took over.
type Adoption struct {
	// RefFrom says how the reference was found: "path" (an Apptainer root's
	// <root>/<reference> layout), "definition" (the SIF's definition file
	// or labels), "ref.name" (the OCI archive's annotation), "name" (an
	// Enroot/Podman file name with one reading), "registry" (the one
	// reading of an ambiguous name the registry has), "map" (given).
	RefFrom string `json:"ref_from"`
	// DigestFrom says where the entry's Digest comes from: "file" (an
	// Apptainer SIF's org.opencontainers.image.base.digest label),
	// "registry" (the tag's digest when the file was adopted: the content
	// was not checked against it, "unverified content"), or "" (none). An
	// entry that is Imported is pinned whatever its digest: a moved tag
	// does not replace it.
	DigestFrom string `json:"digest_from,omitempty"`
	// Tool names the program and version that made the file, when the file
	// says so (SIF labels: "apptainer 1.5.3", "singularity 4.5.1").
	Tool string `json:"tool,omitempty"`
	// Definition is a SIF's definition file; Labels its labels
	// (inspect-metadata.json).
	Definition string            `json:"definition,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	// RefName is an OCI archive's org.opencontainers.image.ref.name
	// annotation, ArchiveManifest the manifest digest its index.json lists.
	RefName         string `json:"ref_name,omitempty"`
	ArchiveManifest string `json:"archive_manifest,omitempty"`
	// Mode, UID and GID of the file as found.
	Mode string `json:"mode"`
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
}

// Unverified reports whether the entry's digest was taken from the
// registry at adoption, without checking the file against it.
func (e *Entry) Unverified() bool { return e.Adopted != nil && e.Adopted.DigestFrom == "registry" }

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
	// DirInodes identifies each directory of Dirs as cachectl created it
	// (absent for directories recorded by older versions).
	DirInodes map[string]uint64 `json:"dir_inodes,omitempty"`
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

// setCtime records the change time of hashed (a scan's RootState.
// Rehashed) as that of name's entry, when the entry is still the file
// hashed (inode, size, mtime) and its owner and mode are as placed. It
// reports whether it did.
func (ix *Index) setCtime(name string, hashed FileState) bool {
	e, ok := ix.Lookup(name)
	if !ok || e.Inode != hashed.Inode || e.Size != hashed.Size || !e.ModTime.Equal(hashed.ModTime) || !recordable(hashed, e) || e.Ctime.Equal(hashed.Ctime) {
		return false
	}
	e.Ctime = hashed.Ctime
	return true
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
	delete(ix.DirInodes, name)
}

// addDirInode records a directory cachectl created and its inode.
func (ix *Index) addDirInode(name string, ino uint64) {
	ix.AddDir(name)
	if ix.DirInodes == nil {
		ix.DirInodes = map[string]uint64{}
	}
	ix.DirInodes[name] = ino
}

// SetPending records an artifact about to be renamed into place.
func (ix *Index) SetPending(e Entry) {
	ix.ClearPending(e.Name)
	ix.Pending = append(ix.Pending, e)
}

// ClearPending forgets a pending artifact.
func (ix *Index) ClearPending(name string) {
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

// maxIndexSize bounds the index file cachectl reads (an index of 100k
// artifacts is about 60 MiB).
const maxIndexSize = 256 << 20

// ReadIndex reads the index through the state directory. A missing index
// is an empty one. The index is input to validate, not instructions: every
// name and directory in it must pass the spec's naming rules
// (spec.CheckName) for the cache's runtime, and an error never quotes the
// file's content.
func (s *StateDir) ReadIndex(rt spec.Runtime) (*Index, error) {
	f, err := s.openFile(indexFile, unix.O_RDONLY, true)
	if err != nil {
		if isMissing(err) {
			return &Index{Version: IndexVersion}, nil
		}
		return nil, fmt.Errorf("read index: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxIndexSize+1))
	if err != nil {
		return nil, fmt.Errorf("read index %s: %w", f.Name(), err)
	}
	if len(b) > maxIndexSize {
		return nil, fmt.Errorf("index %s is larger than %d MiB; it cannot be cachectl's (move it away to start over)", f.Name(), maxIndexSize>>20)
	}
	return parseIndex(b, f.Name(), rt)
}

// parseIndex decodes and validates an index file's content.
func parseIndex(b []byte, path string, rt spec.Runtime) (*Index, error) {
	var ix Index
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("index %s is corrupt (%s); move it away to start over (files then show as unmanaged)", path, JSONProblem(err))
	}
	if ix.Version != IndexVersion {
		return nil, fmt.Errorf("index %s has format version %d; this cachectl reads version %d", path, ix.Version, IndexVersion)
	}
	bad := func(what string, i int, err error) error {
		return fmt.Errorf("index %s is corrupt: %s %d has an invalid name: %v; move it away to start over (files then show as unmanaged)", path, what, i+1, err)
	}
	for i, e := range ix.Entries {
		if err := spec.CheckName(rt, e.Name); err != nil {
			return nil, bad("entry", i, err)
		}
	}
	for i, e := range ix.Pending {
		if err := spec.CheckName(rt, e.Name); err != nil {
			return nil, bad("pending entry", i, err)
		}
	}
	for i, d := range ix.Dirs {
		if d == "." {
			continue
		}
		if err := spec.CheckName(spec.RuntimeApptainer, d); err != nil {
			return nil, bad("directory", i, err)
		}
	}
	for d := range ix.DirInodes {
		if !ix.HasDirSorted(d) {
			delete(ix.DirInodes, d)
		}
	}
	sort.Slice(ix.Entries, func(i, j int) bool { return ix.Entries[i].Name < ix.Entries[j].Name })
	sort.Strings(ix.Dirs)
	return &ix, nil
}

// HasDirSorted is HasDir for a Dirs list that may not be sorted yet.
func (ix *Index) HasDirSorted(name string) bool {
	for _, d := range ix.Dirs {
		if d == name {
			return true
		}
	}
	return false
}

// JSONProblem describes a JSON decoding error by position and kind,
// without quoting the content (index and plan files are input, and an
// error message must not echo what they hold).
func JSONProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("not valid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type at byte %d", te.Field, te.Offset)
	}
	return "not the expected JSON document"
}

// WriteIndex writes the index atomically through the state directory.
func (s *StateDir) WriteIndex(ix *Index) error {
	ix.Version = IndexVersion
	b, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	return s.writeFileAtomic(indexFile, append(b, '\n'))
}

// ReadIndexAt reads the index of the cache root at path, read-only (for
// gc, targets and reports). A missing root or state directory is an empty
// index.
func ReadIndexAt(path string, rt spec.Runtime) (*Index, error) {
	r, err := OpenRoot(path)
	if err != nil {
		if isMissing(err) {
			return &Index{Version: IndexVersion}, nil
		}
		return nil, err
	}
	defer r.Close()
	s, err := r.OpenState(false)
	if err != nil {
		if isMissing(err) {
			return &Index{Version: IndexVersion}, nil
		}
		return nil, err
	}
	defer s.Close()
	return s.ReadIndex(rt)
}
