// Package bundle writes, reads and verifies cachectl transfer bundles: one
// uncompressed tar that carries every image a spec needs to an air-gapped
// cluster.
//
// A bundle is an OCI image layout in a tar (what `podman save
// --format=oci-archive` writes, so OCI tools can read it) plus two cachectl
// members. Its members, in order:
//
//	oci-layout             {"imageLayoutVersion":"1.0.0"}
//	index.json             OCI index: one descriptor per reference and platform
//	cachectl-bundle.json   the bundle index (Meta): reference + platform →
//	                       the digest the tag pointed at and the image
//	                       manifest; every blob the images need; the base
//	                       bundle of an incremental bundle
//	blobs/sha256/<hex>...  each manifest, config and layer once
//	SHA256SUMS             sha256 of every other member (sha256sum format);
//	                       always the last member
//
// The bundle's ID is the sha256 of its SHA256SUMS member: it names the exact
// content, and incremental bundles record the ID of the bundle they extend.
//
// An incremental bundle (WriteOptions.Base) lists every image, like a full
// one, but leaves out the blobs that its base bundle's images need. Its
// images can be used when the left-out blobs are already in the blob store
// (the base was applied) or when the base bundle is given as well.
//
// Readers index the member offsets in one pass over the tar headers and
// then read members in place (the file is uncompressed); nothing is
// extracted. ImageSource is the source.Source of bundles: plan and apply
// resolve references in a bundle's index and copy its blobs, verified,
// into the blob store.
package bundle

import (
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// FormatVersion is the version of the bundle format this package writes
// and reads.
const FormatVersion = 1

// Member names beside the OCI image layout's (image.LayoutFile,
// image.IndexFile, image.LayoutBlobPath).
const (
	MetaFile      = "cachectl-bundle.json"
	ChecksumsFile = "SHA256SUMS"
	blobPrefix    = "blobs/sha256/"
)

// AnnotationRef annotates each descriptor of index.json with the reference
// exactly as written in the spec; image.RefNameAnnotation gives its
// normalized name (docker.io/library/alpine:3.20), as Podman writes it.
const AnnotationRef = "io.cachectl.bundle.ref"

// ErrTruncated is returned (wrapped) for a bundle that ends early: a member
// runs past the end of the file, or the checksum manifest is missing.
var ErrTruncated = errors.New("bundle is truncated")

// ErrCorrupt is returned (wrapped) for a bundle whose content does not match
// its checksums or whose index is inconsistent.
var ErrCorrupt = errors.New("bundle is corrupt")

// ErrNotFound is returned (wrapped) when a blob or image is not in a bundle.
var ErrNotFound = errors.New("not in the bundle")

// Image is one reference, resolved for one platform.
type Image struct {
	// Ref is the reference as written in the spec.
	Ref string `json:"ref"`
	// Name is the normalized name (docker.io/library/alpine:3.20).
	Name string `json:"name,omitempty"`
	// Platform is os/arch[/variant].
	Platform string `json:"platform"`
	// Digest is what the reference (tag) pointed at: an index or a manifest.
	Digest string `json:"digest"`
	// Manifest is the platform's image manifest.
	Manifest string `json:"manifest"`
	// MediaType of Manifest.
	MediaType types.MediaType `json:"media_type"`
	// ManifestSize is the size of the manifest blob.
	ManifestSize int64 `json:"manifest_size"`
	// Size is the sum of the config and layer sizes.
	Size int64 `json:"size"`
}

// Key identifies an image in a bundle: reference and platform.
func (i Image) Key() string { return i.Ref + "\x00" + i.Platform }

// BlobInfo is one blob that the bundle's images need.
type BlobInfo struct {
	Digest    string          `json:"digest"`
	Size      int64           `json:"size"`
	MediaType types.MediaType `json:"media_type,omitempty"`
	// Included is false for a blob an incremental bundle leaves out because
	// its base has it.
	Included bool `json:"included"`
}

// BaseRef names the bundle an incremental bundle extends.
type BaseRef struct {
	// ID is the base bundle's ID (sha256 of its SHA256SUMS).
	ID string `json:"id"`
	// File is the base bundle's file name when it was written (a hint).
	File string `json:"file"`
}

// Meta is the bundle index, member cachectl-bundle.json.
type Meta struct {
	FormatVersion   int       `json:"format_version"`
	Created         time.Time `json:"created"`
	CachectlVersion string    `json:"cachectl_version,omitempty"`
	// Base is set for an incremental bundle.
	Base *BaseRef `json:"base,omitempty"`
	// Images, sorted by reference then platform.
	Images []Image `json:"images"`
	// Blobs every image needs (manifests, configs, layers), sorted by digest.
	Blobs []BlobInfo `json:"blobs"`
}

// Incremental reports whether the bundle leaves blobs to a base bundle.
func (m *Meta) Incremental() bool { return m.Base != nil }

// blobOfMember returns the digest of a blobs/sha256/<hex> member name.
func blobOfMember(name string) (v1.Hash, bool) {
	hex, ok := strings.CutPrefix(name, blobPrefix)
	if !ok {
		return v1.Hash{}, false
	}
	h := v1.Hash{Algorithm: "sha256", Hex: hex}
	return h, validHex(hex)
}

func validHex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}
