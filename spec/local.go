package spec

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// LocalKind names a kind of local image source.
type LocalKind string

// The local image sources an image reference may name instead of a registry.
const (
	// LocalOCILayout is a directory holding an OCI image layout
	// (oci-layout, index.json, blobs/), as `skopeo copy ... oci:DIR:REF` or
	// `umoci` write it.
	LocalOCILayout LocalKind = "oci-layout"
	// LocalOCIArchive is a tar of an OCI image layout, as `podman save
	// --format=oci-archive` writes it.
	LocalOCIArchive LocalKind = "oci-archive"
	// LocalDockerArchive is the tar `docker save` writes (manifest.json,
	// image configs, layer tars).
	LocalDockerArchive LocalKind = "docker-archive"
)

// LocalKinds lists the local source kinds, in the order docs list them.
var LocalKinds = []LocalKind{LocalOCILayout, LocalOCIArchive, LocalDockerArchive}

// LocalRef is a parsed local image source reference:
//
//	oci-layout:PATH[:REF]
//	oci-archive:PATH[:REF]
//	docker-archive:PATH[:REPO:TAG]
//
// As in skopeo (containers/image), PATH ends at the first ":" after the
// kind: paths containing ":" cannot be named.
type LocalRef struct {
	Kind LocalKind
	// Path as written (may be relative).
	Path string
	// AbsPath is Path resolved against the directory of the spec file that
	// names the image (set by Load; ParseLocalRef sets it only for absolute
	// paths).
	AbsPath string
	// Image selects the image in the source and names it: for OCI layouts
	// and archives the org.opencontainers.image.ref.name annotation, for
	// docker archives a REPO:TAG of manifest.json's RepoTags. "" when the
	// reference names none (the source must then hold exactly one image).
	Image string
}

// String formats the reference as written (with Path, not AbsPath).
func (r *LocalRef) String() string {
	s := string(r.Kind) + ":" + r.Path
	if r.Image != "" {
		s += ":" + r.Image
	}
	return s
}

// Resolve returns a copy of r whose AbsPath is Path resolved against dir
// (when Path is relative) and cleaned.
func (r *LocalRef) Resolve(dir string) *LocalRef {
	c := *r
	p := r.Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	c.AbsPath = filepath.Clean(p)
	return &c
}

// ociRefNameRE is the grammar of the org.opencontainers.image.ref.name
// annotation (OCI image spec, annotations.md), which skopeo enforces too.
var ociRefNameRE = regexp.MustCompile(`^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$`)

// ValidOCIRefName reports whether s matches the grammar of the
// org.opencontainers.image.ref.name annotation.
func ValidOCIRefName(s string) bool { return ociRefNameRE.MatchString(s) }

// IsLocalRef reports whether s names a local source (starts with one of
// the LocalKinds and a colon). It does not check the rest.
func IsLocalRef(s string) bool {
	_, ok := localKind(s)
	return ok
}

func localKind(s string) (LocalKind, bool) {
	for _, k := range LocalKinds {
		if strings.HasPrefix(s, string(k)+":") {
			return k, true
		}
	}
	return "", false
}

// unsupportedTransports are containers/image transport names that people
// may write out of habit; they get a pointed error instead of a confusing
// registry-reference one.
var unsupportedTransports = []string{"docker", "oci", "dir", "docker-daemon", "containers-storage", "ostree", "sif", "tarball", "docker-image"}

// transportHint returns an explanation when s starts with a transport
// prefix cachectl does not read, else "".
func transportHint(s string) string {
	for _, t := range unsupportedTransports {
		if strings.HasPrefix(s, t+":") {
			if t == "docker" && strings.HasPrefix(s, "docker://") {
				return fmt.Sprintf("write registry references without the \"docker://\" prefix (%q)", strings.TrimPrefix(s, "docker://"))
			}
			hint := ""
			if t == "oci" {
				hint = " (an OCI layout directory is oci-layout:DIR[:REF])"
			}
			return fmt.Sprintf("%q is not a supported source; local sources are oci-layout:DIR[:REF], oci-archive:FILE[:REF] and docker-archive:FILE[:REPO:TAG]%s", t+":", hint)
		}
	}
	return ""
}

// ParseLocalRef parses a local source reference. It needs no file system:
// the path is checked for shape only (not empty, no control characters, an
// archive not ending in "/"). REF must match the OCI ref.name grammar; a
// docker-archive REPO:TAG must be a strict image reference with a tag and
// without a digest.
func ParseLocalRef(s string) (*LocalRef, error) {
	k, ok := localKind(s)
	if !ok {
		return nil, fmt.Errorf("%q does not start with oci-layout:, oci-archive: or docker-archive:", s)
	}
	rest := s[len(k)+1:]
	r := &LocalRef{Kind: k}
	r.Path, r.Image, _ = strings.Cut(rest, ":")
	what := "directory"
	if k != LocalOCILayout {
		what = "file"
	}
	switch {
	case r.Path == "":
		return nil, fmt.Errorf("the %s path after %q is empty", what, string(k)+":")
	case strings.TrimSpace(r.Path) != r.Path:
		return nil, fmt.Errorf("the path %q starts or ends with white space", r.Path)
	case k != LocalOCILayout && strings.HasSuffix(r.Path, "/"):
		return nil, fmt.Errorf("the path %q ends with \"/\", but %s: names a file (a tar archive)", r.Path, k)
	}
	for _, c := range r.Path {
		if c < 0x20 || c == 0x7f {
			return nil, fmt.Errorf("the path %q contains a control character", r.Path)
		}
	}
	if strings.Contains(rest, ":") && r.Image == "" {
		return nil, fmt.Errorf("the image name after %q is empty; leave out the trailing \":\"", string(k)+":"+r.Path+":")
	}
	if r.Image != "" {
		switch k {
		case LocalDockerArchive:
			info, err := ParseRef(r.Image)
			if err != nil {
				return nil, fmt.Errorf("invalid image name %q (docker-archive:FILE:REPO:TAG picks from the archive's RepoTags): %w", r.Image, err)
			}
			if info.Digest != "" {
				return nil, fmt.Errorf("invalid image name %q: a docker archive names its images REPO:TAG, not by digest", r.Image)
			}
			if info.Tag == "" {
				return nil, fmt.Errorf("invalid image name %q: a docker archive names its images REPO:TAG; add the tag", r.Image)
			}
		default:
			if !ValidOCIRefName(r.Image) {
				return nil, fmt.Errorf("invalid image name %q: an OCI ref.name is letters and digits separated by one of - . _ : @ + (or --), in components separated by /", r.Image)
			}
		}
	}
	if filepath.IsAbs(r.Path) {
		r.AbsPath = filepath.Clean(r.Path)
	}
	return r, nil
}
