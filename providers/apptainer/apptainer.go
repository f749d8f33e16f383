// Package apptainer builds Apptainer/Singularity SIF files from OCI images,
// as `apptainer build x.sif docker://REF` makes them, without Apptainer:
//
//   - SIF descriptors, in order: the definition file ("bootstrap: docker\nfrom:
//     REF\n"), inspect-metadata.json and oci-config.json (generic JSON, sorted
//     by name as Apptainer adds them), then the squashfs root file system
//     (FsSquash, PartPrimSys, the image's architecture); launch script
//     "#!/usr/bin/env run-singularity\n".
//   - The root file system is the flattened image plus /.singularity.d
//     (actions/, env/ with 10-docker2singularity.sh from the image's ENV,
//     libs/, runscript from ENTRYPOINT/CMD, startscript, labels.json,
//     Singularity), the /singularity, /.run, /.exec, /.shell, /.test and
//     /environment symlinks (each only when the path does not exist), the
//     directories /dev /proc /sys /tmp /var/tmp /home /root /etc (when
//     missing), and empty /etc/hosts and /etc/resolv.conf.
//   - mksquashfs -noappend -comp gzip (Apptainer's defaults).
//
// Owners: Apptainer passes -all-root when it builds unprivileged and keeps
// the image's owners when run as root. The squashfs here is made from a tar
// stream, so owners can be kept without privileges: by default they are
// (the output equals a root build); WithAllRoot(true) gives the unprivileged
// variant.
package apptainer

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/rootfs"
	"github.com/cachectl/cachectl/providers/squashfs"
)

// DefaultCompression is the squashfs compressor Apptainer uses.
const DefaultCompression = "gzip"

// Builder makes SIF files. It implements providers.Builder.
type Builder struct {
	allRoot    bool
	mksquashfs string
	mem        string
	now        func() time.Time
	stats      *squashfs.ProcessStats
}

// Option configures a Builder.
type Option func(*Builder)

// WithAllRoot makes every file of the image owned by root (-all-root), like
// an unprivileged `apptainer build`. Default false: owners are kept.
func WithAllRoot(on bool) Option { return func(b *Builder) { b.allRoot = on } }

// WithMksquashfs sets the mksquashfs program. Default "mksquashfs" from PATH.
func WithMksquashfs(path string) Option { return func(b *Builder) { b.mksquashfs = path } }

// WithMksquashfsMem bounds mksquashfs's caches (-mem). Default
// squashfs.DefaultMem; "" leaves mksquashfs's own default (a quarter of
// physical memory). The output does not depend on it.
func WithMksquashfsMem(size string) Option { return func(b *Builder) { b.mem = size } }

// WithClock sets the clock used for build labels and file times. Default time.Now.
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

// Format returns "sif".
func (*Builder) Format() string { return "sif" }

// Version returns the output format revision.
func (*Builder) Version() string { return "1" }

// Build flattens img and writes its SIF to out (which must not exist). On
// error it removes out.
func (b *Builder) Build(ctx context.Context, img v1.Image, req providers.BuildRequest, out string) error {
	tree, err := rootfs.Flatten(ctx, img, rootfs.Options{})
	if err != nil {
		return fmt.Errorf("apptainer: flatten: %w", err)
	}
	return b.BuildTree(ctx, tree, img, req, out)
}

// BuildTree writes the SIF of img to out from tree, the already flattened
// img; a tree can serve several builders.
func (b *Builder) BuildTree(ctx context.Context, tree *rootfs.Tree, img v1.Image, req providers.BuildRequest, out string) (err error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("apptainer: read image config: %w", err)
	}
	ref := req.Ref
	if ref == "" {
		ref = req.NormalizedName
	}
	arch, variant := cf.Architecture, cf.Variant
	if arch == "" {
		arch, variant = req.Platform.Architecture, req.Platform.Variant
	}
	if arch == "" {
		arch = runtime.GOARCH
	}
	now := b.now()
	meta, err := Metadata(cf.Config, ref, arch, variant, now)
	if err != nil {
		return err
	}
	objs := &sifObjects{
		deffile:       []byte(meta.Deffile),
		inspectJSON:   meta.InspectJSON,
		ociConfigJSON: meta.OCIConfigJSON,
		arch:          arch,
	}
	off, err := objs.partitionOffset()
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
	sqOpts := squashfs.Options{
		Compression: comp,
		AllRoot:     b.allRoot,
		Processors:  req.Processors,
		Offset:      off,
		Mem:         b.mem,
		Mksquashfs:  b.mksquashfs,
		Stats:       b.stats,
	}
	topts := rootfs.TarOptions{Extra: meta.Files(now), IfMissing: IfMissing(now), AllRoot: b.allRoot, ParentSymlinks: rootfs.ResolveParentSymlinks, ImplicitDirMode: 0o775}
	produce := func(ctx context.Context, w io.Writer) error { return tree.WriteTar(ctx, w, topts) }
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

