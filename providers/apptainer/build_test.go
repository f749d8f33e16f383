package apptainer

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cachectl/cachectl/providers/buildtest"

	"github.com/apptainer/sif/v2/pkg/sif"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/enroot"
	"github.com/cachectl/cachectl/providers/rootfs"
	"github.com/cachectl/cachectl/providers/squashfs"
)

func configAwkward() v1.Config {
	return v1.Config{
		Env:        sifShapes()[0].cfg.Env,
		Entrypoint: []string{"/entry point.sh", "--flag=it's"},
		Cmd:        []string{"echo", `"quoted" $HOME`},
		WorkingDir: "/work dir",
		Labels:     map[string]string{"maintainer": "someone <x@y>", "org.opencontainers.image.version": "1.0"},
		Volumes:    map[string]struct{}{"/data": {}},
		User:       "1000:1000",
	}
}

func testImage(t *testing.T) v1.Image {
	t.Helper()
	base := buildtest.Layer(t,
		buildtest.Dir("bin/", 0o755),
		buildtest.Reg("bin/busybox", 0o755, "#!/bin/true\n"),
		buildtest.Symlink("bin/sh", "busybox"),
		buildtest.Reg("bin/su", 0o4755, "su"),
		buildtest.Dir("etc/", 0o755),
		buildtest.Reg("etc/hosts", 0o600, "127.0.0.1 image-hosts\n"),
		buildtest.Symlink("etc/resolv.conf", "../run/resolv.conf"),
		buildtest.Dir("tmp/", 0o1777),
		buildtest.Dir("home/", 0o755),
		buildtest.Member{Name: "home/user/", Type: tar.TypeDir, Mode: 0o700, UID: 1000, GID: 1000},
		buildtest.Member{Name: "home/user/notes", Type: tar.TypeReg, Mode: 0o640, UID: 1000, GID: 1000, Body: "mine\n"},
		buildtest.Member{Name: "dev/", Type: tar.TypeDir, Mode: 0o755},
		buildtest.Member{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666},
		buildtest.Symlink("environment", "/custom/env"),
	)
	top := buildtest.Layer(t,
		buildtest.Reg("bin/.wh.su", 0, ""),
		buildtest.Reg("usr/local/bin/tool", 0o755, "tool v2\n"),
	)
	return buildtest.Image(t, configAwkward(), base, top)
}

