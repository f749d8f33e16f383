// Package rootfs flattens the layers of an OCI or Docker image into one root
// file system and streams it as a single tar archive, the input of
// `mksquashfs - OUT -tar` for the SIF and enroot builders.
//
// There are two ways through the layers. Flatten reads every layer's tar
// headers (oldest layer first) and computes the resulting tree, kept in
// memory without file contents; Tree.WriteTar then reads the layers again
// and copies the content of each regular file from the one layer entry
// that won its path. Stream (what the builders use) reads each layer once,
// newest first, as the layers arrive (a layer still downloading is read as
// it downloads): a regular file that no newer layer replaces or removes is
// final the moment its member is read, so it goes to mksquashfs then, with
// its content; what depends on the whole tree (directories, links, the
// builders' own files) is written once the last layer is read. Several
// builds of one image share one Stream (Shared).
//
// Both compute the tree the same way, in two phases: every member of every
// layer is first recorded on the path it names (index.go, flatten.go), then
// the layers are replayed in order on those paths with the rules below
// (replay.go), so the rules have one implementation.
//
// # Semantics
//
//   - Layers apply oldest to newest. Inside a layer, entries apply in archive
//     order and a later entry replaces an earlier one at the same path
//     (file ↔ directory ↔ symlink; a directory replaced by anything else loses
//     its subtree). A directory entry over an existing directory only updates
//     its metadata.
//   - Whiteouts (`.wh.NAME`, `.wh..wh..opq`) apply to lower-layer content
//     only, as the OCI image spec says: they take effect at the end of their
//     layer, and what the same layer added under the whited-out path stays.
//   - A hard link entry names the inode of its target at the moment it is
//     read. If the target path is later replaced or whited out, the link keeps
//     the old content: in the output, every inode is written once, as a
//     regular file at its first path, and its other paths are hard links to
//     that path, written after it.
//   - Missing parent directories are created 0755 root:root with mtime 0
//     (TarOptions.ImplicitDirMode gives them another mode in the output).
//   - The root entry ("./") of a layer updates the root's metadata like a
//     directory over a directory (Tree.Root); the SIF builders hand its
//     mode to mksquashfs (-root-mode), as their runtimes keep it.
//
// # Safety
//
// Nothing is ever written or looked up outside the tree: the tree is
// memory, and a path is only ever resolved inside it. Member names and
// hard-link targets lose leading "/" and "./" (as tar does) and are
// rejected when a component is "..". A whiteout for "", "." or ".."
// (`.wh.`, `.wh..`, `.wh...`) is rejected (Debian's umoci 0.4.7 deletes the
// parent of its rootfs on it). A hard link whose target does not exist (at
// that moment) or is a directory is rejected. A member, whiteout, opaque
// marker or hard-link target whose parent path goes through a symlink (a
// layer writing lib/x over a lower layer's lib -> usr/lib) is placed where
// the symlink leads inside the tree, as umoci (Apptainer 1.5.3,
// SingularityCE 4.5.1), containerd, Docker and podman apply layers: an
// absolute target starts at the tree's root, ".." stops at it, at most 40
// links are followed, and missing directories on the way (a dangling
// link's target too) are created. The member's own name is never
// followed. A member below a non-directory, or a symlink loop, is
// rejected. Symlink targets are kept verbatim, absolute or not. All such
// rejections wrap ErrUnsafe.
//
// AUFS metadata (names starting with `.wh..wh.` other than the opaque
// marker, and everything below such a directory) is skipped.
// Sparse files (GNU or PAX sparse) are regular files with their holes as
// zeros, as the runtimes extract them; one larger than MaxSparseSize is
// rejected, since its logical size is not bounded by the layer's. Other
// entry types than the seven of Entry.Type are rejected.
//
// # Memory
//
// The tree keeps about 110 bytes of heap per path and no content, in arrays
// without pointers (index.go), so the garbage collector has nothing to scan
// there; while the layers are read, each member costs another 16 bytes
// until the replay. WriteTar adds 8 bytes per regular file to copy, Stream
// 12 per file written early; both up to 16 MiB of read-ahead.
// BENCHMARKS.md has the measured figures (peak RSS of a whole apply at
// 250,000 and 500,000 files).
//
// # Speed
//
// Inflating the layers is almost all of the work, done once per pass (once
// in all for Stream). gzip layers are inflated with
// github.com/klauspost/compress (about twice as fast as compress/gzip);
// other layers use the layer's own Uncompressed. Flatten decodes the
// headers of the next layer while it indexes the current one, and WriteTar
// and Stream inflate the layers they read in goroutines, the next one while
// the current one is written, so that a second core is used.
package rootfs

