package spec

import (
	"path"
	"sort"

	"github.com/hashicorp/hcl/v2"
)

// buildArtifacts merges a cache's image entries into artifacts (one per
// reference, with every flavor that brought it), names them, and checks
// that no two land on the same file and that no file would have to be the
// directory of another.
func (l *loader) buildArtifacts(ci *cacheInfo, entries []imageEntry, rtOK bool) {
	c := ci.cache
	byRef := make(map[string]*Artifact, len(entries))
	custom := map[*Artifact]bool{}
	for _, e := range entries {
		a := byRef[e.ref]
		if a == nil {
			info, local, err := l.parseRef(e.ref)
			if err != nil {
				continue // reported where the reference is written
			}
			a = &Artifact{Cache: c.Name, Ref: e.ref, Platform: c.Platform, Range: e.rng}
			if local != nil {
				a.Local = local.Resolve(specDir(e.rng))
			} else {
				a.Parsed = info.Parsed
			}
			byRef[e.ref] = a
			c.Artifacts = append(c.Artifacts, a)
		}
		if e.flavor != "" && !contains(a.Flavors, e.flavor) {
			a.Flavors = append(a.Flavors, e.flavor)
		}
		if o := e.block; o != nil {
			a.Platform = o.platform
			if o.hasName {
				a.Name = o.name
				custom[a] = true
				ci.nameRngs[a] = o.nameRng
			}
		}
	}
	if !rtOK {
		return
	}
	for _, a := range c.Artifacts {
		if !custom[a] {
			base := a.Ref
			if a.Local != nil {
				if a.Local.Image == "" {
					l.errorf(a.Range.Ptr(), "Local image without a name", "%q names no image, so there is nothing to name the file after. Name the image in the reference (%s) or give it a file name with an image block in cache %q (name = \"...\").", a.Ref, localNameExample(a.Local), c.Name)
					continue
				}
				base = a.Local.Image
			}
			n, err := FileName(c.Runtime, base)
			if err != nil {
				l.errorf(a.Range.Ptr(), "Invalid file name", "%s. Give the image its own file name with an image block (name = \"...\").", capitalize(err.Error()))
				continue
			}
			a.Name = n
		}
		if ci.rootOK {
			a.Path = JoinRoot(c.Root, a.Name)
		}
	}
	sort.SliceStable(c.Artifacts, func(i, j int) bool { return c.Artifacts[i].Name < c.Artifacts[j].Name })

	rangeOf := func(a *Artifact) *hcl.Range {
		if r, ok := ci.nameRngs[a]; ok {
			return r.Ptr()
		}
		return a.Range.Ptr()
	}
	byName := make(map[string]*Artifact, len(c.Artifacts))
	for _, a := range c.Artifacts {
		if a.Name == "" {
			continue
		}
		if prev := byName[a.Name]; prev != nil {
			l.errorf(rangeOf(a), "Two images land on the same file", "In cache %q, %q and %q (%s) both land on %q. Give one of them its own file name with an image block (name = \"...\").", c.Name, a.Ref, prev.Ref, posString(*rangeOf(prev)), a.Name)
			continue
		}
		byName[a.Name] = a
	}
	byImage := map[string]*Artifact{}
	for _, a := range c.Artifacts {
		if a.Parsed == nil || a.Name == "" {
			continue
		}
		if prev := byImage[a.Parsed.Name()]; prev != nil && prev.Platform.String() == a.Platform.String() {
			l.warnf(a.Range.Ptr(), "The same image twice", "In cache %q, %q is the same image as %q (%s): both are pulled and stored, as %q and %q. Write the reference one way.", c.Name, a.Ref, prev.Ref, posString(prev.Range), a.Name, prev.Name)
			continue
		}
		byImage[a.Parsed.Name()] = a
	}
	for _, a := range c.Artifacts {
		if a.Name == "" || byName[a.Name] != a {
			continue
		}
		for d := path.Dir(a.Name); d != "." && d != "/"; d = path.Dir(d) {
			if other := byName[d]; other != nil {
				l.errorf(rangeOf(a), "An image file would have to be a directory", "In cache %q, %q lands on %q, below the file %q of %q (%s). Give one of them its own file name with an image block (name = \"...\").", c.Name, a.Ref, a.Name, other.Name, other.Ref, posString(*rangeOf(other)))
				break
			}
		}
	}
}

// checkFlavorsUsed warns about flavors that no cache names.
func (l *loader) checkFlavorsUsed(m *Model) {
	used := map[string]bool{}
	for _, c := range m.Caches {
		for _, f := range c.Flavors {
			used[f] = true
		}
	}
	for _, f := range m.Flavors {
		if !used[f.Name] {
			l.warnf(f.Range.Ptr(), "Flavor not used", "No cache names flavor %q, so its images are not pulled anywhere. Add it to a cache's flavors, or remove it.", f.Name)
		}
	}
}

// checkRoots reports caches that share a root or nest one inside another.
func (l *loader) checkRoots(m *Model) {
	var ok []*cacheInfo
	for _, ci := range l.caches {
		if ci.rootOK {
			ok = append(ok, ci)
		}
	}
	for i, ci := range ok {
		for _, prev := range ok[:i] {
			a, b := prev.cache, ci.cache
			switch {
			case a.Root == b.Root:
				l.errorf(&ci.rootRng, "Two caches share a root", "Caches %q and %q (%s) both use %q. Each cache owns every file under its root (index, prune); give each its own directory.", b.Name, a.Name, posString(prev.rootRng), b.Root)
			case Within(a.Root, b.Root):
				l.errorf(&ci.rootRng, "Cache root inside another cache's root", "The root %q of cache %q is inside the root %q of cache %q (%s). Each cache owns every file under its root; use sibling directories.", b.Root, b.Name, a.Root, a.Name, posString(prev.rootRng))
			case Within(b.Root, a.Root):
				l.errorf(&prev.rootRng, "Cache root inside another cache's root", "The root %q of cache %q is inside the root %q of cache %q (%s). Each cache owns every file under its root; use sibling directories.", a.Root, a.Name, b.Root, b.Name, posString(ci.rootRng))
			}
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// localNameExample shows how to name the image of a local reference.
func localNameExample(r *LocalRef) string {
	if r.Kind == LocalDockerArchive {
		return string(r.Kind) + ":" + r.Path + ":REPO:TAG"
	}
	return string(r.Kind) + ":" + r.Path + ":REF"
}