func TestBuildSIF(t *testing.T) {
	buildtest.RequireTools(t, "mksquashfs", "unsquashfs")
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "img.sif")
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	b := New(Apptainer, squashfs.WithClock(func() time.Time { return now }))
	img := testImage(t)
	req := providers.BuildRequest{Ref: "example/app:1.0", NormalizedName: "docker.io/example/app:1.0", Processors: 1}
	if err := b.Build(ctx, img, req, out); err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(ctx, out); err != nil {
		t.Fatalf("Verify: %v", err)
	}

	// Read the SIF back with the sif library.
	f, err := sif.LoadContainerFromPath(out, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		t.Fatal(err)
	}
	defer f.UnloadContainer()
	if got := f.LaunchScript(); got != "#!/usr/bin/env run-singularity\n" {
		t.Errorf("launch script %q", got)
	}
	if got := f.PrimaryArch(); got != "amd64" {
		t.Errorf("arch %q", got)
	}
	var ds []sif.Descriptor
	f.WithDescriptors(func(d sif.Descriptor) bool { ds = append(ds, d); return false })
	if len(ds) != 4 {
		t.Fatalf("%d descriptors", len(ds))
	}
	wantTypes := []sif.DataType{sif.DataDeffile, sif.DataGenericJSON, sif.DataGenericJSON, sif.DataPartition}
	wantNames := []string{"", "inspect-metadata.json", "oci-config.json", ""}
	for i, d := range ds {
		if d.DataType() != wantTypes[i] || d.Name() != wantNames[i] {
			t.Errorf("descriptor %d: %v %q, want %v %q", i, d.DataType(), d.Name(), wantTypes[i], wantNames[i])
		}
	}
	def, _ := ds[0].GetData()
	if string(def) != "bootstrap: docker\nfrom: example/app:1.0\n\n" {
		t.Errorf("deffile %q", def)
	}
	cfgJSON, _ := ds[2].GetData()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	src, err := source(img, cf, req)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := Apptainer.Metadata(configAwkward(), src, now)
	if err != nil {
		t.Fatal(err)
	}
	if string(cfgJSON) != string(meta.OCIConfigJSON) {
		t.Errorf("oci-config.json %s", cfgJSON)
	}
	insp, _ := ds[1].GetData()
	if string(insp) != string(meta.InspectJSON) {
		t.Errorf("inspect-metadata.json %s", insp)
	}
	fs, pt, arch, err := ds[3].PartitionMetadata()
	if err != nil || fs != sif.FsSquash || pt != sif.PartPrimSys || arch != "amd64" {
		t.Errorf("partition %v %v %v %v", fs, pt, arch, err)
	}
	off := ds[3].Offset()
	if off%4096 != 0 {
		t.Errorf("partition offset %d not aligned", off)
	}
	st, _ := os.Stat(out)
	if off+ds[3].Size() != st.Size() {
		t.Errorf("partition %d+%d, file %d", off, ds[3].Size(), st.Size())
	}

	// List the partition with unsquashfs at its offset.
	es, err := squashfs.List(ctx, out, off)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]squashfs.Entry{}
	for _, e := range es {
		m[e.Path] = e
	}
	expect := func(p, mode string, uid, gid int) {
		t.Helper()
		e, ok := m[p]
		if !ok {
			t.Errorf("%s missing", p)
			return
		}
		if e.Mode != mode || e.Uid != uid || e.Gid != gid {
			t.Errorf("%s: %s %d/%d, want %s %d/%d", p, e.Mode, e.Uid, e.Gid, mode, uid, gid)
		}
	}
	expect("/", "drwxr-xr-x", 0, 0)
	expect("/bin/busybox", "-rwxr-xr-x", 0, 0)
	expect("/tmp", "drwxrwxrwt", 0, 0) // existing directory kept as is
	expect("/home/user", "drwx------", 1000, 1000)
	expect("/home/user/notes", "-rw-r-----", 1000, 1000)
	expect("/dev/null", "crw-rw-rw-", 0, 0)
	expect("/etc/hosts", "-rw-r--r--", 0, 0)
	expect("/etc/resolv.conf", "-rw-r--r--", 0, 0)
	expect("/usr/local/bin/tool", "-rwxr-xr-x", 0, 0)
	for _, d := range []string{"/proc", "/sys", "/root", "/var/tmp", "/.singularity.d/libs", "/.singularity.d/actions", "/.singularity.d/env"} {
		expect(d, "drwxr-xr-x", 0, 0)
	}
	for _, p := range []string{"runscript", "startscript", "actions/exec", "actions/run", "actions/shell", "actions/start", "actions/test",
		"env/01-base.sh", "env/10-docker2singularity.sh", "env/90-environment.sh", "env/95-apps.sh", "env/99-base.sh", "env/99-runtimevars.sh"} {
		expect("/.singularity.d/"+p, "-rwxr-xr-x", 0, 0)
	}
	expect("/.singularity.d/labels.json", "-rw-r--r--", 0, 0)
	expect("/.singularity.d/Singularity", "-rw-r--r--", 0, 0)
	if _, ok := m["/bin/su"]; ok {
		t.Error("whited-out /bin/su present")
	}
	links := map[string]string{
		"/singularity": ".singularity.d/runscript", "/.run": ".singularity.d/actions/run",
		"/.exec": ".singularity.d/actions/exec", "/.shell": ".singularity.d/actions/shell",
		"/.test": ".singularity.d/actions/test", "/bin/sh": "busybox",
		// A dangling link where the runtime puts its own is replaced
		// (SingularityCE does; Apptainer 1.5.3 fails the build).
		"/environment": ".singularity.d/env/90-environment.sh",
	}
	for p, target := range links {
		if e := m[p]; e.Type() != 'l' || e.Linkname != target {
			t.Errorf("%s = %+v, want symlink to %s", p, e, target)
		}
	}

	cat := func(p string) string {
		t.Helper()
		b, err := squashfs.Cat(ctx, out, off, p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := cat("/.singularity.d/runscript"); got != meta.Runscript {
		t.Errorf("runscript:\n%s", got)
	}
	if got := cat("/.singularity.d/env/10-docker2singularity.sh"); got != meta.EnvScript {
		t.Errorf("env script:\n%s", got)
	}
	if got := cat("/.singularity.d/labels.json"); got != string(meta.LabelsJSON) {
		t.Errorf("labels:\n%s", got)
	}
	if got := cat("/.singularity.d/Singularity"); got != meta.Deffile {
		t.Errorf("Singularity: %q", got)
	}
	if got := cat("/etc/hosts"); got != "" {
		t.Errorf("/etc/hosts = %q", got)
	}
	if got := cat("/home/user/notes"); got != "mine\n" {
		t.Errorf("notes = %q", got)
	}
}

func TestBuildSIFAllRoot(t *testing.T) {
	buildtest.RequireTools(t, "mksquashfs", "unsquashfs")
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "img.sif")
	b := New(Apptainer, squashfs.WithAllRoot(true))
	if err := b.Build(ctx, testImage(t), providers.BuildRequest{Ref: "a:b"}, out); err != nil {
		t.Fatal(err)
	}
	for _, e := range sifListing(t, out) {
		if e.Uid != 0 || e.Gid != 0 {
			t.Errorf("%s owned by %d/%d", e.Path, e.Uid, e.Gid)
		}
	}
}

