// Package image holds what cachectl's image sources and builders have in
// common about OCI and Docker images, below any one source or format: the
// normalized name of a reference and the ref-name annotation that records
// it, the platform string and the rules that pick a platform from an index
// or check it against a config, media types (of a raw manifest, of a
// layer's compression, the unpacked size from a gzip trailer), and the
// paths of an OCI image layout. It imports neither the spec nor any other
// cachectl package, so every provider may use it.
package image

import (
	"github.com/google/go-containerregistry/pkg/name"
)

// RefNameAnnotation names an image in the index.json of an OCI image
// layout (OCI image spec v1.1, annotations.md): Podman writes the
// normalized name there (`podman save --format=oci-archive`), skopeo and
// umoci the REF of oci:DIR:REF, and cachectl's bundles the normalized name.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// NormalizedName returns the fully qualified name of the image reference
// ref as Docker, Podman and the ref-name annotation spell it:
// docker.io/library/alpine:3.20 for "alpine:3.20", REPO@sha256:… for a
// digest reference. go-containerregistry spells Docker Hub
// "index.docker.io"; this returns "docker.io". A reference
// go-containerregistry cannot parse is returned as it is.
func NormalizedName(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ref
	}
	reg := r.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	n := reg + "/" + r.Context().RepositoryStr()
	switch t := r.(type) {
	case name.Tag:
		return n + ":" + t.TagStr()
	case name.Digest:
		return n + "@" + t.DigestStr()
	}
	return n
}
