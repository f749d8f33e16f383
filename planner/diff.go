package planner

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/spec"
)

// BuilderInfo identifies the builder of a format.
type BuilderInfo struct {
	Format  string
	Version string
}

// CacheInput is one cache and its actual state, with ownership resolved
// to numeric ids (-1 = not enforced).
type CacheInput struct {
	Cache    *spec.Cache
	State    *cacheroot.RootState
	UID, GID int
	Builder  BuilderInfo
}

// DiffInput is everything the pure diff needs.
type DiffInput struct {
	Caches []CacheInput
	// Resolved maps each reference/platform to its resolution. When
	// Refreshed is false it may be empty: the index's digests are used.
	Resolved  map[source.ResolveKey]source.Resolution
	Refreshed bool
	// Targets limits the plan to these addresses (empty = all): artifact
	// addresses, or cache.NAME for a whole cache (its artifacts and its
	// directory changes; see targetSet).
	Targets []string
	// Replace forces replacement of these addresses (e.g. imported files).
	Replace []string
}

// Diff compares desired and actual state and returns the changes, sorted
// by cache (in input order) then name, and errors for artifacts that
// cannot be planned (a file cachectl did not place is in the way).
func Diff(in DiffInput) ([]Change, []error) {
	targets := newTargetSet(in.Targets)
	replace := setOf(in.Replace)
	var changes []Change
	var errs []error
	for _, ci := range in.Caches {
		c, st := ci.Cache, ci.State
		wanted := map[string]bool{}
		for _, a := range c.Artifacts {
			wanted[a.Name] = true
			if !targets.artifact(c.Name, a.Address()) {
				continue
			}
			ch, err := diffArtifact(ci, a, in, replace[a.Address()])
			if err != nil {
				errs = append(errs, err)
				continue
			}
			changes = append(changes, ch)
		}
		if targets.dirs(c.Name) {
			changes = append(changes, diffDirs(ci)...)
		}
		for i := range st.Index.Entries {
			e := st.Index.Entries[i]
			if wanted[e.Name] {
				continue
			}
			addr := spec.Address(c.Name, e.Ref)
			if !targets.artifact(c.Name, addr) {
				continue
			}
			ch := baseChange(ci, addr, e.Ref, e.Name)
			ch.Before = &e
			ch.Platform = e.Platform
			if c.Prune {
				ch.Action = ActionDelete
				ch.Reasons = []Reason{{ReasonLeftSpec, "no longer in the spec (prune = true)"}}
			} else {
				ch.Action = ActionOrphan
				ch.Reasons = []Reason{{ReasonLeftSpec, "no longer in the spec; kept because the cache does not set prune = true"}}
			}
			changes = append(changes, ch)
		}
	}
	order := map[string]int{}
	for i, ci := range in.Caches {
		order[ci.Cache.Name] = i
	}
	sort.SliceStable(changes, func(i, j int) bool {
		if order[changes[i].Cache] != order[changes[j].Cache] {
			return order[changes[i].Cache] < order[changes[j].Cache]
		}
		return changes[i].Name < changes[j].Name
	})
	return changes, errs
}

