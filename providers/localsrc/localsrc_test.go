package localsrc_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/localsrc"
	"github.com/cachectl/cachectl/providers/localsrc/localsrctest"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

func digestOf(t *testing.T, img interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// resolve opens a source, resolves image in it for p and closes it.
func resolve(t *testing.T, kind localsrc.Kind, path, image string, p v1.Platform) (localsrc.Image, error) {
	t.Helper()
	src, err := localsrc.Open(kind, path)
	if err != nil {
		return localsrc.Image{}, err
	}
	defer src.Close()
	return src.Resolve(image, p)
}

// mustResolve resolves image for linux/amd64 and keeps the source open
// (closed at the end of the test) for reading it back.
func mustResolve(t *testing.T, kind localsrc.Kind, path, image string) (*localsrc.Source, localsrc.Image) {
	t.Helper()
	src, err := localsrc.Open(kind, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	img, err := src.Resolve(image, amd64)
	if err != nil {
		t.Fatal(err)
	}
	return src, img
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

func sha(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// readCheck reads back the image Resolve found (its manifest with Manifest,
// its blobs with OpenBlob), checks every blob against its descriptor, and
// checks it is want: the same config and the same layer contents (diff_ids).
func readCheck(t *testing.T, src *localsrc.Source, image string, img localsrc.Image, want v1.Image) {
	t.Helper()
	raw, m, err := src.Manifest(image, img.Manifest)
	if err != nil {
		t.Fatalf("Manifest(%s): %v", img.Manifest, err)
	}
	if sha(raw) != img.Manifest {
		t.Errorf("manifest bytes hash to %s, resolved %s", sha(raw), img.Manifest)
	}
	var size int64
	read := func(d v1.Descriptor) []byte {
		t.Helper()
		size += d.Size
		rc, n, err := src.OpenBlob(d.Digest)
		if err != nil {
			t.Fatalf("OpenBlob(%s): %v", d.Digest, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil || n != d.Size || int64(len(b)) != n || sha(b) != d.Digest {
			t.Fatalf("blob %s: %d bytes (OpenBlob says %d, descriptor %d), hashes to %s, %v", d.Digest, len(b), n, d.Size, sha(b), err)
		}
		return b
	}
	wc, _ := want.RawConfigFile()
	if gc := read(m.Config); !bytes.Equal(gc, wc) {
		t.Errorf("config differs")
	}
	wl, _ := want.Layers()
	if len(m.Layers) != len(wl) {
		t.Fatalf("%d layers, want %d", len(m.Layers), len(wl))
	}
	for i, d := range m.Layers {
		b := read(d)
		if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if b, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if wd, _ := wl[i].DiffID(); sha(b) != wd {
			t.Errorf("layer %d diff_id %s, want %s", i, sha(b), wd)
		}
	}
	if size != img.Size {
		t.Errorf("Size %d, the blobs sum to %d", img.Size, size)
	}
}

func TestOCILayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	app, tools := localsrctest.MustImage(t, 1, "amd64"), localsrctest.MustImage(t, 2, "amd64")
	if err := localsrctest.WriteLayout(dir, []localsrctest.Named{{Name: "app:1", Image: app}, {Name: "tools:2", Image: tools}}); err != nil {
		t.Fatal(err)
	}
	src, img := mustResolve(t, localsrc.OCILayout, dir, "app:1")
	if img.Digest != digestOf(t, app) || img.Manifest != img.Digest {
		t.Errorf("resolved %+v, want %s", img, digestOf(t, app))
	}
	readCheck(t, src, "app:1", img, app)

	// Without a name the layout must hold exactly one image.
	_, err := resolve(t, localsrc.OCILayout, dir, "", amd64)
	wantErr(t, err, "holds 2 images", `"app:1", "tools:2"`, "oci-layout:"+dir+":REF")
	// An unknown name lists the names there are.
	_, err = resolve(t, localsrc.OCILayout, dir, "app:2", amd64)
	wantErr(t, err, `no image named "app:2"`, `"app:1", "tools:2"`)

	one := filepath.Join(t.TempDir(), "one")
	if err := localsrctest.WriteLayout(one, []localsrctest.Named{{Image: tools}}); err != nil {
		t.Fatal(err)
	}
	img, err = resolve(t, localsrc.OCILayout, one, "", amd64)
	if err != nil || img.Manifest != digestOf(t, tools) {
		t.Fatalf("single unnamed image: %+v, %v", img, err)
	}

	// Not a layout, missing directory, a file.
	_, err = resolve(t, localsrc.OCILayout, t.TempDir(), "", amd64)
	wantErr(t, err, "no oci-layout file")
	_, err = resolve(t, localsrc.OCILayout, "/nonexistent/dir", "", amd64)
	wantErr(t, err, "/nonexistent/dir", "no such file")
	_, err = resolve(t, localsrc.OCILayout, filepath.Join(dir, "index.json"), "", amd64)
	wantErr(t, err, "not a directory", "oci-archive:")
	_, err = localsrc.Open("zip", dir)
	wantErr(t, err, `unknown local source kind "zip"`)
}

func TestMultiPlatform(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	idx, err := localsrctest.Index(1, "amd64", "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if err := localsrctest.WriteLayout(dir, nil, localsrctest.NamedIndex{Name: "multi", Index: idx}); err != nil {
		t.Fatal(err)
	}
	src, err := localsrc.Open(localsrc.OCILayout, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	im, _ := idx.IndexManifest()
	for i, p := range []v1.Platform{amd64, {OS: "linux", Architecture: "arm64", Variant: "v8"}} {
		img, err := src.Resolve("multi", p)
		if err != nil {
			t.Fatal(err)
		}
		if img.Digest != digestOf(t, idx) || img.Manifest != im.Manifests[i].Digest {
			t.Errorf("%s: resolved %+v; want index %s, manifest %s", p, img, digestOf(t, idx), im.Manifests[i].Digest)
		}
		want, _ := idx.Image(im.Manifests[i].Digest)
		readCheck(t, src, "multi", img, want)
	}
	_, err = src.Resolve("multi", v1.Platform{OS: "linux", Architecture: "ppc64le"})
	wantErr(t, err, "no image for platform linux/ppc64le", "available: linux/amd64, linux/arm64")

	// A single-platform image for another platform is refused.
	one := filepath.Join(t.TempDir(), "arm")
	if err := localsrctest.WriteLayout(one, []localsrctest.Named{{Name: "x", Image: localsrctest.MustImage(t, 1, "arm64")}}); err != nil {
		t.Fatal(err)
	}
	_, err = resolve(t, localsrc.OCILayout, one, "x", amd64)
	wantErr(t, err, "is for platform linux/arm64 only, not linux/amd64")
}

func TestOCIArchive(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "layout")
	app := localsrctest.MustImage(t, 1, "amd64")
	if err := localsrctest.WriteLayout(dir, []localsrctest.Named{{Name: "app:1", Image: app}, {Name: "tools:2", Image: localsrctest.MustImage(t, 2, "amd64")}}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(tmp, "app.tar")
	if err := localsrctest.TarDir(dir, file); err != nil {
		t.Fatal(err)
	}
	src, img := mustResolve(t, localsrc.OCIArchive, file, "app:1")
	if img.Manifest != digestOf(t, app) {
		t.Errorf("resolved %s, want %s", img.Manifest, digestOf(t, app))
	}
	readCheck(t, src, "app:1", img, app)
	_, err := resolve(t, localsrc.OCIArchive, file, "", amd64)
	wantErr(t, err, "holds 2 images", `"app:1", "tools:2"`)

	// A directory, a truncated archive (in a member, between members), a
	// gzipped one, an empty one.
	_, err = resolve(t, localsrc.OCIArchive, dir, "", amd64)
	wantErr(t, err, "is a directory", "oci-layout:")
	b, _ := os.ReadFile(file)
	cut := filepath.Join(tmp, "cut.tar")
	os.WriteFile(cut, b[:len(b)/2], 0o644)
	_, err = resolve(t, localsrc.OCIArchive, cut, "app:1", amd64)
	wantErr(t, err, "truncated")
	os.WriteFile(cut, b[:len(b)-1024], 0o644) // the end-of-archive marker gone
	_, err = resolve(t, localsrc.OCIArchive, cut, "app:1", amd64)
	wantErr(t, err, "no end-of-archive marker", "truncated")
	gz := filepath.Join(tmp, "gz.tar")
	os.WriteFile(gz, []byte{0x1f, 0x8b, 8, 0, 0, 0}, 0o644)
	_, err = resolve(t, localsrc.OCIArchive, gz, "", amd64)
	wantErr(t, err, "gzip-compressed")
	empty := filepath.Join(tmp, "empty.tar")
	os.WriteFile(empty, nil, 0o644)
	_, err = resolve(t, localsrc.OCIArchive, empty, "", amd64)
	wantErr(t, err, "the archive is empty")
}

func TestDockerArchive(t *testing.T) {
	tmp := t.TempDir()
	app, tools := localsrctest.MustImage(t, 1, "amd64"), localsrctest.MustImage(t, 2, "amd64")
	for _, f := range []struct {
		name   string
		format localsrctest.DockerFormat
	}{{"classic", localsrctest.DockerClassic}, {"oci", localsrctest.DockerOCI}} {
		t.Run(f.name, func(t *testing.T) {
			one := filepath.Join(tmp, f.name+"-one.tar")
			if err := localsrctest.WriteDockerArchive(one, f.format, localsrctest.Named{Name: "app:1", Image: app}); err != nil {
				t.Fatal(err)
			}
			several := filepath.Join(tmp, f.name+"-several.tar")
			if err := localsrctest.WriteDockerArchive(several, f.format, localsrctest.Named{Name: "app:1", Image: app}, localsrctest.Named{Name: "registry.local:5000/tools:2", Image: tools}); err != nil {
				t.Fatal(err)
			}
			src, img := mustResolve(t, localsrc.DockerArchive, one, "")
			if img.Digest != img.Manifest || img.Size <= 0 {
				t.Errorf("resolution %+v", img)
			}
			readCheck(t, src, "", img, app)

			// The conversion is deterministic: the same image in another
			// archive (here with a second image) resolves to the same digest,
			// also when named in the long form.
			for _, name := range []string{"app:1", "docker.io/library/app:1"} {
				i2, err := resolve(t, localsrc.DockerArchive, several, name, amd64)
				if err != nil {
					t.Fatal(err)
				}
				if i2.Manifest != img.Manifest {
					t.Errorf("%s resolved to %s, want %s", name, i2.Manifest, img.Manifest)
				}
			}
			src3, i3 := mustResolve(t, localsrc.DockerArchive, several, "registry.local:5000/tools:2")
			if i3.Manifest == img.Manifest {
				t.Error("two different images resolved to one digest")
			}
			readCheck(t, src3, "registry.local:5000/tools:2", i3, tools)

			_, err := resolve(t, localsrc.DockerArchive, several, "", amd64)
			wantErr(t, err, "holds 2 images", `"app:1", "registry.local:5000/tools:2"`, "docker-archive:"+several+":REPO:TAG")
			_, err = resolve(t, localsrc.DockerArchive, several, "app:2", amd64)
			wantErr(t, err, `no image tagged "app:2"`, `"app:1"`)
			_, err = resolve(t, localsrc.DockerArchive, filepath.Join(tmp, "missing.tar"), "", amd64)
			wantErr(t, err, "no such file")
		})
	}
}

// TestSkopeoArchives reads archives written by skopeo (containers/image),
// the reference implementation of these formats, and checks they resolve to
// what the layout they were copied from holds.
func TestSkopeoArchives(t *testing.T) {
	skopeo := registrytest.RequireTool(t, "skopeo")
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "layout")
	app := localsrctest.MustImage(t, 3, "amd64")
	if err := localsrctest.WriteLayout(dir, []localsrctest.Named{{Name: "app:1", Image: app}}); err != nil {
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
	src, img := mustResolve(t, localsrc.OCIArchive, filepath.Join(tmp, "oci.tar"), "app:1")
	readCheck(t, src, "app:1", img, app)
	// skopeo stores the layers uncompressed: the diff_ids and config survive.
	for _, name := range []string{"", "app:1"} {
		src, img := mustResolve(t, localsrc.DockerArchive, filepath.Join(tmp, "docker.tar"), name)
		readCheck(t, src, name, img, app)
	}
}

// TestCorruptManifest: manifests are verified when read, so a corrupt one
// fails Resolve already.
func TestCorruptManifest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	app := localsrctest.MustImage(t, 1, "amd64")
	if err := localsrctest.WriteLayout(dir, []localsrctest.Named{{Name: "app:1", Image: app}}); err != nil {
		t.Fatal(err)
	}
	h := digestOf(t, app)
	p := filepath.Join(dir, "blobs", "sha256", h.Hex)
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0xff
	os.WriteFile(p, b, 0o644)
	_, err := resolve(t, localsrc.OCILayout, dir, "app:1", amd64)
	wantErr(t, err, "is corrupt", h.String())
}

// TestSourceChanged: Manifest refuses what a source no longer holds.
func TestSourceChanged(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "layout")
	if err := localsrctest.WriteLayout(dir, []localsrctest.Named{{Name: "app", Image: localsrctest.MustImage(t, 1, "amd64")}}); err != nil {
		t.Fatal(err)
	}
	i1, err := resolve(t, localsrc.OCILayout, dir, "app", amd64)
	if err != nil {
		t.Fatal(err)
	}
	if err := localsrctest.WriteLayout(dir, []localsrctest.Named{{Name: "app", Image: localsrctest.MustImage(t, 2, "amd64")}}); err != nil {
		t.Fatal(err)
	}
	src, i2 := mustResolve(t, localsrc.OCILayout, dir, "app")
	if i1.Digest == i2.Digest {
		t.Fatal("a new image in the layout resolved to the old digest")
	}
	_, _, err = src.Manifest("app", i1.Manifest)
	wantErr(t, err, "no longer in", "plan again")

	file := filepath.Join(tmp, "d.tar")
	localsrctest.WriteDockerArchive(file, localsrctest.DockerClassic, localsrctest.Named{Image: localsrctest.MustImage(t, 1, "amd64")})
	d1, err := resolve(t, localsrc.DockerArchive, file, "", amd64)
	if err != nil {
		t.Fatal(err)
	}
	localsrctest.WriteDockerArchive(file, localsrctest.DockerClassic, localsrctest.Named{Image: localsrctest.MustImage(t, 2, "amd64")})
	src, _ = mustResolve(t, localsrc.DockerArchive, file, "")
	_, _, err = src.Manifest("", d1.Manifest)
	wantErr(t, err, "changed since the plan")
}