// sifListing lists the primary partition of the SIF at out.
func sifListing(t *testing.T, out string) []squashfs.Entry {
	t.Helper()
	f, err := sif.LoadContainerFromPath(out, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	f.UnloadContainer()
	if err != nil {
		t.Fatal(err)
	}
	es, err := squashfs.List(context.Background(), out, d.Offset())
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestBuildFailureLeavesNothing(t *testing.T) {
	buildtest.RequireTools(t, "mksquashfs")
	out := filepath.Join(t.TempDir(), "img.sif")
	err := New(Apptainer).Build(context.Background(), testImage(t), providers.BuildRequest{Ref: "a:b", Compression: "nosuchcomp"}, out)
	if err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Lstat(out); !os.IsNotExist(err) {
		t.Errorf("output left behind: %v", err)
	}
	// An existing output is never overwritten.
	if err := os.WriteFile(out, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := New(Apptainer).Build(context.Background(), testImage(t), providers.BuildRequest{Ref: "a:b"}, out); err == nil {
		t.Error("overwrote an existing file")
	}
	if b, _ := os.ReadFile(out); string(b) != "x" {
		t.Error("existing file changed")
	}
}

func TestVerifyRejects(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.sif")
	os.WriteFile(p, []byte("not a sif at all"), 0o644)
	if err := New(Apptainer).Verify(context.Background(), p); err == nil {
		t.Error("garbage accepted")
	}
	// A SIF whose partition is not squashfs.
	fi, err := sif.CreateContainerAtPath(filepath.Join(dir, "x.sif"))
	if err != nil {
		t.Fatal(err)
	}
	fi.UnloadContainer()
	if err := New(Apptainer).Verify(context.Background(), filepath.Join(dir, "x.sif")); err == nil {
		t.Error("SIF without partition accepted")
	}
}

// TestOneTreeTwoBuilders flattens once and builds a SIF and an enroot image
// from the same tree at the same time.
func TestOneTreeTwoBuilders(t *testing.T) {
	buildtest.RequireTools(t, "mksquashfs", "unsquashfs")
	ctx := context.Background()
	img := testImage(t)
	tree, err := rootfs.Flatten(ctx, img, rootfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	req := providers.BuildRequest{Ref: "a:b", Processors: 1}
	errs := make(chan error, 2)
	go func() { errs <- New(Apptainer).BuildTree(ctx, tree, img, req, filepath.Join(dir, "x.sif")) }()
	go func() { errs <- enroot.New().BuildTree(ctx, tree, img, req, filepath.Join(dir, "x.sqsh")) }()
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := New(Apptainer).Verify(ctx, filepath.Join(dir, "x.sif")); err != nil {
		t.Error(err)
	}
	if err := enroot.New().Verify(ctx, filepath.Join(dir, "x.sqsh")); err != nil {
		t.Error(err)
	}
}

// TestBuildSIFRootEntry: a layer's root entry ("./" 0711) gives the SIF's
// root directory its mode, as Apptainer 1.5.3 and SingularityCE 4.5.1
// builds keep it (conformance shape tar-odd), whether the SIF is streamed
// (it is built again from the tree) or built from a tree. Its owner stays
// root (`mksquashfs -tar` 4.5.1 ignores -root-uid; the runtimes would keep
// 5:6).
func TestBuildSIFRootEntry(t *testing.T) {
	buildtest.RequireTools(t, "mksquashfs", "unsquashfs")
	ctx := context.Background()
	img := buildtest.Image(t, v1.Config{Cmd: []string{"/bin/sh"}}, buildtest.Layer(t,
		buildtest.Member{Name: "./", Type: tar.TypeDir, Mode: 0o711, UID: 5, GID: 6},
		buildtest.Reg("f", 0o644, "x"),
	))
	tree, err := rootfs.Flatten(ctx, img, rootfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		allRoot  bool
		fromTree bool
		uid, gid int
	}{{"stream", false, false, 0, 0}, {"tree", false, true, 0, 0}, {"all-root", true, false, 0, 0}} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "img.sif")
			b := New(Apptainer, squashfs.WithAllRoot(c.allRoot))
			req := providers.BuildRequest{Ref: "a:b"}
			if c.fromTree {
				err = b.BuildTree(ctx, tree, img, req, out)
			} else {
				err = b.Build(ctx, img, req, out)
			}
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range sifListing(t, out) {
				if e.Path == "/" {
					found = true
					if e.Mode != "drwx--x--x" || e.Uid != c.uid || e.Gid != c.gid {
						t.Errorf("root %s %d:%d, want drwx--x--x %d:%d", e.Mode, e.Uid, e.Gid, c.uid, c.gid)
					}
				}
			}
			if !found {
				t.Error("no root in the listing")
			}
		})
	}
}
