package planner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cachectl/cachectl/providers"
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
func Import(ctx context.Context, c *spec.Cache, b providers.Builder, file, ref, name string, opts ImportOptions) (*Entry, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(abs)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("import: %s is not a regular file", file)
	}
	if err := b.Verify(ctx, abs); err != nil {
		return nil, fmt.Errorf("import: %s is not a valid %s artifact for cache %q (runtime %s): %w", file, b.Format(), c.Name, c.Runtime, err)
	}
	uid, gid, err := LookupOwner(c.Owner, c.Group)
	if err != nil {
		return nil, err
	}
	lock, createdRoot, err := lockRoot(ctx, c.Root, c.DirMode, uid, gid, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	st, err := Scan(c.Root, ScanOptions{SkipUnmanaged: true})
	if err != nil {
		return nil, err
	}
	dest := spec.JoinRoot(c.Root, name)
	if old, ok := st.Index.Lookup(name); ok && !opts.Force {
		return nil, fmt.Errorf("import: %s already holds %s (placed by cachectl); use --force to replace it", dest, old.Ref)
	}
	rp := RootPlan{Cache: c.Name, Root: c.Root, DirMode: c.DirMode.String(), UID: uid, GID: gid}
	job := &rootJob{rp: rp, ix: st.Index, staging: filepath.Join(MetaDir(c.Root), stagingDir)}
	if createdRoot {
		job.ix.AddDir(".")
	}
	e := Entry{Name: name, Ref: ref, Platform: PlatformString(c.Platform), Builder: b.Format(), BuilderVersion: b.Version(), Imported: true}
	if abs == dest {
		// Adopt in place: the file is already where it belongs.
		sum, fs, err := finishFile(dest, c.FileMode, uid, gid)
		if err != nil {
			return nil, err
		}
		e.Size, e.SHA256, e.ModTime, e.Mode, e.UID, e.GID, e.Placed = fs.Size, sum, fs.ModTime, fs.Mode.String(), fs.UID, fs.GID, time.Now().UTC()
		job.ix.Put(e)
		return &e, WriteIndex(c.Root, job.ix)
	}
	if _, err := os.Lstat(dest); err == nil {
		if _, ok := st.Index.Lookup(name); !ok {
			return nil, fmt.Errorf("import: %s exists and was not placed by cachectl; move it away first, or import it in place: cachectl import %s %s %s", dest, c.Name, dest, ref)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(job.staging, 0o700); err != nil {
		return nil, err
	}
	tmp := filepath.Join(job.staging, "import-"+randomName())
	defer os.Remove(tmp)
	if err := copyFile(abs, tmp); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	sum, fst, err := finishFile(tmp, c.FileMode, uid, gid)
	if err != nil {
		return nil, err
	}
	e.Size, e.SHA256, e.ModTime, e.Mode, e.UID, e.GID, e.Placed = fst.Size, sum, fst.ModTime, fst.Mode.String(), fst.UID, fst.GID, time.Now().UTC()
	if err := job.place(tmp, e, Change{}); err != nil {
		return nil, err
	}
	return &e, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
