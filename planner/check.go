package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/spec"
)

// SpecDigest is a digest of everything in a loaded spec that decides what
// apply may do: each cache's name, runtime, root, modes, owner, group,
// prune, compression and platform, and each artifact's address, name,
// reference and platform. A plan records it; apply of a saved plan refuses
// the plan when the spec given then has another digest.
func SpecDigest(m *spec.Model) string {
	type art struct{ Address, Name, Ref, Platform string }
	type cache struct {
		Name, Runtime, Root, FileMode, DirMode, Owner, Group, Compression, Platform string
		Prune                                                                       bool
		Artifacts                                                                   []art
	}
	var cs []cache
	for _, c := range m.Caches {
		x := cache{Name: c.Name, Runtime: string(c.Runtime), Root: c.Root, FileMode: c.FileMode.String(), DirMode: c.DirMode.String(),
			Owner: c.Owner, Group: c.Group, Compression: c.Compression, Platform: image.PlatformString(c.Platform), Prune: c.Prune}
		for _, a := range c.Artifacts {
			x.Artifacts = append(x.Artifacts, art{a.Address(), a.Name, a.Ref, image.PlatformString(a.Platform)})
		}
		cs = append(cs, x)
	}
	b, _ := json.Marshal(cs)
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ErrPlanEdited is returned (wrapped) when a plan asks for something the
// spec does not allow.
var ErrPlanEdited = errors.New("the plan was edited or made from another spec")

// CheckPlanSpec checks the parts of a plan that need no file system: the
// spec digest, and that every root and change belongs to a cache of the
// spec with the same root, runtime, modes and owners. Errors wrap
// ErrPlanEdited.
func CheckPlanSpec(p *Plan, m *spec.Model) error {
	if p.SpecDigest == "" {
		return fmt.Errorf("%w: it carries no spec digest (made by an older cachectl?); make it again with \"cachectl plan -out\"", ErrPlanEdited)
	}
	if d := SpecDigest(m); p.SpecDigest != d {
		return fmt.Errorf("%w: the spec changed since the plan was made (spec digest %s, the plan's %s); make the plan again", ErrPlanEdited, short(d), short(p.SpecDigest))
	}
	for _, r := range p.Roots {
		c := m.Cache(r.Cache)
		if c == nil {
			return fmt.Errorf("%w: it names cache %q, which the spec does not have", ErrPlanEdited, r.Cache)
		}
		uid, gid, err := LookupOwner(c.Owner, c.Group)
		if err != nil {
			return fmt.Errorf("cache %q: %w", c.Name, err)
		}
		switch {
		case r.Root != c.Root:
			return mismatch("root of cache "+c.Name, r.Root, c.Root)
		case r.Runtime != string(c.Runtime):
			return mismatch("runtime of cache "+c.Name, r.Runtime, string(c.Runtime))
		case r.DirMode != c.DirMode:
			return mismatch("dir_mode of cache "+c.Name, r.DirMode.String(), c.DirMode.String())
		case r.UID != uid || r.GID != gid:
			return mismatch("owner of cache "+c.Name, fmt.Sprintf("%d:%d", r.UID, r.GID), fmt.Sprintf("%d:%d", uid, gid))
		case r.Prune != c.Prune:
			return mismatch("prune of cache "+c.Name, fmt.Sprint(r.Prune), fmt.Sprint(c.Prune))
		}
	}
	for _, ch := range p.Changes {
		if p.Root(ch.Cache) == nil {
			return fmt.Errorf("%w: change %s names cache %q, which the plan's roots do not have", ErrPlanEdited, ch.Address, ch.Cache)
		}
	}
	return nil
}

// CheckPlanChanges compares the plan's changes to the caches given with
// the changes the spec gives for their state as found under the locks: the
// same diff, fed with the digests the plan resolved. Every change the plan
// would make there must be exactly one the spec asks for (address, action,
// name, path, runtime, reference, platform, modes, owners, digests), and
// none may be missing. Errors wrap ErrPlanEdited.
func CheckPlanChanges(p *Plan, caches []CacheInput) error {
	in := DiffInput{Caches: caches, Refreshed: p.Refreshed, Targets: p.Targets, Replace: plannedReplaces(p)}
	if p.Refreshed {
		in.Resolved = planResolutions(p)
	}
	want, _ := Diff(in)
	mine := map[string]bool{}
	for _, c := range caches {
		mine[c.Cache.Name] = true
	}
	var planned []Change
	for _, ch := range p.Changes {
		if mine[ch.Cache] {
			planned = append(planned, ch)
		}
	}
	return compareChanges(planned, want)
}

func compareChanges(planned, want []Change) error {
	key := func(c Change) string { return string(c.Kind) + " " + c.Address }
	wantBy := map[string]Change{}
	for _, c := range want {
		if c.Action.IsChange() {
			wantBy[key(c)] = c
		}
	}
	seen := map[string]bool{}
	for _, c := range planned {
		if !c.Action.IsChange() {
			continue
		}
		k := key(c)
		if seen[k] {
			return fmt.Errorf("%w: change %s appears twice", ErrPlanEdited, c.Address)
		}
		seen[k] = true
		w, ok := wantBy[k]
		if !ok {
			return fmt.Errorf("%w: the spec asks for no %s of %s", ErrPlanEdited, c.Action, c.Address)
		}
		for _, f := range []struct{ what, got, want string }{
			{"action", string(c.Action), string(w.Action)},
			{"cache", c.Cache, w.Cache},
			{"name", c.Name, w.Name},
			{"path", c.Path, w.Path},
			{"runtime", c.Runtime, w.Runtime},
			{"ref", c.Ref, w.Ref},
			{"platform", c.Platform, w.Platform},
			{"mode", c.Mode.String(), w.Mode.String()},
			{"dir_mode", c.DirMode.String(), w.DirMode.String()},
			{"uid", fmt.Sprint(c.UID), fmt.Sprint(w.UID)},
			{"gid", fmt.Sprint(c.GID), fmt.Sprint(w.GID)},
			{"compression", c.Compression, w.Compression},
			{"digest", c.Digest, w.Digest},
			{"manifest", c.Manifest, w.Manifest},
		} {
			if f.got != f.want {
				return mismatch(f.what+" of "+c.Address, f.got, f.want)
			}
		}
	}
	for k, w := range wantBy {
		if !seen[k] {
			return fmt.Errorf("%w: it lacks the %s of %s that the spec asks for", ErrPlanEdited, w.Action, w.Address)
		}
	}
	return nil
}

func mismatch(what, got, want string) error {
	return fmt.Errorf("%w: %s is %q in the plan, the spec gives %q", ErrPlanEdited, what, got, want)
}

// planResolutions returns the digests a plan resolved, as diff input.
func planResolutions(p *Plan) map[source.ResolveKey]source.Resolution {
	res := map[source.ResolveKey]source.Resolution{}
	for _, c := range p.Changes {
		if c.Kind == KindArtifact && c.Manifest != "" {
			res[source.ResolveKey{Ref: c.Ref, Platform: c.Platform}] = source.Resolution{Digest: c.Digest, Manifest: c.Manifest}
		}
	}
	return res
}

// plannedReplaces returns the addresses the plan replaces on request.
func plannedReplaces(p *Plan) []string {
	var out []string
	for _, c := range p.Changes {
		for _, r := range c.Reasons {
			if r.Code == ReasonReplaceAsked {
				out = append(out, c.Address)
			}
		}
	}
	return out
}