func setOf(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func baseChange(ci CacheInput, addr, ref, name string) Change {
	c := ci.Cache
	return Change{
		Address:     addr,
		Kind:        KindArtifact,
		Cache:       c.Name,
		Runtime:     string(c.Runtime),
		Ref:         ref,
		Name:        name,
		Path:        spec.JoinRoot(c.Root, name),
		Mode:        c.FileMode,
		DirMode:     c.DirMode,
		UID:         ci.UID,
		GID:         ci.GID,
		Owner:       c.Owner,
		Group:       c.Group,
		Compression: c.Compression,
	}
}

func diffArtifact(ci CacheInput, a *spec.Artifact, in DiffInput, forceReplace bool) (Change, error) {
	st := ci.State
	ch := baseChange(ci, a.Address(), a.Ref, a.Name)
	ch.Platform = image.PlatformString(a.Platform)
	res, resolved := in.Resolved[source.ResolveKey{Ref: a.Ref, Platform: ch.Platform}]
	if resolved {
		ch.Digest, ch.Manifest = res.Digest, res.Manifest
		ch.DownloadBytes, ch.WriteBytes = res.Download, res.Size
	}
	e, managed := st.Index.Lookup(a.Name)
	f := st.Files[a.Name]
	if !managed {
		if o := st.Occupied[a.Name]; o.Blocked != "" {
			return ch, blockedError(a.Address(), ch.Path, "placed", o)
		}
		if st.IsUnmanaged(a.Name) || st.Occupied[a.Name].Exists {
			return ch, fmt.Errorf("%s: %s exists and was not placed by cachectl; adopt it with \"cachectl import %s %s %s\" or move it away", a.Address(), ch.Path, ci.Cache.Name, ch.Path, a.Ref)
		}
		if conflict := managedAncestor(st, a.Name); conflict != "" {
			return ch, fmt.Errorf("%s: %s needs %s to be a directory, but cachectl placed a file there", a.Address(), ch.Path, conflict)
		}
		ch.Action = ActionCreate
		ch.Reasons = []Reason{{ReasonMissing, "not in the cache"}}
		return ch, nil
	}
	before := *e
	ch.Before = &before
	if !resolved {
		// Offline plan: rebuild what the index recorded.
		ch.Digest, ch.Manifest = e.Digest, e.Manifest
		ch.WriteBytes = e.Size
	}
	var why []Reason
	switch {
	case f.Blocked != "":
		return ch, blockedError(a.Address(), ch.Path, "reached", f)
	case !f.Exists:
		ch.Action = ActionCreate
		ch.Reasons = []Reason{{ReasonFileMissing, "recorded in the index but the file is gone"}}
		return ch, nil
	case !f.Regular:
		why = append(why, Reason{ReasonNotRegular, "the path is no longer a regular file"})
	case e.Inode != 0 && f.Inode != e.Inode:
		why = append(why, Reason{ReasonFileReplaced, fmt.Sprintf("the file at the path is not the one cachectl placed (inode %d, recorded %d)", f.Inode, e.Inode)})
	case f.Size != e.Size || !f.ModTime.Equal(e.ModTime):
		why = append(why, Reason{ReasonFileChanged, fmt.Sprintf("file changed since cachectl placed it (size %d → %d, mtime %s → %s)",
			e.Size, f.Size, e.ModTime.UTC().Format("2006-01-02T15:04:05Z"), f.ModTime.UTC().Format("2006-01-02T15:04:05Z"))})
	case f.SHA256 != "" && f.SHA256 != e.SHA256:
		why = append(why, Reason{ReasonCorrupt, fmt.Sprintf("content does not match the index (sha256 %s, recorded %s)", short(f.SHA256), short(e.SHA256))})
	}
	if e.Ref != a.Ref {
		why = append(why, Reason{ReasonRefChanged, fmt.Sprintf("reference changed: %s → %s", e.Ref, a.Ref)})
	}
	if e.Platform != "" && e.Platform != ch.Platform {
		why = append(why, Reason{ReasonPlatformChanged, fmt.Sprintf("platform changed: %s → %s", e.Platform, ch.Platform)})
	}
	if !e.Imported && e.Adopted == nil && (e.Builder != ci.Builder.Format || e.BuilderVersion != ci.Builder.Version) {
		why = append(why, Reason{ReasonBuilderChanged, fmt.Sprintf("builder changed: %s %s → %s %s", e.Builder, e.BuilderVersion, ci.Builder.Format, ci.Builder.Version)})
	}
	if resolved && !e.Imported && res.Digest != e.Digest && e.Ref == a.Ref {
		if a.Local != nil {
			why = append(why, Reason{ReasonSourceChanged, fmt.Sprintf("source changed: %s → %s", short(e.Digest), short(res.Digest))})
		} else {
			why = append(why, Reason{ReasonTagMoved, fmt.Sprintf("tag moved: %s → %s", short(e.Digest), short(res.Digest))})
		}
	}
	if forceReplace {
		why = append(why, Reason{ReasonReplaceAsked, "replacement requested with -replace"})
	}
	if len(why) > 0 {
		ch.Action = ActionReplace
		ch.Reasons = why
		if !resolved && (e.Imported || e.Manifest == "") {
			ch.Digest, ch.Manifest = "", "" // resolve at apply
		}
		return ch, nil
	}
	if f.Mode != ci.Cache.FileMode {
		why = append(why, Reason{ReasonModeDrift, fmt.Sprintf("mode %s → %s", f.Mode, ci.Cache.FileMode)})
	}
	if ci.UID >= 0 && f.UID != ci.UID {
		why = append(why, Reason{ReasonOwnerDrift, fmt.Sprintf("owner %d → %d (%s)", f.UID, ci.UID, ci.Cache.Owner)})
	}
	if ci.GID >= 0 && f.GID != ci.GID {
		why = append(why, Reason{ReasonGroupDrift, fmt.Sprintf("group %d → %d (%s)", f.GID, ci.GID, ci.Cache.Group)})
	}
	ch.WriteBytes, ch.DownloadBytes = 0, 0
	if len(why) > 0 {
		ch.Action = ActionUpdate
		ch.Reasons = why
		return ch, nil
	}
	ch.Action = ActionNoop
	return ch, nil
}

// blockedError says why an artifact's path cannot be used: a parent that
// is a symlink, not a directory, or a directory of an untrusted owner.
func blockedError(addr, path, what string, f cacheroot.FileState) error {
	why := "cachectl never follows symlinks below a cache root; move it away"
	if errors.Is(f.BlockedBy, cacheroot.ErrUntrusted) {
		why = "its owner could replace what cachectl puts there, whatever the mode; move it away, or chown it to root or the cache's owner"
	}
	return fmt.Errorf("%s: %s cannot be %s: %s %v, and %s", addr, path, what, f.Blocked, f.BlockedBy, why)
}

// DirAddress is the address of a directory cachectl created in a cache.
func DirAddress(cache, dir string) string { return fmt.Sprintf("cache.%s.dir[%q]", cache, dir) }

// diffDirs plans mode and owner fixes of the directories cachectl created.
func diffDirs(ci CacheInput) []Change {
	var out []Change
	c := ci.Cache
	for _, d := range ci.State.Index.Dirs {
		f := ci.State.Dirs[d]
		if !f.Exists || !f.Dir || f.Blocked != "" {
			continue
		}
		if want, ok := ci.State.Index.DirInodes[d]; ok && f.Inode != want {
			continue // not the directory cachectl made: not ours to change
		}
		var why []Reason
		if f.Mode != c.DirMode {
			why = append(why, Reason{ReasonModeDrift, fmt.Sprintf("mode %s → %s", f.Mode, c.DirMode)})
		}
		if ci.UID >= 0 && f.UID != ci.UID {
			why = append(why, Reason{ReasonOwnerDrift, fmt.Sprintf("owner %d → %d (%s)", f.UID, ci.UID, c.Owner)})
		}
		if ci.GID >= 0 && f.GID != ci.GID {
			why = append(why, Reason{ReasonGroupDrift, fmt.Sprintf("group %d → %d (%s)", f.GID, ci.GID, c.Group)})
		}
		if len(why) == 0 {
			continue
		}
		path := c.Root
		if d != "." {
			path = spec.JoinRoot(c.Root, d)
		}
		out = append(out, Change{Address: DirAddress(c.Name, d), Kind: KindDirectory, Cache: c.Name, Runtime: string(c.Runtime),
			Name: d, Path: path, Action: ActionUpdate, Reasons: why, Mode: c.DirMode, DirMode: c.DirMode,
			UID: ci.UID, GID: ci.GID, Owner: c.Owner, Group: c.Group})
	}
	return out
}

// managedAncestor returns a managed file that is a parent path of name.
func managedAncestor(st *cacheroot.RootState, name string) string {
	for i := strings.LastIndexByte(name, '/'); i > 0; i = strings.LastIndexByte(name[:i], '/') {
		if _, ok := st.Index.Lookup(name[:i]); ok {
			return name[:i]
		}
	}
	return ""
}

func short(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	if d == "" {
		return "(none)"
	}
	return d
}
