package planner

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/planner/localtest"
	"github.com/cachectl/cachectl/providers/registry"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/providers/store"
	"github.com/cachectl/cachectl/spec"
)

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

func testImage(t *testing.T, variant int, arch string) v1.Image {
	t.Helper()
	img, err := localtest.Image(variant, arch)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

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
func resolve1(t *testing.T, s *LocalSource, ref string) (Resolution, error) {
	t.Helper()
	return resolveFor(t, s, ref, amd64)
}

func resolveFor(t *testing.T, s *LocalSource, ref string, p v1.Platform) (Resolution, error) {
	t.Helper()
	out, err := s.ResolveAll(context.Background(), []ResolveRequest{{Ref: ref, Platform: p}})
	return out[ResolveKey{ref, PlatformString(p)}], err
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
func fetchCheck(t *testing.T, s *LocalSource, st *store.Store, ref string, res Resolution, want v1.Image) {
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

func TestLocalOCILayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	app, tools := testImage(t, 1, "amd64"), testImage(t, 2, "amd64")
	if err := localtest.WriteLayout(dir, []localtest.Named{{Name: "app:1", Image: app}, {Name: "tools:2", Image: tools}}); err != nil {
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
	if res2, _ := resolve1(t, s, ref); res2.Download != 0 {
		t.Errorf("after a fetch, %d bytes still to copy", res2.Download)
	}
	if got := s.Stats(); got.BlobsDownloaded != 3 || got.BytesDownloaded != res.Size {
		t.Errorf("stats %+v; want 3 blobs, %d bytes", got, res.Size)
	}

	// Without a name the layout must hold exactly one image.
	_, err = resolve1(t, s, "oci-layout:"+dir)
	wantErr(t, err, "holds 2 images", `"app:1", "tools:2"`, "oci-layout:"+dir+":REF")
	// An unknown name lists the names there are.
	_, err = resolve1(t, s, "oci-layout:"+dir+":app:2")
	wantErr(t, err, `no image named "app:2"`, `"app:1", "tools:2"`)

	one := filepath.Join(t.TempDir(), "one")
	if err := localtest.WriteLayout(one, []localtest.Named{{Image: tools}}); err != nil {
		t.Fatal(err)
	}
	res, err = resolve1(t, s, "oci-layout:"+one)
	if err != nil || res.Manifest != digestOf(t, tools) {
		t.Fatalf("single unnamed image: %+v, %v", res, err)
	}

	// Not a layout, missing directory, a file.
	_, err = resolve1(t, s, "oci-layout:"+t.TempDir())
	wantErr(t, err, "no oci-layout file")
	_, err = resolve1(t, s, "oci-layout:/nonexistent/dir")
	wantErr(t, err, "/nonexistent/dir", "no such file")
	_, err = resolve1(t, s, "oci-layout:"+filepath.Join(dir, "index.json"))
	wantErr(t, err, "not a directory", "oci-archive:")
}

func TestLocalMultiPlatform(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	idx, err := localtest.Index(1, "amd64", "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if err := localtest.WriteLayout(dir, nil, localtest.NamedIndex{Name: "multi", Index: idx}); err != nil {
		t.Fatal(err)
	}
	s, st := newLocal(t)
	ref := "oci-layout:" + dir + ":multi"
	im, _ := idx.IndexManifest()
	for i, p := range []v1.Platform{amd64, {OS: "linux", Architecture: "arm64", Variant: "v8"}} {
		res, err := resolveFor(t, s, ref, p)
		if err != nil {
			t.Fatal(err)
		}
		if res.Digest != digestOf(t, idx) || res.Manifest != im.Manifests[i].Digest.String() {
			t.Errorf("%s: resolved %+v; want index %s, manifest %s", PlatformString(p), res, digestOf(t, idx), im.Manifests[i].Digest)
		}
		want, _ := idx.Image(im.Manifests[i].Digest)
		fetchCheck(t, s, st, ref, res, want)
	}
	_, err = resolveFor(t, s, ref, v1.Platform{OS: "linux", Architecture: "ppc64le"})
	wantErr(t, err, "no image for platform linux/ppc64le", "available: linux/amd64, linux/arm64")

	// A single-platform image for another platform is refused.
	one := filepath.Join(t.TempDir(), "arm")
	if err := localtest.WriteLayout(one, []localtest.Named{{Name: "x", Image: testImage(t, 1, "arm64")}}); err != nil {
		t.Fatal(err)
	}
	_, err = resolve1(t, s, "oci-layout:"+one+":x")
	wantErr(t, err, "is for platform linux/arm64 only, not linux/amd64")
}

func TestLocalOCIArchive(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "layout")
	app := testImage(t, 1, "amd64")
	if err := localtest.WriteLayout(dir, []localtest.Named{{Name: "app:1", Image: app}, {Name: "tools:2", Image: testImage(t, 2, "amd64")}}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(tmp, "app.tar")
	if err := localtest.TarDir(dir, file); err != nil {
		t.Fatal(err)
	}
	s, st := newLocal(t)
	ref := "oci-archive:" + file + ":app:1"
	res, err := resolve1(t, s, ref)
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest != digestOf(t, app) {
		t.Errorf("resolved %s, want %s", res.Manifest, digestOf(t, app))
	}
	fetchCheck(t, s, st, ref, res, app)
	_, err = resolve1(t, s, "oci-archive:"+file)
	wantErr(t, err, "holds 2 images", `"app:1", "tools:2"`)

	// A directory, a truncated archive, a gzipped one.
	_, err = resolve1(t, s, "oci-archive:"+dir)
	wantErr(t, err, "is a directory", "oci-layout:")
	b, _ := os.ReadFile(file)
	cut := filepath.Join(tmp, "cut.tar")
	os.WriteFile(cut, b[:len(b)/2], 0o644)
	_, err = resolve1(t, s, "oci-archive:"+cut+":app:1")
	wantErr(t, err, "truncated")
	gz := filepath.Join(tmp, "gz.tar")
	os.WriteFile(gz, []byte{0x1f, 0x8b, 8, 0, 0, 0}, 0o644)
	_, err = resolve1(t, s, "oci-archive:"+gz)
	wantErr(t, err, "gzip-compressed")
}

func TestLocalDockerArchive(t *testing.T) {
	tmp := t.TempDir()
	app, tools := testImage(t, 1, "amd64"), testImage(t, 2, "amd64")
	for _, f := range []struct {
		name   string
		format localtest.DockerFormat
	}{{"classic", localtest.DockerClassic}, {"oci", localtest.DockerOCI}} {
		t.Run(f.name, func(t *testing.T) {
			one := filepath.Join(tmp, f.name+"-one.tar")
			if err := localtest.WriteDockerArchive(one, f.format, localtest.Named{Name: "app:1", Image: app}); err != nil {
				t.Fatal(err)
			}
			several := filepath.Join(tmp, f.name+"-several.tar")
			if err := localtest.WriteDockerArchive(several, f.format, localtest.Named{Name: "app:1", Image: app}, localtest.Named{Name: "registry.local:5000/tools:2", Image: tools}); err != nil {
				t.Fatal(err)
			}
			s, st := newLocal(t)
			res, err := resolve1(t, s, "docker-archive:"+one)
			if err != nil {
				t.Fatal(err)
			}
			if res.Digest != res.Manifest || res.Size <= 0 {
				t.Errorf("resolution %+v", res)
			}
			fetchCheck(t, s, st, "docker-archive:"+one, res, app)

			// The conversion is deterministic: the same image in another
			// archive (here with a second image) resolves to the same digest,
			// also when named in the long form.
			for _, ref := range []string{"docker-archive:" + several + ":app:1", "docker-archive:" + several + ":docker.io/library/app:1"} {
				r2, err := resolve1(t, s, ref)
				if err != nil {
					t.Fatal(err)
				}
				if r2.Manifest != res.Manifest {
					t.Errorf("%s resolved to %s, want %s", ref, r2.Manifest, res.Manifest)
				}
			}
			ref := "docker-archive:" + several + ":registry.local:5000/tools:2"
			r3, err := resolve1(t, s, ref)
			if err != nil {
				t.Fatal(err)
			}
			if r3.Manifest == res.Manifest {
				t.Error("two different images resolved to one digest")
			}
			fetchCheck(t, s, st, ref, r3, tools)

			_, err = resolve1(t, s, "docker-archive:"+several)
			wantErr(t, err, "holds 2 images", `"app:1", "registry.local:5000/tools:2"`, ":REPO:TAG")
			_, err = resolve1(t, s, "docker-archive:"+several+":app:2")
			wantErr(t, err, `no image tagged "app:2"`, `"app:1"`)
			_, err = resolve1(t, s, "docker-archive:"+filepath.Join(tmp, "missing.tar"))
			wantErr(t, err, "no such file")
		})
	}
}

// TestLocalSkopeoArchives reads archives written by skopeo (containers/image),
// the reference implementation of these formats, and checks they resolve to
// what cachectl resolves for the layout they were copied from.
func TestLocalSkopeoArchives(t *testing.T) {
	skopeo := registrytest.RequireTool(t, "skopeo")
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "layout")
	app := testImage(t, 3, "amd64")
	if err := localtest.WriteLayout(dir, []localtest.Named{{Name: "app:1", Image: app}}); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(skopeo, append([]string{"--insecure-policy", "--override-os", "linux", "--override-arch", "amd64"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo %s: %v\n%s", args, err, out)
		}
	}
	run("copy", "oci:"+dir+":app:1", "oci-archive:"+filepath.Join(tmp, "oci.tar")+":app:1")
	run("copy", "oci:"+dir+":app:1", "docker-archive:"+filepath.Join(tmp, "docker.tar")+":app:1")
	s, st := newLocal(t)
	res, err := resolve1(t, s, "oci-archive:"+filepath.Join(tmp, "oci.tar")+":app:1")
	if err != nil {
		t.Fatal(err)
	}
	fetchCheck(t, s, st, "oci-archive:"+filepath.Join(tmp, "oci.tar")+":app:1", res, app)
	for _, ref := range []string{"docker-archive:" + filepath.Join(tmp, "docker.tar"), "docker-archive:" + filepath.Join(tmp, "docker.tar") + ":app:1"} {
		res, err := resolve1(t, s, ref)
		if err != nil {
			t.Fatal(err)
		}
		img, err := s.Fetch(context.Background(), ref, res.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		// skopeo stores the layers uncompressed: the diff_ids and config survive.
		gl, _ := img.Layers()
		wl, _ := app.Layers()
		for i := range wl {
			g, _ := gl[i].DiffID()
			w, _ := wl[i].DiffID()
			if g != w {
				t.Errorf("%s: layer %d diff_id %s, want %s", ref, i, g, w)
			}
		}
	}
}

func TestLocalCorruptBlobs(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "layout")
	app := testImage(t, 1, "amd64")
	if err := localtest.WriteLayout(dir, []localtest.Named{{Name: "app:1", Image: app}}); err != nil {
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

	// A corrupt manifest fails the plan already.
	flip(filepath.Join(dir, "blobs", "sha256", h.Hex))
	_, err = resolve1(t, s, ref)
	wantErr(t, err, "is corrupt", res.Manifest)

	// A docker archive whose layer does not match its diff_id.
	file := filepath.Join(tmp, "d.tar")
	if err := localtest.WriteDockerArchive(file, localtest.DockerClassic, localtest.Named{Name: "app:1", Image: app}); err != nil {
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

func TestLocalSourceChanged(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "layout")
	if err := localtest.WriteLayout(dir, []localtest.Named{{Name: "app", Image: testImage(t, 1, "amd64")}}); err != nil {
		t.Fatal(err)
	}
	s, _ := newLocal(t)
	ref := "oci-layout:" + dir + ":app"
	r1, err := resolve1(t, s, ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := localtest.WriteLayout(dir, []localtest.Named{{Name: "app", Image: testImage(t, 2, "amd64")}}); err != nil {
		t.Fatal(err)
	}
	r2, err := resolve1(t, s, ref)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Digest == r2.Digest {
		t.Fatal("a new image in the layout resolved to the old digest")
	}
	// A plan made before the change cannot be applied from the new layout.
	_, err = s.Fetch(context.Background(), ref, r1.Manifest)
	wantErr(t, err, "no longer in", "plan again")

	file := filepath.Join(tmp, "d.tar")
	localtest.WriteDockerArchive(file, localtest.DockerClassic, localtest.Named{Image: testImage(t, 1, "amd64")})
	d1, _ := resolve1(t, s, "docker-archive:"+file)
	localtest.WriteDockerArchive(file, localtest.DockerClassic, localtest.Named{Image: testImage(t, 2, "amd64")})
	_, err = s.Fetch(context.Background(), "docker-archive:"+file, d1.Manifest)
	wantErr(t, err, "changed since the plan")
}

func TestLocalRelativePaths(t *testing.T) {
	tmp := t.TempDir()
	if err := localtest.WriteLayout(filepath.Join(tmp, "layouts", "app"), []localtest.Named{{Name: "v1", Image: testImage(t, 1, "amd64")}}); err != nil {
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

// recordingSource is a fallback that records what reaches it.
type recordingSource struct {
	refs []string
}

func (r *recordingSource) ResolveAll(ctx context.Context, reqs []ResolveRequest) (map[ResolveKey]Resolution, error) {
	out := map[ResolveKey]Resolution{}
	for _, q := range reqs {
		r.refs = append(r.refs, q.Ref)
		if q.Ref == "bad:1" {
			return out, errors.New("bad:1: not found")
		}
		out[ResolveKey{q.Ref, PlatformString(q.Platform)}] = Resolution{Digest: "sha256:" + strings.Repeat("a", 64), Manifest: "sha256:" + strings.Repeat("a", 64)}
	}
	return out, nil
}

func (r *recordingSource) Fetch(ctx context.Context, ref, manifest string) (v1.Image, error) {
	r.refs = append(r.refs, "fetch "+ref)
	return nil, errors.New("fallback fetch")
}

func (r *recordingSource) Stats() registry.PullStats { return registry.PullStats{BlobsCached: 7} }

func (r *recordingSource) Preload(ctx context.Context, p *Plan) error {
	for _, ch := range p.Changes {
		r.refs = append(r.refs, "preload "+ch.Ref)
	}
	return nil
}

func (r *recordingSource) Close() error {
	r.refs = append(r.refs, "close")
	return nil
}

func TestMultiSourcePreload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	app, tools := testImage(t, 1, "amd64"), testImage(t, 2, "amd64")
	if err := localtest.WriteLayout(dir, []localtest.Named{{Name: "app", Image: app}, {Name: "tools", Image: tools}}); err != nil {
		t.Fatal(err)
	}
	m, _ := tools.Manifest()
	b, _ := os.ReadFile(filepath.Join(dir, "blobs", "sha256", m.Layers[1].Digest.Hex))
	b[0] ^= 0xff
	os.WriteFile(filepath.Join(dir, "blobs", "sha256", m.Layers[1].Digest.Hex), b, 0o644)
	local, st := newLocal(t)
	fb := &recordingSource{}
	ms := NewMultiSource(local, fb)
	p := &Plan{Changes: []Change{
		{Address: `cache.c["oci-layout:` + dir + `:app"]`, Ref: "oci-layout:" + dir + ":app", Action: ActionCreate, Manifest: digestOf(t, app)},
		{Address: `cache.c["oci-layout:` + dir + `:tools"]`, Ref: "oci-layout:" + dir + ":tools", Action: ActionReplace, Manifest: digestOf(t, tools)},
		{Address: `cache.c["alpine:3.20"]`, Ref: "alpine:3.20", Action: ActionCreate},
	}}
	err := ms.Preload(context.Background(), p)
	wantErr(t, err, `cache.c["oci-layout:`+dir+`:tools"]`, "corrupt")
	if strings.Contains(err.Error(), ":app") {
		t.Errorf("the intact image is reported: %v", err)
	}
	h, _ := v1.NewHash(digestOf(t, app))
	if !st.Has(h) {
		t.Error("the intact local image was not preloaded")
	}
	if len(fb.refs) != 1 || fb.refs[0] != "preload alpine:3.20" {
		t.Errorf("the fallback preloaded %q; want only the registry change", fb.refs)
	}
	if err := ms.Close(); err != nil || fb.refs[len(fb.refs)-1] != "close" {
		t.Errorf("Close did not close the fallback: %v %q", err, fb.refs)
	}
}

func TestMultiSourceDispatch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	app := testImage(t, 1, "amd64")
	if err := localtest.WriteLayout(dir, []localtest.Named{{Name: "app", Image: app}}); err != nil {
		t.Fatal(err)
	}
	local, _ := newLocal(t)
	fb := &recordingSource{}
	ms := NewMultiSource(local, fb)
	lref := "oci-layout:" + dir + ":app"
	out, err := ms.ResolveAll(context.Background(), []ResolveRequest{{Ref: "alpine:3.20", Platform: amd64}, {Ref: lref, Platform: amd64}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[ResolveKey{lref, "linux/amd64"}].Manifest != digestOf(t, app) || out[ResolveKey{"alpine:3.20", "linux/amd64"}].Digest == "" {
		t.Errorf("merged resolutions: %+v", out)
	}
	if len(fb.refs) != 1 || fb.refs[0] != "alpine:3.20" {
		t.Errorf("fallback saw %q; want only the registry reference", fb.refs)
	}
	img, err := ms.Fetch(context.Background(), lref, digestOf(t, app))
	if err != nil || digestOf(t, img) != digestOf(t, app) {
		t.Fatalf("local fetch: %v", err)
	}
	if _, err := ms.Fetch(context.Background(), "alpine:3.20", "sha256:"+strings.Repeat("a", 64)); err == nil || fb.refs[1] != "fetch alpine:3.20" {
		t.Errorf("registry fetch went to %q (%v)", fb.refs, err)
	}
	if st := ms.Stats(); st.BlobsCached != 7 || st.BlobsDownloaded != 3 {
		t.Errorf("stats %+v: want local copies plus the fallback's", st)
	}
	// Errors of both sides are reported together.
	_, err = ms.ResolveAll(context.Background(), []ResolveRequest{{Ref: "bad:1", Platform: amd64}, {Ref: "oci-layout:" + dir + ":nope", Platform: amd64}})
	wantErr(t, err, "bad:1: not found", `no image named "nope"`)

	// Without a fallback, registry references are refused by name; without
	// a local source, local ones.
	_, err = NewMultiSource(local, nil).ResolveAll(context.Background(), []ResolveRequest{{Ref: "alpine:3.20", Platform: amd64}})
	wantErr(t, err, "alpine:3.20: no registry or bundle source")
	_, err = NewMultiSource(nil, fb).ResolveAll(context.Background(), []ResolveRequest{{Ref: lref, Platform: amd64}})
	wantErr(t, err, "local sources are not available")
}

func TestImageName(t *testing.T) {
	for _, tc := range []struct{ ref, file, want string }{
		{"alpine:3.20", "alpine+3.20", "docker.io/library/alpine:3.20"},
		{"oci-layout:/l:app:1", "app+1", "docker.io/library/app:1"},
		{"oci-archive:a.tar:docker.io/library/alpine:3.20", "x", "docker.io/library/alpine:3.20"},
		{"docker-archive:/d.tar:localhost:5000/x/y:2", "y", "localhost:5000/x/y:2"},
		{"oci-layout:/l:v1", "v1", "v1"},
		{"oci-layout:/l", "Base", "localhost/base"},
		{"docker-archive:/d.tar", "tools/dock.sqsh", "localhost/dock.sqsh"},
	} {
		if got := ImageName(tc.ref, tc.file); got != tc.want {
			t.Errorf("ImageName(%q, %q) = %q, want %q", tc.ref, tc.file, got, tc.want)
		}
	}
}
