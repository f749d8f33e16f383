// Package apptainer builds SIF files from OCI images as Apptainer 1.5.3
// (`apptainer build x.sif docker://REF`) and SingularityCE 4.5.1
// (`singularity build`) make them, without either runtime:
//
//   - SIF descriptors, in order: the definition ("bootstrap: docker\nfrom:
//     REF\n\n"), inspect-metadata.json and oci-config.json (generic JSON),
//     then the squashfs root file system (FsSquash, PartPrimSys, the image's
//     architecture); launch script "#!/usr/bin/env run-singularity\n".
//   - The root file system is the flattened image plus /.singularity.d:
//     the runtime's own action scripts, env scripts (01-base.sh,
//     90-environment.sh, 94-appsbase.sh, 95-apps.sh, 99-base.sh,
//     99-runtimevars.sh) and startscript (Runtime), and the per-image
//     env/10-docker2singularity.sh from ENV, runscript from ENTRYPOINT/CMD,
//     labels.json (image labels under the build labels) and Singularity;
//     the /singularity, /.run, /.exec, /.shell, /.test and /environment
//     symlinks, the directories /dev /proc /sys /tmp /var/tmp /home /root
//     /etc /.singularity.d/libs, empty /etc/hosts and /etc/resolv.conf;
//     where the image already has such a path, each is placed (or kept)
//     as the runtime does, see layout.go.
//   - mksquashfs -noappend -comp gzip (the runtimes' defaults).
//
// Owners: the runtimes pass -all-root when they build unprivileged and keep
// the image's owners when run as root. The squashfs here is made from a tar
// stream, so owners can be kept without privileges: by default they are
// (the output equals a root build); WithAllRoot(true) gives the unprivileged
// variant.
package apptainer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/rootfs"
	"github.com/cachectl/cachectl/providers/squashfs"
)

// DefaultCompression is the squashfs compressor Apptainer uses.
const DefaultCompression = "gzip"

// Builder makes the SIF files of one Runtime. It implements
// providers.Builder, providers.TreeBuilder and providers.StreamBuilder.
type Builder struct {
	rt *Runtime
	sq squashfs.Settings
}

// New returns a Builder of rt's SIF files (Apptainer or SingularityCE).
// Owners are kept (the output equals a build as root) unless
// squashfs.WithAllRoot(true), as an unprivileged build makes them.
func New(rt *Runtime, opts ...squashfs.Option) *Builder {
	return &Builder{rt: rt, sq: squashfs.NewSettings(opts...)}
}

var _ providers.StreamBuilder = (*Builder)(nil)

// Format returns "sif".
func (*Builder) Format() string { return "sif" }

// Version returns the output format revision and the runtime release
// followed ("2+apptainer-1.5.3"); a change makes plan rebuild the SIFs.
func (b *Builder) Version() string { return "2+" + b.rt.Name + "-" + b.rt.Version }

// Runtime returns the runtime whose builds b reproduces.
func (b *Builder) Runtime() *Runtime { return b.rt }

// Build flattens img and writes its SIF to out (which must not exist),
// writing the root file system while it reads the layers (BuildShared). On
// error it removes out.
func (b *Builder) Build(ctx context.Context, img v1.Image, req providers.BuildRequest, out string) error {
	return b.BuildShared(ctx, rootfs.NewShared(rootfs.Options{}, 1).Member(), img, req, out)
}

// BuildTree writes the SIF of img to out from tree, the already flattened
// img; a tree can serve several builders.
func (b *Builder) BuildTree(ctx context.Context, tree *rootfs.Tree, img v1.Image, req providers.BuildRequest, out string) error {
	root := tree.Root()
	return b.build(ctx, img, req, out, &root, func(meta *Meta, now time.Time) (squashfs.TarWriter, error) {
		extra, ifMissing, err := meta.layout(treeIndex{tree}, now)
		if err != nil {
			return nil, err
		}
		topts := b.tarOptions(extra, ifMissing)
		return func(ctx context.Context, w io.Writer) error {
			return tree.WriteTar(ctx, req.TarProgress(w, tree), topts)
		}, nil
	})
}

