package planner

import (
	"path"
	"strings"

	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/localsrc"
	"github.com/cachectl/cachectl/spec"
)

// What the spec's references mean to the image providers: the name an
// image records, and the local sources as providers/localsrc reads them.

// ImageName is the name an artifact built from ref records inside it (the
// org.opencontainers.image.ref.name of a Podman archive): for a registry
// reference the normalized reference (docker.io/library/alpine:3.20); for
// a local source its image name, normalized when it is a registry-style
// reference with a tag or digest ("app:1" → docker.io/library/app:1), else
// as written ("v1"); for a local source without a name "localhost/" +
// fileName, Podman's convention for images without a registry.
func ImageName(ref, fileName string) string {
	if !spec.IsLocalRef(ref) {
		return image.NormalizedName(ref)
	}
	lr, err := spec.ParseLocalRef(ref)
	if err != nil || lr.Image == "" {
		return "localhost/" + strings.ToLower(path.Base(fileName))
	}
	if info, err := spec.ParseRef(lr.Image); err == nil && (info.Tag != "" || info.Digest != "") {
		return image.NormalizedName(lr.Image)
	}
	return lr.Image
}

// LocalRefs returns the local references of m (oci-layout:, oci-archive:,
// docker-archive:) as localsrc.ImageSource takes them, by reference as
// written: kind, the path spec.Load resolved against the directory of the
// spec file, and the image name.
func LocalRefs(m *spec.Model) map[string]localsrc.Ref {
	refs := map[string]localsrc.Ref{}
	for _, c := range m.Caches {
		for _, a := range c.Artifacts {
			if a.Local != nil {
				refs[a.Ref] = localsrc.Ref{Kind: localsrc.Kind(a.Local.Kind), Path: a.Local.AbsPath, Image: a.Local.Image}
			}
		}
	}
	return refs
}
