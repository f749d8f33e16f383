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
	"errors"
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

// Builder makes enroot .sqsh files. It implements providers.Builder,
// providers.TreeBuilder and providers.StreamBuilder.
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

var _ providers.StreamBuilder = (*Builder)(nil)

// Format returns "sqsh".
func (*Builder) Format() string { return "sqsh" }

// Version returns the output format revision.
func (*Builder) Version() string { return "1" }

// Build flattens img and writes its .sqsh to out (which must not exist),
// writing the root file system while it reads the layers (BuildShared). On
// error it removes out.
func (b *Builder) Build(ctx context.Context, img v1.Image, req providers.BuildRequest, out string) error {
	return b.BuildShared(ctx, rootfs.NewShared(rootfs.Options{}, 1).Member(), img, req, out)
}

// BuildTree writes the .sqsh of img to out from tree, the already flattened
// img; a tree can serve several builders.
func (b *Builder) BuildTree(ctx context.Context, tree *rootfs.Tree, img v1.Image, req providers.BuildRequest, out string) error {
	cfg, err := b.configure(img)
	if err != nil {
		return err
	}
	topts := cfg.tarOptions(tree)
	return b.create(ctx, req, out, func(ctx context.Context, w io.Writer) error {
		return tree.WriteTar(ctx, req.TarProgress(w, tree), topts)
	})
}

// BuildShared writes the .sqsh of img to out through m, a place in a
// flattening shared with the other builds of img (rootfs.Shared): the
// image's files go to mksquashfs as the layers are read, the
// configuration layer and /dev (which depend on the whole tree) at the
// end. The image's files there are held back; if one written early turns
// out to be replaced after all, the .sqsh is built again from the tree.
func (b *Builder) BuildShared(ctx context.Context, m *rootfs.Member, img v1.Image, req providers.BuildRequest, out string) error {
	defer m.Leave(ctx)
	cfg, err := b.configure(img)
	if err != nil {
		return err
	}
	err = b.create(ctx, req, out, func(ctx context.Context, w io.Writer) error {
		return m.Write(ctx, img, &rootfs.Consumer{
			W: req.TarProgressOf(w, img), AllRoot: true, EditHeader: editHeader, Hold: cfg.holds,
			Finish: func(tree *rootfs.Tree) (rootfs.TarOptions, error) { return cfg.tarOptions(tree), nil },
		})
	})
	if errors.Is(err, rootfs.ErrStreamConflict) && m.Tree() != nil {
		return b.BuildTree(ctx, m.Tree(), img, req, out)
	}
	return err
}

// config is what enroot's configuration layer puts into an image.
type config struct {
	extra []rootfs.Entry
	// workdir is the WORKDIR path made in the configuration layer ("" for
	// none).
	workdir string
}

// configure reads img's configuration into enroot's configuration layer.
func (b *Builder) configure(img v1.Image) (*config, error) {
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("enroot: read image config: %w", err)
	}
	files, err := Configure(raw)
	if err != nil {
		return nil, err
	}
	now := b.sq.Now()
	file := func(p, content string) rootfs.Entry {
		return rootfs.Entry{Path: p, Type: tar.TypeReg, Mode: 0o644, ModTime: now, Content: []byte(content)}
	}
	dir := func(p string) rootfs.Entry {
		return rootfs.Entry{Path: p, Type: tar.TypeDir, Mode: 0o755, ModTime: now}
	}
	// The configuration layer, above the image's layers.
	c := &config{extra: []rootfs.Entry{
		dir("etc"),
		file("etc/fstab", files.Fstab),
		file("etc/environment", files.Environment),
		file("etc/rc", files.RC),
		file("etc/rc.local", files.RCLocal),
	}}
	if wd := workdirPath(files.Workdir); wd != "" {
		// mkdir -p "${rootfs}${workdir}" in the configuration layer.
		for i := range wd {
			if wd[i] == '/' {
				c.extra = append(c.extra, dir(wd[:i]))
			}
		}
		c.extra = append(c.extra, dir(wd))
		c.workdir = wd
	}
	return c, nil
}

// tarOptions are the TarOptions of c for tree: the configuration layer,
// /dev emptied when the image has one, enroot's permission fix and its
// tar's loss of extended attributes applied to every header as it is
// written (no second decode and encode of the stream).
func (c *config) tarOptions(tree *rootfs.Tree) rootfs.TarOptions {
	topts := rootfs.TarOptions{AllRoot: true, EditHeader: editHeader, Extra: c.extra}
	if tree.IsDir("dev") {
		topts.EmptyDirs = []string{"dev"}
	}
	return topts
}

// holds reports whether the configuration layer or the emptied /dev may
// replace the image's file at p.
func (c *config) holds(p string) bool {
	switch {
	case strings.HasPrefix(p, "dev/"):
		return true
	case p == "etc" || p == "etc/fstab" || p == "etc/environment" || p == "etc/rc" || p == "etc/rc.local":
		return true
	}
	return c.workdir != "" && (p == c.workdir || strings.HasPrefix(c.workdir, p+"/"))
}

func editHeader(h *tar.Header) { fixPerms(h); dropXattrs(h) }

// create runs mksquashfs with enroot's options on the tar stream of
// produce.
func (b *Builder) create(ctx context.Context, req providers.BuildRequest, out string, produce squashfs.TarWriter) error {
	comp := req.Compression
	if comp == "" {
		comp = DefaultCompression
	}
	sqOpts := b.sq.Options
	sqOpts.Compression, sqOpts.Processors = comp, req.Processors
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
