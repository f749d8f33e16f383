package adopt

import (
	"context"
	"fmt"
	"time"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/spec"
)

// Take records the adoptable files of r in the index of cache c's root,
// each in place (cacheroot.Session.Adopt through the root's lock): the file
// must still be the inode Scan checked, and keeps its mode and owner
// (plan then shows a mode or owner that differs from the cache's as
// drift, with its reason). Entries are pinned (Imported) unless Resolve
// tracked their digest. A file the index holds by now is left alone. It
// returns the entries recorded and an error per file that failed.
func Take(ctx context.Context, c *spec.Cache, r *Result, b providers.Builder, lockTimeout time.Duration) ([]cacheroot.Entry, []error) {
	files := r.Adoptable()
	if len(files) == 0 {
		return nil, nil
	}
	sess, err := cacheroot.Begin(ctx, c.Root, cacheroot.Settings{Runtime: c.Runtime, DirMode: c.DirMode, UID: -1, GID: -1}, lockTimeout)
	if err != nil {
		return nil, []error{err}
	}
	defer sess.Release()
	wantPlatform := map[string]string{}
	for _, a := range c.Artifacts {
		wantPlatform[a.Name] = image.PlatformString(a.Platform)
	}
	var out []cacheroot.Entry
	var errs []error
	now := time.Now().UTC()
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return out, append(errs, err)
		}
		if _, managed := sess.Lookup(f.Name); managed {
			continue
		}
		info := f.Info
		e := cacheroot.Entry{
			Name: f.Name, Ref: f.Ref, Digest: f.Digest, Platform: wantPlatform[f.Name],
			Builder: b.Format(), Imported: !f.track, Placed: now, Inode: f.Inode, Adopted: &info,
		}
		if e.Platform == "" {
			e.Platform = image.PlatformString(c.Platform)
		}
		got, err := sess.Adopt(f.Name, e, f.Mode)
		if err != nil {
			errs = append(errs, fmt.Errorf("adopt %s: %w", spec.JoinRoot(c.Root, f.Name), err))
			continue
		}
		out = append(out, got)
	}
	return out, errs
}
