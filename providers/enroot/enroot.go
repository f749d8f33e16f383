// Package enroot builds Enroot squashfs images (.sqsh) from OCI images, as
// `enroot import docker://REF` makes them, without enroot:
//
//   - the flattened root file system with /dev emptied (enroot extracts the
//     layers with --exclude 'dev/*');
//   - the permission fix enroot applies after extracting (common::fixperms:
//     `chmod -R u+rX`, and u+w on directories up to four levels deep);
//   - /etc/fstab (one bind mount per VOLUME), /etc/environment (the ENV
//     lines), /etc/rc (labels as comments, cd to WORKDIR, exec ENTRYPOINT/CMD
//     quoted like bash's ${x[@]@Q}), /etc/rc.local, and the WORKDIR directory
//     when missing;
//   - `mksquashfs -all-root -comp lzo -noD` (enroot's default
//     ENROOT_SQUASH_OPTIONS); BuildRequest.Compression replaces lzo.
package enroot

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/rootfs"
	"github.com/cachectl/cachectl/providers/squashfs"
)

// DefaultCompression is enroot's default squashfs compressor.
const DefaultCompression = "lzo"

// Builder makes enroot .sqsh files. It implements providers.Builder.
type Builder struct {
	compressData bool
	mksquashfs   string
	mem          string
	now          func() time.Time
	stats        *squashfs.ProcessStats
}

// Option configures a Builder.
type Option func(*Builder)

// WithDataCompression compresses data blocks too (no -noD). Default false,
// as enroot (fast to start, larger files).
func WithDataCompression(on bool) Option { return func(b *Builder) { b.compressData = on } }

// WithMksquashfs sets the mksquashfs program. Default "mksquashfs" from PATH.
func WithMksquashfs(path string) Option { return func(b *Builder) { b.mksquashfs = path } }

// WithMksquashfsMem bounds mksquashfs's caches (-mem). Default
// squashfs.DefaultMem; "" leaves mksquashfs's own default (a quarter of
// physical memory). The output does not depend on it.
func WithMksquashfsMem(size string) Option { return func(b *Builder) { b.mem = size } }

// WithClock sets the clock used for the generated files' times. Default time.Now.
func WithClock(now func() time.Time) Option { return func(b *Builder) { b.now = now } }

// WithStats makes Build record mksquashfs's resource usage in st.
func WithStats(st *squashfs.ProcessStats) Option { return func(b *Builder) { b.stats = st } }

// New returns a Builder.
func New(opts ...Option) *Builder {
	b := &Builder{now: time.Now, mem: squashfs.DefaultMem}
	for _, o := range opts {
		o(b)
	}
	return b
}

var _ providers.Builder = (*Builder)(nil)

// Format returns "sqsh".
func (*Builder) Format() string { return "sqsh" }

// Version returns the output format revision.
func (*Builder) Version() string { return "1" }

// Build flattens img and writes its .sqsh to out (which must not exist). On
// error it removes out.
func (b *Builder) Build(ctx context.Context, img v1.Image, req providers.BuildRequest, out string) error {
	tree, err := rootfs.Flatten(ctx, img, rootfs.Options{})
	if err != nil {
		return fmt.Errorf("enroot: flatten: %w", err)
	}
	return b.BuildTree(ctx, tree, img, req, out)
}

// BuildTree writes the .sqsh of img to out from tree, the already flattened
// img; a tree can serve several builders.
func (b *Builder) BuildTree(ctx context.Context, tree *rootfs.Tree, img v1.Image, req providers.BuildRequest, out string) error {
	raw, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("enroot: read image config: %w", err)
	}
	files, err := Configure(raw)
	if err != nil {
		return err
	}
	now := b.now()
	file := func(p, content string) rootfs.Entry {
		return rootfs.Entry{Path: p, Type: tar.TypeReg, Mode: 0o644, ModTime: now, Content: []byte(content)}
	}
	topts := rootfs.TarOptions{
		EmptyDirs: []string{"dev"},
		AllRoot:   true,
		// enroot's permission fix, applied to every header as it is written
		// (no second decode and encode of the stream).
		EditHeader: func(h *tar.Header) { fixPerms(h) },
		Extra: []rootfs.Entry{
			file("etc/fstab", files.Fstab),
			file("etc/environment", files.Environment),
			file("etc/rc", files.RC),
			file("etc/rc.local", files.RCLocal),
		},
	}
	if wd := workdirPath(files.Workdir); wd != "" {
		topts.IfMissing = []rootfs.Entry{{Path: wd, Type: tar.TypeDir, Mode: 0o755, ModTime: now}}
	}
	comp := req.Compression
	if comp == "" {
		comp = DefaultCompression
	}
	sqOpts := squashfs.Options{
		Compression:       comp,
		AllRoot:           true,
		NoDataCompression: !b.compressData,
		Processors:        req.Processors,
		Mem:               b.mem,
		Mksquashfs:        b.mksquashfs,
		Stats:             b.stats,
	}
	produce := func(ctx context.Context, w io.Writer) error {
		return tree.WriteTar(ctx, req.TarProgress(w, tree), topts)
	}
	if err := squashfs.Create(ctx, out, sqOpts, produce); err != nil {
		return fmt.Errorf("enroot: %w", err)
	}
	return nil
}

// workdirPath returns the relative path `mkdir -p "${rootfs}${workdir}"`
// creates, or "" when there is nothing to create (root, relative or
// escaping paths).
func workdirPath(wd string) string {
	if !strings.HasPrefix(wd, "/") {
		return ""
	}
	p := strings.TrimPrefix(path.Clean(wd), "/")
	if p == "" || p == "." || strings.HasPrefix(p, "..") {
		return ""
	}
	return p
}

// fixPerms applies enroot's common::fixperms to a header: `chmod -R u+rX`
// (symlinks untouched), then u+w on directories at most four levels deep.
func fixPerms(h *tar.Header) bool {
	switch h.Typeflag {
	case tar.TypeSymlink, tar.TypeLink:
		return true
	}
	h.Mode |= 0o400
	if h.Typeflag == tar.TypeDir || h.Mode&0o111 != 0 {
		h.Mode |= 0o100
	}
	if h.Typeflag == tar.TypeDir {
		name := strings.Trim(strings.TrimPrefix(h.Name, "./"), "/")
		if strings.Count(name, "/") < 4 {
			h.Mode |= 0o200
		}
	}
	return true
}

// Verify checks that path is a squashfs 4.0 image.
func (*Builder) Verify(ctx context.Context, path string) error {
	if _, err := squashfs.VerifyFile(path, 0); err != nil {
		return fmt.Errorf("enroot: %s: %w", path, err)
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("enroot: %w", err)
	}
	return ctx.Err()
}
