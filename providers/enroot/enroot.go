// Package enroot builds Enroot squashfs images (.sqsh) from OCI images, as
// `enroot import docker://REF` makes them, without enroot:
//
//   - the flattened root file system with /dev emptied when the image has
//     one (enroot extracts the layers with --exclude 'dev/*') and without
//     extended attributes (its tar extracts none);
//   - the permission fix enroot applies after extracting (common::fixperms:
//     `chmod -R u+rX`, then `find -maxdepth 15 -type d -exec chmod u+w` over
//     the directory of layer directories, so 14 levels of the image);
//   - enroot's configuration layer (docker::configure writes it into a
//     layer directory of its own, the top of the overlay that
//     enroot-mksquashovlfs squashes): /etc/fstab (one bind mount per
//     VOLUME), /etc/environment (the ENV lines), /etc/rc (labels as
//     comments, cd to WORKDIR, exec ENTRYPOINT/CMD quoted like bash's
//     ${x[@]@Q}), /etc/rc.local, and the WORKDIR directory. Its directories
//     (etc and every component of WORKDIR) are 0755 and, as overlay upper
//     directories, replace the metadata of the image's directories there,
//     and replace a symlink or file at their path: an image whose /etc is a
//     symlink gets a real /etc holding the four files;
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

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/rootfs"
	"github.com/cachectl/cachectl/providers/squashfs"
)

// DefaultCompression is enroot's default squashfs compressor.
const DefaultCompression = "lzo"

// Builder makes enroot .sqsh files. It implements providers.Builder.
type Builder struct {
	sq squashfs.Settings
}

// New returns a Builder. By default, as enroot: every file owned by root
// (-all-root) and data blocks stored uncompressed (-noD: fast to start,
// larger files); squashfs.WithDataCompression(true) compresses them.
func New(opts ...squashfs.Option) *Builder {
	defaults := []squashfs.Option{squashfs.WithAllRoot(true), squashfs.WithDataCompression(false)}
	return &Builder{sq: squashfs.NewSettings(append(defaults, opts...)...)}
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
	now := b.sq.Now()
	file := func(p, content string) rootfs.Entry {
		return rootfs.Entry{Path: p, Type: tar.TypeReg, Mode: 0o644, ModTime: now, Content: []byte(content)}
	}
	dir := func(p string) rootfs.Entry {
		return rootfs.Entry{Path: p, Type: tar.TypeDir, Mode: 0o755, ModTime: now}
	}
	topts := rootfs.TarOptions{
		AllRoot: true,
		// enroot's permission fix, and its tar's loss of extended
		// attributes, applied to every header as it is written (no second
		// decode and encode of the stream).
		EditHeader: func(h *tar.Header) { fixPerms(h); dropXattrs(h) },
		// The configuration layer, above the image's layers.
		Extra: []rootfs.Entry{
			dir("etc"),
			file("etc/fstab", files.Fstab),
			file("etc/environment", files.Environment),
			file("etc/rc", files.RC),
			file("etc/rc.local", files.RCLocal),
		},
	}
	if tree.IsDir("dev") {
		topts.EmptyDirs = []string{"dev"}
	}
	if wd := workdirPath(files.Workdir); wd != "" {
		// mkdir -p "${rootfs}${workdir}" in the configuration layer.
		for i := range wd {
			if wd[i] == '/' {
				topts.Extra = append(topts.Extra, dir(wd[:i]))
			}
		}
		topts.Extra = append(topts.Extra, dir(wd))
	}
	comp := req.Compression
	if comp == "" {
		comp = DefaultCompression
	}
	sqOpts := b.sq.Options
	sqOpts.Compression, sqOpts.Processors = comp, req.Processors
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

// fixPermsDepth is how deep common::fixperms makes directories writable:
// `find . -maxdepth 15` from the directory that holds the layer
// directories, so 14 levels inside the image (Enroot 4.1.2, common.sh).
const fixPermsDepth = 14

// dropXattrs removes the extended attributes of a header: enroot extracts
// layers with GNU tar without --xattrs, so its images have none.
func dropXattrs(h *tar.Header) {
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			delete(h.PAXRecords, k)
		}
	}
}

// fixPerms applies enroot's common::fixperms to a header: `chmod -R u+rX`
// (symlinks untouched), then u+w on directories at most fixPermsDepth
// levels deep.
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
		if strings.Count(name, "/") < fixPermsDepth {
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
