// Package providers defines what a runtime's artifact builder does; the
// subpackages hold the shared machinery (registry, store, rootfs, squashfs)
// and one builder per format (apptainer, enroot, podman).
package providers

import (
	"context"
	"io"

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
	// Progress, when not nil, is told how far a squashfs builder (SIF,
	// .sqsh) is in writing the flattened root file system as the tar stream
	// mksquashfs reads: bytes written so far, and the estimated size of the
	// whole stream (TarSizeEstimate). Called from the builder's goroutine on
	// every write to the stream, so it must be cheap; wire it with
	// TarProgress.
	Progress func(written, total int64)
}

// TarProgress returns w, the writer a builder gives tree.WriteTar, wrapped
// so that it reports to req.Progress (w itself when Progress is nil).
func (req BuildRequest) TarProgress(w io.Writer, tree *rootfs.Tree) io.Writer {
	if req.Progress == nil {
		return w
	}
	files, dirs, bytes := tree.Stats()
	return &progressWriter{w: w, report: req.Progress, total: TarSizeEstimate(files, dirs, bytes)}
}

// TarProgressOf is TarProgress for a tree not flattened yet (a build that
// writes while it reads the layers, rootfs.Stream): the total is estimated
// from img's layers (TarSizeEstimateOf).
func (req BuildRequest) TarProgressOf(w io.Writer, img v1.Image) io.Writer {
	if req.Progress == nil {
		return w
	}
	return &progressWriter{w: w, report: req.Progress, total: TarSizeEstimateOf(img)}
}

// TarSizeEstimateOf estimates the tar stream of img's flattened tree from
// its layers' compressed sizes: twice their sum (gzip layers of binaries
// and text unpack to 1–3 times their size; later layers replace some of
// the earlier ones' files), plus room for the metadata files.
func TarSizeEstimateOf(img v1.Image) int64 {
	var n int64
	if m, err := img.Manifest(); err == nil {
		for _, l := range m.Layers {
			n += l.Size
		}
	}
	return 2*n + 32<<10
}

// TarSizeEstimate estimates the size of the tar stream of a flattened tree
// with files non-directories, dirs directories and bytes of file content:
// a 512-byte header per entry, content padded to 512 bytes (256 on
// average), the end-of-archive blocks, and room for the metadata files the
// builders add. Long names and extended attributes (PAX headers) can make
// the real stream somewhat longer.
func TarSizeEstimate(files, dirs int, bytes int64) int64 {
	return bytes + int64(files)*(512+256) + int64(dirs+1)*512 + 1024 + 32<<10
}

type progressWriter struct {
	w        io.Writer
	report   func(written, total int64)
	n, total int64
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	p.report(p.n, max(p.total, p.n))
	return n, err
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

// StreamBuilder is a TreeBuilder that can also build from a flattening
// that several builds of one image share and that is written while the
// layers are read, newest first (rootfs.Shared, rootfs.Stream): the SIF
// and the .sqsh of one image read its layers once, in one pass, as they
// download.
type StreamBuilder interface {
	TreeBuilder
	// BuildShared writes the artifact as Build does, through m, its place
	// in the shared flattening; it calls m.Write (or m.Leave, when it
	// fails before) exactly once.
	BuildShared(ctx context.Context, m *rootfs.Member, img v1.Image, req BuildRequest, out string) error
}

// TreeBuilder is a Builder that can also build from a root file system
// flattened once (rootfs.Flatten), so that one image needed as SIF and as
// .sqsh in the same apply is flattened once, not twice.
type TreeBuilder interface {
	Builder
	BuildTree(ctx context.Context, tree *rootfs.Tree, img v1.Image, req BuildRequest, out string) error
}