// BuildShared writes the SIF of img to out through m, a place in a
// flattening shared with the other builds of img (rootfs.Shared): the
// image's files go to mksquashfs as the layers are read, the runtime's
// files (whose places depend on the whole tree) at the end. Where the
// image's own files would be replaced by the runtime's, they are held
// back; if one written early turns out to be replaced after all, the SIF
// is built again from the tree.
func (b *Builder) BuildShared(ctx context.Context, m *rootfs.Member, img v1.Image, req providers.BuildRequest, out string) error {
	defer m.Leave(ctx)
	err := b.build(ctx, img, req, out, nil, func(meta *Meta, now time.Time) (squashfs.TarWriter, error) {
		return func(ctx context.Context, w io.Writer) error {
			return m.Write(ctx, img, &rootfs.Consumer{
				W: req.TarProgressOf(w, img), AllRoot: b.sq.AllRoot, Hold: holdsRuntimeFile,
				Finish: func(tree *rootfs.Tree) (rootfs.TarOptions, error) {
					if r := tree.Root(); !b.defaultRoot(r) {
						// mksquashfs got the default root: build again
						// from the tree, with the image's.
						return rootfs.TarOptions{}, fmt.Errorf("%w: the image's root directory is %04o", rootfs.ErrStreamConflict, r.Mode)
					}
					extra, ifMissing, err := meta.layout(treeIndex{tree}, now)
					return b.tarOptions(extra, ifMissing), err
				},
			})
		}, nil
	})
	if errors.Is(err, rootfs.ErrStreamConflict) && m.Tree() != nil {
		return b.BuildTree(ctx, m.Tree(), img, req, out)
	}
	return err
}

// defaultRoot reports whether root, the image's root directory, has the
// mode mksquashfs gives it without a root entry (0755). Its owner stays
// root: `mksquashfs -tar` 4.5.1 ignores -root-uid and -root-gid.
func (b *Builder) defaultRoot(root rootfs.Entry) bool { return root.Mode == 0o755 }

// holdsRuntimeFile reports whether the runtime may replace the image's
// file at p: /.singularity.d, and hosts and resolv.conf wherever /etc
// leads.
func holdsRuntimeFile(p string) bool {
	if strings.HasPrefix(p, ".singularity.d/") {
		return true
	}
	base := p[strings.LastIndexByte(p, '/')+1:]
	return base == "hosts" || base == "resolv.conf"
}

func (b *Builder) tarOptions(extra, ifMissing []rootfs.Entry) rootfs.TarOptions {
	return rootfs.TarOptions{Extra: extra, IfMissing: ifMissing, AllRoot: b.sq.AllRoot, ParentSymlinks: rootfs.ResolveParentSymlinks, ImplicitDirMode: 0o775}
}

