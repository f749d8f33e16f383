package planner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/progress"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/spec"
)

// Options tune planning.
type Options struct {
	// Refresh resolves every reference against its source (default in the
	// CLI); without it the plan is made from the index alone.
	Refresh bool
	// Verify re-hashes managed files.
	Verify bool
	// Targets and Replace are artifact addresses (cache.NAME["REF"]).
	Targets []string
	Replace []string
	// Builder returns the builder identity of a runtime.
	Builder func(spec.Runtime) BuilderInfo
	// Version is recorded in the plan.
	Version string
	// Now is the clock (tests); nil = time.Now.
	Now func() time.Time
}

// MakePlan scans every cache root of the model, resolves references (with
// Refresh), and computes the plan. Problems that stop the plan (an
// unresolvable reference, a file in the way, missing privileges or space)
// are all returned together.
func MakePlan(ctx context.Context, m *spec.Model, res source.Resolver, opts Options) (*Plan, error) {
	if err := checkTargets(m, opts.Targets, "-target"); err != nil {
		return nil, err
	}
	if err := checkTargets(m, opts.Replace, "-replace"); err != nil {
		return nil, err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	p := &Plan{FormatVersion: FormatVersion, CachectlVersion: opts.Version, CreatedAt: now().UTC(), SpecFiles: m.Files,
		SpecDigest: SpecDigest(m), Refreshed: opts.Refresh, Targets: opts.Targets}
	var errs *multierror.Error
	for _, err := range overlappingRoots(m) {
		errs = multierror.Append(errs, err)
	}
	var inputs []CacheInput
	for _, c := range m.Caches {
		// The owner first, then the root's path (refused as apply refuses
		// it), and only then the scan, which may hash every file.
		uid, gid, err := LookupOwner(c.Owner, c.Group)
		if err == nil {
			err = cacheroot.CheckRoot(c.Root, cacheroot.Settings{UID: uid})
		}
		var st *cacheroot.RootState
		if err == nil {
			st, err = cacheroot.Scan(c.Root, cacheroot.ScanOptions{Runtime: c.Runtime, Owner: uid, Verify: opts.Verify, Names: c.ArtifactNames()})
		}
		if err != nil {
			errs = multierror.Append(errs, fmt.Errorf("cache %q: %w", c.Name, err))
			continue
		}
		ci := CacheInput{Cache: c, State: st, UID: uid, GID: gid}
		if opts.Builder != nil {
			ci.Builder = opts.Builder(c.Runtime)
		}
		inputs = append(inputs, ci)
		p.Roots = append(p.Roots, RootPlan{
			Cache: c.Name, Runtime: string(c.Runtime), Root: c.Root, Exists: st.Exists,
			Fingerprint: st.Fingerprint, Prune: c.Prune, DirMode: c.DirMode,
			UID: uid, GID: gid, Unmanaged: st.Unmanaged, Rehashed: st.Rehashed,
		})
	}
	if errs != nil {
		return nil, errs.ErrorOrNil()
	}
	in := DiffInput{Caches: inputs, Refreshed: opts.Refresh, Targets: opts.Targets, Replace: opts.Replace}
	if opts.Refresh && res != nil {
		var reqs []source.ResolveRequest
		seen := map[source.ResolveKey]bool{}
		targets := newTargetSet(opts.Targets)
		for _, c := range m.Caches {
			for _, a := range c.Artifacts {
				k := source.ResolveKey{Ref: a.Ref, Platform: image.PlatformString(a.Platform)}
				if seen[k] || !targets.artifact(c.Name, a.Address()) {
					continue
				}
				seen[k] = true
				reqs = append(reqs, source.ResolveRequest{Ref: a.Ref, Platform: a.Platform})
			}
		}
		resolved, err := res.ResolveAll(ctx, reqs)
		if err != nil {
			return nil, err
		}
		in.Resolved = resolved
	}
	changes, derrs := Diff(in)
	for _, e := range derrs {
		errs = multierror.Append(errs, e)
	}
	if opts.Refresh && res != nil {
		sizer, _ := res.(source.UnpackedSizer)
		boundWrites(ctx, changes, in.Resolved, sizer, opts.Builder)
	}
	p.Changes = changes
	for i := range p.Roots {
		r := &p.Roots[i]
		for _, ch := range changes {
			if ch.Cache == r.Cache && (ch.Action == ActionCreate || ch.Action == ActionReplace) {
				r.WriteBytes += ch.WriteBytes
			}
		}
		r.FreeBytes = freeBytes(r.Root)
		if r.FreeBytes > 0 && r.WriteBytes > r.FreeBytes {
			errs = multierror.Append(errs, fmt.Errorf("cache %q: %s has %s free but the plan may write up to %s (the unpacked image plus metadata); free space or move the root",
				r.Cache, r.Root, HumanBytes(r.FreeBytes), HumanBytes(r.WriteBytes)))
		}
	}
	if err := checkPrivileges(p); err != nil {
		errs = multierror.Append(errs, err)
	}
	p.Summarize()
	if errs != nil {
		errs.ErrorFormat = ListErrors
		return p, errs
	}
	return p, nil
}

// ListErrors formats several errors as a list (for multierror.Error).
func ListErrors(es []error) string {
	if len(es) == 1 {
		return es[0].Error()
	}
	s := fmt.Sprintf("%d problems:", len(es))
	for _, e := range es {
		s += "\n  * " + e.Error()
	}
	return s
}

func checkTargets(m *spec.Model, addrs []string, flag string) error {
	for _, a := range addrs {
		if flag == "-target" && IsCacheTarget(m, a) {
			continue // a whole cache
		}
		found := false
		for _, c := range m.Caches {
			if found {
				break
			}
			for _, art := range c.Artifacts {
				if art.Address() == a {
					found = true
					break
				}
			}
			if !found {
				if ix, err := cacheroot.ReadIndexAt(c.Root, c.Runtime); err == nil {
					for _, e := range ix.Entries {
						if spec.Address(c.Name, e.Ref) == a {
							found = true
						}
					}
				}
			}
		}
		if !found {
			return fmt.Errorf("%s %s matches no artifact; addresses look like cache.NAME[\"REF\"], or cache.NAME for a whole cache with -target (see \"cachectl list\")", flag, a)
		}
	}
	return nil
}

// overlappingRoots finds caches whose roots are the same directory, or one
// inside another, once symlinks in the paths are resolved (validate checks
// the paths as written; a /shared that is a link is found here).
func overlappingRoots(m *spec.Model) []error {
	real := make([]string, len(m.Caches))
	for i, c := range m.Caches {
		real[i] = resolvedPath(c.Root)
	}
	var errs []error
	for i, a := range m.Caches {
		for j, b := range m.Caches {
			if i >= j {
				continue
			}
			ra, rb := real[i], real[j]
			if ra == rb || spec.Within(ra, rb) || spec.Within(rb, ra) {
				errs = append(errs, fmt.Errorf("caches %q (%s) and %q (%s) share a directory once symlinks are resolved (%s, %s): each cache needs a root of its own, not inside another's", a.Name, a.Root, b.Name, b.Root, ra, rb))
			}
		}
	}
	return errs
}

// resolvedPath resolves the symlinks of the longest existing prefix of an
// absolute path and appends the rest.
func resolvedPath(p string) string {
	rest := ""
	for cur := p; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// OwnerUID is the uid of a cache's owner (-1 when none or unknown).
func OwnerUID(c *spec.Cache) int {
	uid, _, err := LookupOwner(c.Owner, "")
	if err != nil {
		return -1
	}
	return uid
}

// LookupOwner resolves user and group names (or numeric ids) to ids;
// "" gives -1 (not enforced).
func LookupOwner(owner, group string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if owner != "" {
		if n, e := strconv.Atoi(owner); e == nil {
			uid = n
		} else if u, e := user.Lookup(owner); e == nil {
			uid, _ = strconv.Atoi(u.Uid)
		} else {
			return 0, 0, fmt.Errorf("owner %q: no such user on this host", owner)
		}
	}
	if group != "" {
		if n, e := strconv.Atoi(group); e == nil {
			gid = n
		} else if g, e := user.LookupGroup(group); e == nil {
			gid, _ = strconv.Atoi(g.Gid)
		} else {
			return 0, 0, fmt.Errorf("group %q: no such group on this host", group)
		}
	}
	return uid, gid, nil
}

// checkPrivileges fails when the plan changes ownership the process may
// not set: another owner needs root (CAP_CHOWN); a group needs membership.
func checkPrivileges(p *Plan) error {
	var errs []error
	for _, ch := range p.Changes {
		if !ch.Action.IsChange() || ch.Action == ActionDelete {
			continue
		}
		if err := CanOwn(ch.UID, ch.GID, ch.Owner, ch.Group); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ch.Address, err))
		}
	}
	return errors.Join(errs...)
}