// Meta is the generated metadata of one SIF.
type Meta struct {
	Deffile       string
	EnvScript     string
	Runscript     string
	LabelsJSON    []byte
	InspectJSON   []byte
	OCIConfigJSON []byte
}

// Metadata generates the /.singularity.d files and SIF JSON objects for an
// image config.
func Metadata(cfg v1.Config, ref, arch, variant string, now time.Time) (*Meta, error) {
	m := &Meta{
		Deffile:   Deffile(ref),
		EnvScript: EnvScript(cfg.Env),
		Runscript: Runscript(cfg.Entrypoint, cfg.Cmd),
	}
	build := BuildLabels(ref, arch, variant, now)
	var err error
	if m.LabelsJSON, err = LabelsJSON(cfg.Labels, build); err != nil {
		return nil, err
	}
	all := map[string]string{}
	for k, v := range cfg.Labels {
		all[k] = v
	}
	for k, v := range build {
		all[k] = v
	}
	if m.InspectJSON, err = InspectMetadata(all, m.EnvScript, m.Runscript, m.Deffile); err != nil {
		return nil, err
	}
	if m.OCIConfigJSON, err = OCIConfigJSON(cfg); err != nil {
		return nil, err
	}
	return m, nil
}

// Files returns the files Apptainer (over)writes in the root file system.
func (m *Meta) Files(now time.Time) []rootfs.Entry {
	file := func(p string, mode int64, content string) rootfs.Entry {
		return rootfs.Entry{Path: p, Type: tar.TypeReg, Mode: mode, ModTime: now, Content: []byte(content)}
	}
	const sd = ".singularity.d/"
	return []rootfs.Entry{
		file("etc/hosts", 0o644, ""),
		file("etc/resolv.conf", 0o644, ""),
		file(sd+"actions/exec", 0o755, actionExec),
		file(sd+"actions/run", 0o755, actionRun),
		file(sd+"actions/shell", 0o755, actionShell),
		file(sd+"actions/start", 0o755, actionStart),
		file(sd+"actions/test", 0o755, actionTest),
		file(sd+"env/01-base.sh", 0o755, base01Sh),
		file(sd+"env/10-docker2singularity.sh", 0o755, m.EnvScript),
		file(sd+"env/90-environment.sh", 0o755, environmentSh),
		file(sd+"env/95-apps.sh", 0o755, appsSh),
		file(sd+"env/99-base.sh", 0o755, base99Sh),
		file(sd+"env/99-runtimevars.sh", 0o755, runtimeVarsSh),
		file(sd+"runscript", 0o755, m.Runscript),
		file(sd+"startscript", 0o755, startscript),
		file(sd+"labels.json", 0o644, string(m.LabelsJSON)),
		file(sd+"Singularity", 0o644, m.Deffile),
	}
}

// IfMissing returns the directories and symlinks Apptainer creates only
// when their path does not exist in the image (rootfs.TarOptions.IfMissing).
func IfMissing(now time.Time) []rootfs.Entry {
	dir := func(p string) rootfs.Entry {
		return rootfs.Entry{Path: p, Type: tar.TypeDir, Mode: 0o755, ModTime: now}
	}
	link := func(p, target string) rootfs.Entry {
		return rootfs.Entry{Path: p, Type: tar.TypeSymlink, Linkname: target, Mode: 0o777, ModTime: now}
	}
	return []rootfs.Entry{
		dir(".singularity.d/libs"),
		dir("dev"), dir("proc"), dir("root"), dir("var/tmp"), dir("tmp"),
		dir("etc"), dir("sys"), dir("home"),
		link("singularity", ".singularity.d/runscript"),
		link(".run", ".singularity.d/actions/run"),
		link(".exec", ".singularity.d/actions/exec"),
		link(".test", ".singularity.d/actions/test"),
		link(".shell", ".singularity.d/actions/shell"),
		link("environment", ".singularity.d/env/90-environment.sh"),
	}
}