// build writes the SIF of img to out; tarStream returns what writes its
// root file system, given the runtime's metadata. root, when known, is the
// image's root directory (a layer's "./" entry), whose mode Apptainer
// 1.5.3 and SingularityCE 4.5.1 keep; nil gives mksquashfs's 0755. The
// root's owner is root either way (`mksquashfs -tar` 4.5.1 ignores
// -root-uid and -root-gid; the runtimes keep a root entry's owner).
func (b *Builder) build(ctx context.Context, img v1.Image, req providers.BuildRequest, out string, root *rootfs.Entry, tarStream func(*Meta, time.Time) (squashfs.TarWriter, error)) (err error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("apptainer: read image config: %w", err)
	}
	src, err := source(img, cf, req)
	if err != nil {
		return err
	}
	now := b.sq.Now()
	meta, err := b.rt.Metadata(cf.Config, src, now)
	if err != nil {
		return err
	}
	objs := &sifObjects{
		deffile:       []byte(meta.Deffile),
		inspectJSON:   meta.InspectJSON,
		ociConfigJSON: meta.OCIConfigJSON,
		arch:          src.Arch,
	}
	off, err := objs.partitionOffset()
	if err != nil {
		return err
	}
	produce, err := tarStream(meta, now)
	if err != nil {
		return err
	}

	f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return fmt.Errorf("apptainer: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("apptainer: close %s: %w", out, cerr)
		}
		if err != nil {
			os.Remove(out)
		}
	}()

	comp := req.Compression
	if comp == "" {
		comp = DefaultCompression
	}
	sqOpts := b.sq.Options
	sqOpts.Compression, sqOpts.Processors, sqOpts.Offset = comp, req.Processors, off
	if root != nil {
		sqOpts.RootMode = os.FileMode(root.Mode & 0o777)
	}
	// The runtimes run mksquashfs on a directory, whose defaults differ
	// from -tar's: an NFS-exportable image, no tail ends in fragments.
	sqOpts.ExtraArgs = []string{"-exports", "-no-tailends"}
	if err := squashfs.Create(ctx, out, sqOpts, produce); err != nil {
		return fmt.Errorf("apptainer: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("apptainer: %w", err)
	}
	objs.partitionBytes = fi.Size() - off
	if _, err := squashfs.ReadSuperblock(f, off, fi.Size()); err != nil {
		return fmt.Errorf("apptainer: %w", err)
	}
	return objs.writeAround(f, off)
}

// source returns what the build labels record of img's source: the
// reference as written, its normalized name and resolved digest (the
// image's own manifest digest when req has none), and the architecture
// (the image's, else the requested platform's, else the host's).
func source(img v1.Image, cf *v1.ConfigFile, req providers.BuildRequest) (buildSource, error) {
	src := buildSource{Ref: req.Ref, Name: req.NormalizedName, Digest: req.Digest, Arch: cf.Architecture}
	if src.Ref == "" {
		src.Ref = req.NormalizedName
	}
	if src.Name == "" {
		src.Name = src.Ref
	}
	if src.Digest == "" {
		d, err := img.Digest()
		if err != nil {
			return src, fmt.Errorf("apptainer: image digest: %w", err)
		}
		src.Digest = d.String()
	}
	if src.Arch == "" {
		src.Arch = req.Platform.Architecture
	}
	if src.Arch == "" {
		src.Arch = runtime.GOARCH
	}
	return src, nil
}

// Meta is the generated metadata of one SIF.
type Meta struct {
	rt            *Runtime
	Deffile       string
	EnvScript     string
	Runscript     string
	LabelsJSON    []byte
	InspectJSON   []byte
	OCIConfigJSON []byte
}

// Metadata generates the per-image /.singularity.d files and the SIF's
// JSON objects for an image config built from src at time now.
func (rt *Runtime) Metadata(cfg v1.Config, src buildSource, now time.Time) (*Meta, error) {
	m := &Meta{rt: rt, Deffile: Deffile(src.Ref), EnvScript: EnvScript(cfg.Env)}
	var err error
	if m.Runscript, err = rt.Runscript(cfg.Entrypoint, cfg.Cmd); err != nil {
		return nil, err
	}
	labels := mergeLabels(cfg.Labels, rt.BuildLabels(src, now))
	if m.LabelsJSON, err = LabelsJSON(labels); err != nil {
		return nil, err
	}
	m.InspectJSON, err = InspectMetadata(inspectInput{
		Labels: labels, EnvScript: m.EnvScript, EnvironmentSh: rt.static("env/90-environment.sh"),
		Runscript: m.Runscript, Deffile: m.Deffile, Startscript: rt.static("startscript"),
	})
	if err != nil {
		return nil, err
	}
	if m.OCIConfigJSON, err = OCIConfigJSON(cfg); err != nil {
		return nil, err
	}
	return m, nil
}
