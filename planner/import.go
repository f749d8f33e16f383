package planner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cachectl/cachectl/planner/adopt"
	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/spec"
)

// ImportOptions tune Import.
type ImportOptions struct {
	// Force replaces an artifact cachectl already placed at the name.
	Force       bool
	LockTimeout time.Duration
}

// Import adopts a file made elsewhere into a cache: it checks the file is
// the cache's format, then places a copy (or, when the file already sits at
// its final path, adopts it in place) with the cache's mode and owner, and
// records it as imported. It returns the index entry.
func Import(ctx context.Context, c *spec.Cache, b providers.Builder, file, ref, name string, opts ImportOptions) (*cacheroot.Entry, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	// No symlink is followed on the way: the file is handed to root by
	// whoever can write its directories.
	src, err := cacheroot.OpenRegularNoSymlinks(abs)
	if err != nil {
		if errors.Is(err, cacheroot.ErrSymlink) {
			return nil, fmt.Errorf("import: %w; give the file's real path (readlink -f %s)", err, file)
		}
		return nil, fmt.Errorf("import: %w", err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	// A second name of the file may be another user's file, one the user
	// who handed this path over may not read (fs.protected_hardlinks = 0
	// lets anyone link any file): its content would land in the cache
	// with the cache's file_mode. In place, its owner and mode would
	// change too.
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok && sys.Nlink > 1 {
		return nil, fmt.Errorf("import: %s %w (%d names): the other names are the same file, perhaps another user's; import a copy of its own (cp %s NEW && cachectl import … NEW)", file, cacheroot.ErrHardLinked, sys.Nlink, file)
	}

	// Verify reads the very file opened above, whatever its path becomes
	// (its messages name the file as the user gave it).
	fdPath := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), src.Fd())
	if err := b.Verify(ctx, fdPath); err != nil {
		return nil, fmt.Errorf("import: %s is not a valid %s artifact for cache %q (runtime %s): %s", file, b.Format(), c.Name, c.Runtime, strings.ReplaceAll(err.Error(), fdPath, file))
	}
	if err := checkContent(src, file, ref); err != nil {
		return nil, err
	}
	uid, gid, err := LookupOwner(c.Owner, c.Group)
	if err != nil {
		return nil, err
	}
	sess, err := cacheroot.Begin(ctx, c.Root, cacheroot.Settings{Runtime: c.Runtime, DirMode: c.DirMode, UID: uid, GID: gid}, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer sess.Release()
	dest := sess.Root.Abs(name)
	old, managed := sess.Lookup(name)
	if managed && !opts.Force {
		return nil, fmt.Errorf("import: %s already holds %s (placed by cachectl); use --force to replace it", dest, old.Ref)
	}
	e := cacheroot.Entry{Name: name, Ref: ref, Platform: image.PlatformString(c.Platform), Builder: b.Format(), BuilderVersion: b.Version(), Imported: true, Placed: time.Now().UTC()}
	there, err := sess.Root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if there.Blocked != "" {
		return nil, &cacheroot.PathError{Op: "import", Path: there.Blocked, Err: there.BlockedBy}
	}
	if there.Exists && sameFile(fi, there) {
		// Adopt in place: the file is already where it belongs (the very
		// inode checked; Adopt refuses one with a second hard link).
		e.Inode = there.Inode
		e, err := sess.Adopt(name, e, c.FileMode)
		return &e, err
	}
	if there.Exists && !managed {
		return nil, fmt.Errorf("import: %s exists and was not placed by cachectl; move it away first, or import it in place: cachectl import %s %s %s", dest, c.Name, dest, ref)
	}
	work, err := sess.WorkDir()
	if err != nil {
		return nil, err
	}
	defer work.Remove()
	const copied = "import"
	out, err := work.Create(copied)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return nil, fmt.Errorf("import: copy %s: %w", file, err)
	}
	if err := out.Close(); err != nil {
		return nil, fmt.Errorf("import: copy %s: %w", file, err)
	}
	fin, err := work.Finish(copied, c.FileMode, uid, gid)
	if err != nil {
		return nil, err
	}
	e = fin.Entry(e)
	if err := sess.Place(work, copied, e); err != nil {
		return nil, err
	}
	return &e, nil
}

// sameFile reports whether an opened file is the one a root's Lstat found.
func sameFile(fi os.FileInfo, st cacheroot.FileState) bool {
	sys, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Regular && sys.Ino == st.Inode && uint64(sys.Dev) == st.Dev
}

// checkContent refuses the opened file src when it says it holds another
// image than ref (a SIF's base.name or definition, an OCI archive's
// ref.name), or more than one image: jobs asking for ref would run
// something else, and an imported file is never refreshed. It reads the
// very file Import places (file names it in messages).
func checkContent(src *os.File, file, ref string) error {
	d, err := adopt.Describe(src)
	if err != nil {
		return nil // the builder's Verify said what it needs of the file
	}
	if d.Images > 1 {
		return fmt.Errorf("import: %s holds %d images (an OCI archive of several, or a bundle); a cache file holds one: import each image's own archive", file, d.Images)
	}
	if d.Ref != "" && !adopt.SameImageAnyHost(d.Ref, ref) {
		return fmt.Errorf("import: %s says it was made from %s, not %s: import it as that image, or build %s's own file", file, d.Ref, ref, ref)
	}
	return nil
}
