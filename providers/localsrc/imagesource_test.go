package localsrc_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/localsrc"
	"github.com/cachectl/cachectl/providers/localsrc/localsrctest"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/providers/store"
)

// localRef parses a test reference KIND:PATH[:IMAGE] (PATH absolute, without
// ":"), as planner.LocalRefs gives it from the spec.
func localRef(s string) localsrc.Ref {
	kind, rest, _ := strings.Cut(s, ":")
	path, img, _ := strings.Cut(rest, ":")
	return localsrc.Ref{Kind: localsrc.Kind(kind), Path: path, Image: img}
}

// newImageSource returns an ImageSource over a new store that knows refs.
func newImageSource(t testing.TB, refs ...string) (*localsrc.ImageSource, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]localsrc.Ref{}
	for _, r := range refs {
		known[r] = localRef(r)
	}
	return localsrc.NewImageSource(st, known), st
}

// resolve1 resolves one reference for linux/amd64.
func resolve1(t *testing.T, s *localsrc.ImageSource, ref string) (source.Resolution, error) {
	t.Helper()
	req := source.ResolveRequest{Ref: ref, Platform: amd64}
	out, err := s.ResolveAll(context.Background(), []source.ResolveRequest{req})
	return out[req.Key()], err
}

// fetchCheck fetches and checks the stored image is exactly want.
func fetchCheck(t *testing.T, s *localsrc.ImageSource, st *store.Store, ref string, res source.Resolution, want v1.Image) {
	t.Helper()
	img, err := s.Fetch(context.Background(), ref, res.Manifest)
	if err != nil {
		t.Fatalf("Fetch(%s): %v", ref, err)
	}
	if got := digestOf(t, img).String(); got != res.Manifest {
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

// TestImageSource checks the source.Source over Source (whose tests cover
// the formats): resolutions per reference and platform with the
// bytes still to copy, fetches into the store with stats, and errors that
// name the reference.
func TestImageSource(t *testing.T) {
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
	ref := "oci-layout:" + dir + ":app:1"
	aref := "oci-archive:" + archive + ":app:1"
	mref := "oci-layout:" + dir + ":multi"
	dref := "docker-archive:" + docker
	s, st := newImageSource(t, ref, aref, mref, dref, "oci-layout:"+dir+":app:2", "oci-archive:"+dir)

	res, err := resolve1(t, s, ref)
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != digestOf(t, app).String() || res.Manifest != res.Digest {
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
	ares, err := resolve1(t, s, aref)
	if err != nil || ares.Manifest != res.Manifest || ares.Download != 0 {
		t.Errorf("archive: %+v, %v; want %s with nothing to copy", ares, err, res.Manifest)
	}
	fetchCheck(t, s, st, aref, ares, app)
	if got := s.Stats(); got.BlobsCached != 3 {
		t.Errorf("stats %+v; want 3 blobs cached", got)
	}

	// An index: Digest is the index, Manifest the platform's image.
	im, _ := idx.IndexManifest()
	arm := v1.Platform{OS: "linux", Architecture: "arm64"}
	out, err := s.ResolveAll(context.Background(), []source.ResolveRequest{{Ref: mref, Platform: amd64}, {Ref: mref, Platform: arm}, {Ref: mref, Platform: amd64}})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range []v1.Platform{amd64, arm} {
		if r := out[source.ResolveKey{Ref: mref, Platform: image.PlatformString(p)}]; r.Digest != digestOf(t, idx).String() || r.Manifest != im.Manifests[i].Digest.String() {
			t.Errorf("%s: %+v; want index %s, manifest %s", image.PlatformString(p), r, digestOf(t, idx), im.Manifests[i].Digest)
		}
	}

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
	_, err = localsrc.NewImageSource(nil, map[string]localsrc.Ref{ref: localRef(ref)}).Fetch(context.Background(), ref, res.Manifest)
	wantErr(t, err, "no blob store")
	// A reference the spec did not give is refused.
	_, err = resolve1(t, s, "oci-layout:"+dir+":other")
	wantErr(t, err, "oci-layout:"+dir+":other: not a local source of the spec")
}

func TestImageSourceCorruptBlobs(t *testing.T) {
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
	ref := "oci-layout:" + dir + ":app:1"
	file := filepath.Join(tmp, "d.tar")
	s, st := newImageSource(t, ref, "docker-archive:"+file)
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