// CanOwn says whether this process may give files the owner uid and group
// gid (-1: not enforced; owner and group name them in messages): another
// owner needs root (CAP_CHOWN), a group needs membership.
func CanOwn(uid, gid int, owner, group string) error {
	euid := os.Geteuid()
	if euid == 0 {
		return nil
	}
	if uid >= 0 && uid != euid {
		return fmt.Errorf("owner %s (uid %d) can only be set by root (CAP_CHOWN); run apply as root or drop owner from the cache", owner, uid)
	}
	if gid < 0 || gid == os.Getegid() {
		return nil
	}
	groups, _ := os.Getgroups()
	if !slices.Contains(groups, gid) {
		return fmt.Errorf("group %s (gid %d) can only be set by root or a member of that group", group, gid)
	}
	return nil
}

// freeBytes returns the space available to unprivileged users on the file
// system holding path (or its nearest existing ancestor); 0 if unknown.
func freeBytes(path string) int64 {
	for p := path; ; p = filepath.Dir(p) {
		var s syscall.Statfs_t
		if err := syscall.Statfs(p, &s); err == nil {
			return int64(s.Bavail) * int64(s.Bsize)
		}
		if p == "/" || p == "." {
			return 0
		}
	}
}

// HumanBytes formats a byte count with binary units ("1.5 MiB").
func HumanBytes(n int64) string { return progress.FormatBytes(n) }
