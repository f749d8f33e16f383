package planner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/localsrc/localsrctest"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/providers/store"
	"github.com/cachectl/cachectl/spec"
)

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

func digestOf(t *testing.T, img interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func newLocal(t *testing.T) (*LocalSource, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return NewLocalSource(st, nil), st
}

// resolve1 resolves one reference for linux/amd64.
func resolve1(t *testing.T, s *LocalSource, ref string) (source.Resolution, error) {
	t.Helper()
	return resolveFor(t, s, ref, amd64)
}

func resolveFor(t *testing.T, s *LocalSource, ref string, p v1.Platform) (source.Resolution, error) {
	t.Helper()
	out, err := s.ResolveAll(context.Background(), []source.ResolveRequest{{Ref: ref, Platform: p}})
	return out[source.ResolveKey{Ref: ref, Platform: image.PlatformString(p)}], err
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

// fetchCheck fetches and checks the stored image is exactly want.
func fetchCheck(t *testing.T, s *LocalSource, st *store.Store, ref string, res source.Resolution, want v1.Image) {
	t.Helper()
	img, err := s.Fetch(context.Background(), ref, res.Manifest)
	if err != nil {
		t.Fatalf("Fetch(%s): %v", ref, err)
	}
	if got := digestOf(t, img); got != res.Manifest {
		t.Errorf("fetched image %s, resolved %s", got, res.Manifest)
	}
	wl, _ := want.Layers()
	gl, err := img.Layers()
	if err != nil || len(gl) != len(wl) {
		t.Fatalf("layers: %d, %v; want %d", len(gl), err, len(wl))
	}
	for i := range wl {
		wd, _ := wl[i].DiffID()
		gd, err := gl[i].DiffID()
		if err != nil || gd != wd {
			t.Errorf("layer %d diff_id %s (%v), want %s", i, gd, err, wd)
		}
		d, _ := gl[i].Digest()
		if !st.Has(d) {
			t.Errorf("layer %s is not in the store", d)
		}
	}
	wc, _ := want.RawConfigFile()
	gc, _ := img.RawConfigFile()
	if string(wc) != string(gc) {
		t.Errorf("config differs")
	}
}

// TestLocalSource checks the adapter over providers/localsrc (whose tests
// cover the formats): resolutions per reference and platform with the
// bytes still to copy, fetches into the store with stats, and errors that
// name the reference.
func TestLocalSource(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "layout")
	app, tools := localsrctest.MustImage(t, 1, "amd64"), localsrctest.MustImage(t, 2, "amd64")
	idx, err := localsrctest.Index(3, "amd64", "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if err := localsrctest.WriteLayout(dir, []localsrctest.Named{{Name: "app:1", Image: app}}, localsrctest.NamedIndex{Name: "multi", Index: idx}); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(tmp, "app.tar")
	if err := localsrctest.TarDir(dir, archive); err != nil {
		t.Fatal(err)
	}
	docker := filepath.Join(tmp, "d.tar")
	if err := localsrctest.WriteDockerArchive(docker, localsrctest.DockerClassic, localsrctest.Named{Name: "tools:2", Image: tools}); err != nil {
		t.Fatal(err)
	}
	s, st := newLocal(t)

	ref := "oci-layout:" + dir + ":app:1"
	res, err := resolve1(t, s, ref)
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != digestOf(t, app) || res.Manifest != res.Digest {
		t.Errorf("resolved %+v, want %s", res, digestOf(t, app))
	}
	if res.Size <= 0 || res.Download != res.Size {
		t.Errorf("size %d download %d: want the whole image missing from an empty store", res.Size, res.Download)
	}
	fetchCheck(t, s, st, ref, res, app)
	if got := s.Stats(); got.BlobsDownloaded != 3 || got.BytesDownloaded != res.Size {
		t.Errorf("stats %+v; want 3 blobs, %d bytes", got, res.Size)
	}
	// The same image from the archive is resolved alike and is stored
	// already: nothing to copy, all blobs cached on fetch.
	aref := "oci-archive:" + archive + ":app:1"
	ares, err := resolve1(t, s, aref)
	if err != nil || ares.Manifest != res.Manifest || ares.Download != 0 {
		t.Errorf("archive: %+v, %v; want %s with nothing to copy", ares, err, res.Manifest)
	}
	fetchCheck(t, s, st, aref, ares, app)
	if got := s.Stats(); got.BlobsCached != 3 {
		t.Errorf("stats %+v; want 3 blobs cached", got)
	}

	// An index: Digest is the index, Manifest the platform's image.
	mref := "oci-layout:" + dir + ":multi"
	im, _ := idx.IndexManifest()
	arm := v1.Platform{OS: "linux", Architecture: "arm64"}
	out, err := s.ResolveAll(context.Background(), []source.ResolveRequest{{Ref: mref, Platform: amd64}, {Ref: mref, Platform: arm}, {Ref: mref, Platform: amd64}})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range []v1.Platform{amd64, arm} {
		if r := out[source.ResolveKey{Ref: mref, Platform: image.PlatformString(p)}]; r.Digest != digestOf(t, idx) || r.Manifest != im.Manifests[i].Digest.String() {
			t.Errorf("%s: %+v; want index %s, manifest %s", image.PlatformString(p), r, digestOf(t, idx), im.Manifests[i].Digest)
		}
	}

	dref := "docker-archive:" + docker
	dres, err := resolve1(t, s, dref)
	if err != nil {
		t.Fatal(err)
	}
	fetchCheck(t, s, st, dref, dres, tools)

	// Errors name the reference (and the platform for resolving); several
	// are reported together.
	_, err = s.ResolveAll(context.Background(), []source.ResolveRequest{
		{Ref: "oci-layout:" + dir + ":app:2", Platform: amd64},
		{Ref: "oci-archive:" + dir, Platform: amd64},
	})
	wantErr(t, err, "oci-layout:"+dir+`:app:2: no image named "app:2"`, "(platform linux/amd64)", "oci-archive:"+dir+": ", "is a directory")
	_, err = s.Fetch(context.Background(), ref, "sha256:"+strings.Repeat("a", 64))
	wantErr(t, err, ref+": manifest sha256:aaaa", "no longer in", "plan again")
	_, err = NewLocalSource(nil, nil).Fetch(context.Background(), ref, res.Manifest)
	wantErr(t, err, "no blob store")
}

func TestLocalCorruptBlobs(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "layout")
	app := localsrctest.MustImage(t, 1, "amd64")
	if err := localsrctest.WriteLayout(dir, []localsrctest.Named{{Name: "app:1", Image: app}}); err != nil {
		t.Fatal(err)
	}
	m, _ := app.Manifest()
	top := m.Layers[1].Digest
	flip := func(p string) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flip(filepath.Join(dir, "blobs", "sha256", top.Hex))
	s, st := newLocal(t)
	ref := "oci-layout:" + dir + ":app:1"
	res, err := resolve1(t, s, ref) // layers are not read to resolve
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Fetch(context.Background(), ref, res.Manifest)
	wantErr(t, err, "blob "+top.String(), "corrupt", "digest mismatch")
	if st.Has(top) {
		t.Error("the corrupt layer was stored")
	}
	h, _ := v1.NewHash(res.Manifest)
	if st.Has(h) {
		t.Error("the manifest of an image with a corrupt layer was stored")
	}

	// A docker archive whose layer does not match its diff_id.
	file := filepath.Join(tmp, "d.tar")
	if err := localsrctest.WriteDockerArchive(file, localsrctest.DockerClassic, localsrctest.Named{Name: "app:1", Image: app}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(file)
	i := strings.Index(string(b), "variant 1 amd64")
	if i < 0 {
		t.Fatal("top layer content not found in the archive")
	}
	b[i] = 'V'
	os.WriteFile(file, b, 0o644)
	res, err = resolve1(t, s, "docker-archive:"+file)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Fetch(context.Background(), "docker-archive:"+file, res.Manifest)
	wantErr(t, err, "corrupt", "digest mismatch")
}

func TestLocalRelativePaths(t *testing.T) {
	tmp := t.TempDir()
	if err := localsrctest.WriteLayout(filepath.Join(tmp, "layouts", "app"), []localsrctest.Named{{Name: "v1", Image: localsrctest.MustImage(t, 1, "amd64")}}); err != nil {
		t.Fatal(err)
	}
	m, d := spec.LoadSources([]spec.Source{{Filename: filepath.Join(tmp, "cachectl.hcl"), Bytes: []byte(`
cache "c" {
  runtime = "enroot"
  root    = "/c"
  images  = ["oci-layout:layouts/app:v1"]
}
`)}}, spec.Options{})
	if d.HasErrors() {
		t.Fatal(d.Error())
	}
	st, _ := store.Open(filepath.Join(tmp, "store"))
	s := NewLocalSource(st, m)
	if _, err := resolve1(t, s, "oci-layout:layouts/app:v1"); err != nil {
		t.Fatalf("relative path from the spec: %v", err)
	}
	// A relative reference the spec does not know cannot be resolved.
	_, err := resolve1(t, s, "oci-layout:other:v1")
	wantErr(t, err, "relative path")
}

func TestImageName(t *testing.T) {
	for _, tc := range []struct{ ref, file, want string }{
		{"alpine:3.20", "alpine+3.20", "docker.io/library/alpine:3.20"},
		{"oci-layout:/l:app:1", "app+1", "docker.io/library/app:1"},
		{"oci-archive:a.tar:docker.io/library/alpine:3.20", "x", "docker.io/library/alpine:3.20"},
		{"docker-archive:/d.tar:localhost:5000/x/y:2", "y", "localhost:5000/x/y:2"},
		{"docker-archive:d.tar:tools/x:2", "tools+x+2.sqsh", "docker.io/tools/x:2"},
		{"oci-layout:/srv/l:docker.io/library/alpine:3.20", "a", "docker.io/library/alpine:3.20"},
		{"oci-layout:/l:v1", "v1", "v1"},
		{"oci-layout:/l", "Base", "localhost/base"},
		{"docker-archive:/d.tar", "tools/dock.sqsh", "localhost/dock.sqsh"},
	} {
		if got := ImageName(tc.ref, tc.file); got != tc.want {
			t.Errorf("ImageName(%q, %q) = %q, want %q", tc.ref, tc.file, got, tc.want)
		}
	}
}