import (
	"archive/tar"
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Entry is one path of a root file system.
type Entry struct {
	// Path is clean, relative, without a leading "/" ("etc/rc"); never "" or ".".
	Path string
	// Type is tar.TypeReg, TypeDir, TypeSymlink, TypeLink, TypeChar, TypeBlock or TypeFifo.
	Type byte
	// Mode holds the permission bits plus setuid, setgid and sticky (07777).
	Mode     int64
	Uid, Gid int
	// Linkname is the symlink target (verbatim), or the hard-link target path
	// (relative, clean).
	Linkname string
	ModTime  time.Time
	// Size of a regular file's content.
	Size int64
	// Content of a regular file given in TarOptions.Extra; never set by Entries.
	Content []byte
	// Devmajor and Devminor of a device node.
	Devmajor, Devminor int64
	// Xattrs are extended attributes (e.g. "security.capability"), taken from
	// the layers' SCHILY.xattr.* PAX records; nil when there are none.
	Xattrs map[string]string
}

// Options tune Flatten. The zero value uses the documented defaults.
type Options struct {
	// MaxLayers bounds the number of layers; 0 means 1024.
	MaxLayers int
	// MaxEntries bounds the number of paths in the tree at any time, and
	// twice it the paths the layers' members name in all, which bounds
	// the memory (about 130 bytes per path); 0 means 10,000,000.
	MaxEntries int
}

const (
	defaultMaxLayers  = 1024
	defaultMaxEntries = 10_000_000
)

// TarOptions tune Tree.WriteTar. The zero value writes the flattened tree as is.
type TarOptions struct {
	// Extra entries are added after flattening, in order, replacing the same
	// paths (a directory over a directory only replaces its metadata; anything
	// else replaces the whole subtree). Missing parent directories are created
	// 0755 root:root. A regular file's bytes are in Content (Size is ignored);
	// a hard link (TypeLink) names an existing non-directory path of the
	// result. A parent path that is not a directory is an error wrapping
	// ErrExtraParent; a parent that is a symlink too, unless ParentSymlinks
	// says to resolve it.
	Extra []Entry
	// ParentSymlinks says how an Extra entry is placed when a directory on
	// its path is a symlink in the image (e.g. etc -> usr/etc). The zero
	// value refuses.
	ParentSymlinks ParentSymlinks
	// ImplicitDirMode, when not 0, is the mode of the directories that no
	// layer entry created, only implied as parents of other entries
	// (Apptainer 1.5.3 and SingularityCE 4.5.1 extract layers with umask
	// 0002 and make them 0775). 0 writes them 0755.
	ImplicitDirMode int64
	// EmptyDirs are directories kept but emptied (enroot: "dev"). They are
	// applied before Extra. A missing path, or one that is not a directory,
	// becomes an empty directory 0755 root:root.
	EmptyDirs []string
	// DropDevices omits character and block devices and FIFOs.
	DropDevices bool
	// AllRoot writes uid and gid 0 for every entry.
	AllRoot bool
	// IfMissing are directories and symlinks (Type TypeDir or TypeSymlink)
	// added only when their path is absent from the result (after
	// EmptyDirs, Extra and DropDevices), like `mkdir -p` and "symlink unless
	// it exists". Missing parent directories are created 0755 root:root
	// with the entry's ModTime. An entry is skipped when its path exists (as
	// anything) or when one of its parents is not a directory (a symlink is
	// never followed).
	IfMissing []Entry
	// EditHeader, when set, is called with the tar header of every entry
	// just before it is written (after AllRoot). It may change metadata
	// (Mode, Uid, Gid, Uname, Gname, ModTime, PAXRecords) but not Name,
	// Typeflag, Size or Linkname. It saves a consumer that only adjusts
	// metadata (enroot's permission fix) a decode and re-encode of the
	// whole stream.
	EditHeader func(h *tar.Header)
}

// ErrUnsafe is wrapped by every error that rejects a member because it would
// write or reference something outside the tree or through a symlink.
var ErrUnsafe = errors.New("unsafe layer member")

// ErrExtraParent is wrapped by the errors of TarOptions entries (the files
// a builder adds, not the image's) whose parent path in the image is a
// symlink that is not resolved, a dangling symlink, or not a directory.
var ErrExtraParent = errors.New("cannot write below the image's path")

// ParentSymlinks selects how TarOptions.Extra entries are written below a
// directory that the image made a symlink.
type ParentSymlinks int

const (
	// RefuseParentSymlinks fails with ErrExtraParent.
	RefuseParentSymlinks ParentSymlinks = iota
	// ResolveParentSymlinks resolves the parent path inside the tree as the
	// kernel would with the tree as the root directory (chroot): an
	// absolute target starts at the tree's root, ".." stops at the root, at
	// most 40 links are followed; the entry lands at the resolved path.
	// This is what Apptainer 1.5.3 and SingularityCE 4.5.1 do for their
	// /etc/hosts and /etc/resolv.conf when /etc is a relative symlink
	// inside the image (Apptainer follows absolute and escaping links out
	// of its build directory, onto the host; cachectl never does). A link
	// whose target does not exist is an error, as in Apptainer's build;
	// missing directories below an existing target are created.
	ResolveParentSymlinks
)

// LayerError is an error reading or applying one layer.
type LayerError struct {
	// Index of the layer, 0 = oldest (the message counts from 1).
	Index int
	// Count is the number of layers of the image.
	Count int
	// Digest of the layer as the image names it (zero when unknown).
	Digest v1.Hash
	// Err is the cause.
	Err error
}

func (e *LayerError) Error() string {
	d := e.Digest.String()
	if e.Digest.Hex == "" {
		d = "unknown digest"
	}
	return fmt.Sprintf("layer %d of %d (%s): %v", e.Index+1, e.Count, d, e.Err)
}

// Unwrap returns the cause.
func (e *LayerError) Unwrap() error { return e.Err }

// Tree is a flattened root file system: the final metadata of every path, and
// where the content of each regular file lives in the image's layers.
// A Tree is read-only after Flatten and safe for concurrent WriteTar calls.
type Tree struct {
	layers []v1.Layer
	x      *index
	nodes  int

	files, dirs int
	bytes       int64
}

func isDevice(typ byte) bool {
	return typ == tar.TypeChar || typ == tar.TypeBlock || typ == tar.TypeFifo
}

// Stats reports the number of non-directory paths (hard links counted per
// path), of directories (without the root), and the bytes of regular file
// content (each hard-linked inode once).
func (t *Tree) Stats() (files, dirs int, bytes int64) {
	return t.files, t.dirs, t.bytes
}

// IsDir reports whether path ("dev", "/dev", "./dev/") is a directory of
// the tree (a symlink is not followed).
func (t *Tree) IsDir(path string) bool {
	comps, err := cleanPath(path)
	if err != nil {
		return false
	}
	n, err := t.lookup(comps)
	return err == nil && n != 0 && t.x.isDir(n)
}

// Layers returns the number of layers the tree was flattened from.
func (t *Tree) Layers() int { return len(t.layers) }
