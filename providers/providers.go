// Package providers defines what a runtime's artifact builder does; the
// subpackages hold the shared machinery (registry, store, rootfs, squashfs)
// and one builder per format (apptainer, enroot, podman).
package providers

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/rootfs"
)

// BuildRequest describes the artifact a Builder makes.
type BuildRequest struct {
	// Ref is the reference as written in the spec ("determinedai/pytorch-ngc:0.38.1").
	Ref string
	// NormalizedName is the fully qualified name ("docker.io/determinedai/pytorch-ngc:0.38.1").
	NormalizedName string
	// Digest is the digest the reference resolved to ("sha256:…"; of the
	// index for a multi-platform image), "" when unknown.
	Digest string
	// Platform the image was resolved for.
	Platform v1.Platform
	// Compression is the squashfs compressor ("" = the format's default).
	Compression string
	// Processors bounds the CPU threads a conversion may use (0 = all).
	Processors int
	// TempDir is a scratch directory on the same file system as Out that the
	// builder may use and must clean up.
	TempDir string
}

// Builder makes one artifact format from an image whose blobs are local.
type Builder interface {
	// Format names the file format: "sif", "sqsh" or "oci-archive".
	Format() string
	// Version identifies the builder's output format revision; a change
	// makes plan replace artifacts built by an older version.
	Version() string
	// Build writes the artifact for img to out, a path that does not exist
	// yet. On error it leaves nothing at out.
	Build(ctx context.Context, img v1.Image, req BuildRequest, out string) error
	// Verify checks that the file at path is a well-formed artifact of this
	// format (used by import and -verify).
	Verify(ctx context.Context, path string) error
}

// TreeBuilder is a Builder that can also build from a root file system
// flattened once (rootfs.Flatten), so that one image needed as SIF and as
// .sqsh in the same apply is flattened once, not twice.
type TreeBuilder interface {
	Builder
	BuildTree(ctx context.Context, tree *rootfs.Tree, img v1.Image, req BuildRequest, out string) error
}
