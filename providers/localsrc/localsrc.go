// Package localsrc reads images from local sources instead of a registry:
// OCI image layout directories, OCI archives (a tar of a layout, as `podman
// save --format=oci-archive` writes it) and docker archives (`docker save`,
// classic or with an OCI layout inside). It never touches the network and
// never extracts anything: archives are indexed once (tar headers only) and
// their members read in place.
//
// A name selects an image in a source and a platform an image of an index;
// the result is the digest of what the name selects and the image manifest
// for the platform. A docker archive, which has no manifest, is converted
// to an OCI manifest deterministically (config bytes kept, layers kept as
// they are in the archive, uncompressed layer tars named by their
// diff_ids), so the same archive always resolves to the same digest and a
// changed one to another. Manifests, indexes and configs are verified
// against their digests when read; layers are not read to resolve, and
// their readers (OpenBlob) do not verify them: the caller hashes what it
// copies (the blob store does).
//
// ImageSource is the source.Source of local references: given the spec's
// local references as plain Refs (kind, absolute path, image name), it
// resolves them and copies their blobs, verified, into the blob store.
package localsrc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/image"
)

// Kind names a kind of local image source. The values are the prefixes of
// local image references (oci-layout:DIR[:REF], oci-archive:FILE[:REF],
// docker-archive:FILE[:REPO:TAG]).
type Kind string

// The kinds of local sources.
const (
	// OCILayout is a directory holding an OCI image layout (oci-layout,
	// index.json, blobs/).
	OCILayout Kind = "oci-layout"
	// OCIArchive is an uncompressed tar of an OCI image layout.
	OCIArchive Kind = "oci-archive"
	// DockerArchive is the uncompressed tar `docker save` writes
	// (manifest.json, image configs, layer tars).
	DockerArchive Kind = "docker-archive"
)

// maxSmallBlob bounds manifests, indexes and configs read into memory.
const maxSmallBlob = 32 << 20

// Source is an open local source. Its methods are safe for concurrent use.
type Source struct {
	kind Kind
	path string
	fs   fileSystem

	mu sync.Mutex
	// paths of the blobs of converted docker archive images, by digest.
	dockerPaths map[v1.Hash]string
}

// Open opens the source of kind at path: a directory for OCILayout, a tar
// file for the archives, which Open indexes (one pass over the headers; a
// truncated or compressed archive fails here). Nothing else is read yet.
func Open(kind Kind, path string) (*Source, error) {
	var fsys fileSystem
	var err error
	switch kind {
	case OCILayout:
		fsys, err = openDir(path)
	case OCIArchive, DockerArchive:
		fsys, err = openTar(path)
	default:
		err = fmt.Errorf("unknown local source kind %q", kind)
	}
	if err != nil {
		return nil, err
	}
	return &Source{kind: kind, path: path, fs: fsys, dockerPaths: map[v1.Hash]string{}}, nil
}

// Kind returns the kind the source was opened as.
func (s *Source) Kind() Kind { return s.kind }

// Path returns the path the source was opened from.
func (s *Source) Path() string { return s.path }

// Close releases the source (the open archive or directory).
func (s *Source) Close() error { return s.fs.close() }

// Image is an image Resolve selected in a source for a platform.
type Image struct {
	// Digest is the digest of what the name selects: an image manifest or
	// an index (for a docker archive, of the converted manifest).
	Digest v1.Hash
	// Manifest is the digest of the image manifest for the platform; equal
	// to Digest unless the name selects an index.
	Manifest v1.Hash
	// Parsed is that image manifest.
	Parsed *v1.Manifest
	// Size is the sum of the config and layer sizes.
	Size int64
}

// Resolve selects the image named image ("" when the source holds exactly
// one; for OCI sources the org.opencontainers.image.ref.name annotation,
// for docker archives a REPO:TAG, compared normalized) for platform (the
// zero platform is linux on this machine's architecture). Index entries
// are picked with the registry's rules (entries without a platform or for
// "unknown" are skipped; arm64 without a variant is v8), and a
// single-platform image for another platform is refused. Errors say what
// the source holds.
func (s *Source) Resolve(image string, platform v1.Platform) (Image, error) {
	if platform.OS == "" {
		platform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	if s.kind == DockerArchive {
		return s.resolveDocker(image, platform)
	}
	return s.resolveOCI(image, platform)
}

// Manifest returns the raw and parsed image manifest h, as Resolve found
// it for image: for a docker archive the converted manifest of image,
// which must still be h; for OCI sources any manifest blob of the source.
// It fails, saying to plan again, when the source no longer holds h.
func (s *Source) Manifest(image string, h v1.Hash) ([]byte, *v1.Manifest, error) {
	if s.kind == DockerArchive {
		conv, err := s.convertDocker(image)
		if err != nil {
			return nil, nil, err
		}
		if conv.digest != h {
			return nil, nil, fmt.Errorf("the archive changed since the plan: its image is now %s, not %s; plan again", conv.digest, h)
		}
		return conv.raw, conv.manifest, nil
	}
	if _, err := s.layoutIndex(); err != nil {
		return nil, nil, err
	}
	raw, err := s.readBlob(v1.Descriptor{Digest: h, Size: -1})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("manifest %s is no longer in %s (the source changed since the plan); plan again", h, s.path)
		}
		return nil, nil, err
	}
	m, err := parseManifest(raw, h)
	if err != nil {
		return nil, nil, err
	}
	return raw, m, nil
}

// OpenBlob opens the config or layer blob h for reading and returns its
// size. For OCI sources it is blobs/ALG/HEX; for a docker archive the file
// that holds it in an image Resolve or Manifest converted. The bytes are
// not verified: the caller hashes what it reads.
func (s *Source) OpenBlob(h v1.Hash) (io.ReadCloser, int64, error) {
	s.mu.Lock()
	p, ok := s.dockerPaths[h]
	s.mu.Unlock()
	if !ok {
		p = image.LayoutBlobPath(h)
	}
	rc, size, err := s.fs.open(p)
	if err != nil {
		return nil, 0, fmt.Errorf("blob %s: %w", h, err)
	}
	return rc, size, nil
}
