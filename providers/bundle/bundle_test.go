package bundle_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/bundle"
	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/providers/store"
)

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

// putImage stores img's manifest, config and layers and returns the
// bundle entry for ref.
func putImage(t *testing.T, st *store.Store, img v1.Image, ref string) bundle.Image {
	t.Helper()
	ctx := context.Background()
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	h, _ := img.Digest()
	if err := st.PutBytes(ctx, h, raw); err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.RawConfigFile()
	ch, _ := img.ConfigName()
	if err := st.PutBytes(ctx, ch, cfg); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		sz, _ := l.Size()
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Put(ctx, d, sz, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	cf, _ := img.ConfigFile()
	return bundle.Image{Ref: ref, Platform: cf.OS + "/" + cf.Architecture, Digest: h.String(), Manifest: h.String()}
}

// fixture: three images on a shared two-layer base, in a store.
type fixture struct {
	st     *store.Store
	images []bundle.Image
	unique map[v1.Hash]int64 // every distinct blob (manifests, configs, layers)
}

func newFixture(t *testing.T, n int) *fixture {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, unique: map[v1.Hash]int64{}}
	base := registrytest.Image(t, 2, 64<<10, 1)
	for i := 0; i < n; i++ {
		img := registrytest.ImageOn(t, base, amd64, 1, 32<<10, int64(10+i))
		f.add(t, img, "example.com/app"+string(rune('a'+i))+":1")
	}
	return f
}

func (f *fixture) add(t *testing.T, img v1.Image, ref string) bundle.Image {
	e := putImage(t, f.st, img, ref)
	f.images = append(f.images, e)
	m, _ := img.Manifest()
	raw, _ := img.RawManifest()
	h, _ := img.Digest()
	f.unique[h] = int64(len(raw))
	f.unique[m.Config.Digest] = m.Config.Size
	for _, l := range m.Layers {
		f.unique[l.Digest] = l.Size
	}
	return e
}

func fixedNow() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

func write(t *testing.T, path string, imgs []bundle.Image, src bundle.BlobSource, base *bundle.Bundle) *bundle.WriteResult {
	t.Helper()
	res, err := bundle.Write(context.Background(), path, imgs, src, bundle.WriteOptions{Base: base, CachectlVersion: "test", Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func open(t *testing.T, path string) *bundle.Bundle {
	t.Helper()
	b, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestRoundTripAndDedupe(t *testing.T) {
	f := newFixture(t, 3)
	// the same image under a second reference: listed twice, stored once
	img0 := f.images[0]
	alias := img0
	alias.Ref = "mirror.example.com/app:latest"
	imgs := append(append([]bundle.Image{}, f.images...), alias, f.images[1]) // and a duplicate entry
	path := filepath.Join(t.TempDir(), "b.tar")
	res := write(t, path, imgs, f.st, nil)

	var uniqueBytes int64
	for _, n := range f.unique {
		uniqueBytes += n
	}
	if res.Images != 4 || res.Blobs != len(f.unique) || res.BlobBytes != uniqueBytes || res.Skipped != 0 {
		t.Fatalf("result %+v; want 4 images, %d blobs of %d bytes", res, len(f.unique), uniqueBytes)
	}
	b := open(t, path)
	if b.ID != res.ID || b.Meta.Incremental() {
		t.Fatalf("ID %s (want %s), incremental %v", b.ID, res.ID, b.Meta.Incremental())
	}
	rep, err := b.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blobs != len(f.unique) || rep.BlobBytes != uniqueBytes || rep.Images != 4 {
		t.Fatalf("report %+v", rep)
	}
	members := b.Members()
	if members[0] != image.LayoutFile || members[1] != image.IndexFile || members[2] != bundle.MetaFile || members[len(members)-1] != bundle.ChecksumsFile {
		t.Fatalf("member order %v", members)
	}
	for _, want := range append(f.images, alias) {
		got, ok := b.Lookup(want.Ref, "linux/amd64")
		if !ok || got.Manifest != want.Manifest || got.Digest != want.Digest || got.Size == 0 {
			t.Fatalf("Lookup(%s) = %+v, %v", want.Ref, got, ok)
		}
	}
	if _, ok := b.Lookup(img0.Ref, "linux/arm64"); ok {
		t.Fatal("found an image for a platform the bundle does not have")
	}
	// every blob reads back byte for byte, in place
	for h, size := range f.unique {
		r, n, err := b.OpenBlob(h)
		if err != nil || n != size {
			t.Fatalf("OpenBlob(%s) = %d, %v", h, n, err)
		}
		got, _ := io.ReadAll(r)
		want, _ := os.ReadFile(f.st.Path(h))
		if string(got) != string(want) {
			t.Fatalf("blob %s differs", h)
		}
	}
	// deterministic: the same input gives the same bytes
	path2 := filepath.Join(t.TempDir(), "b.tar")
	if res2 := write(t, path2, imgs, f.st, nil); res2.ID != res.ID {
		t.Fatalf("second write has ID %s, first %s", res2.ID, res.ID)
	}
	// no temporary files are left next to the bundle
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries", len(entries))
	}
}

func TestIncremental(t *testing.T) {
	f := newFixture(t, 2)
	dir := t.TempDir()
	basePath := filepath.Join(dir, "base.tar")
	write(t, basePath, f.images, f.st, nil)
	base := open(t, basePath)

	// a new image on the same base, and a moved tag on app a
	b0 := registrytest.Image(t, 2, 64<<10, 1)
	c := f.add(t, registrytest.ImageOn(t, b0, amd64, 1, 32<<10, 99), "example.com/appc:1")
	moved := putImage(t, f.st, registrytest.ImageOn(t, b0, amd64, 1, 32<<10, 100), f.images[0].Ref)
	imgs := []bundle.Image{moved, f.images[1], c}
	incPath := filepath.Join(dir, "inc.tar")
	res := write(t, incPath, imgs, f.st, base)
	// only the two new images' manifests, configs and top layers
	if res.Blobs != 6 || res.Images != 3 {
		t.Fatalf("incremental wrote %+v; want 6 blobs (2 manifests, 2 configs, 2 layers)", res)
	}
	inc := open(t, incPath)
	if !inc.Meta.Incremental() || inc.Meta.Base.ID != base.ID || inc.Meta.Base.File != "base.tar" {
		t.Fatalf("base %+v, want %s", inc.Meta.Base, base.ID)
	}
	rep, err := inc.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.LeftOut != res.Skipped || rep.LeftOut == 0 {
		t.Fatalf("report %+v, write %+v", rep, res)
	}
	// every reference is listed, even those whose blobs are all in the base
	for _, img := range imgs {
		if got, ok := inc.Lookup(img.Ref, "linux/amd64"); !ok || got.Manifest != img.Manifest {
			t.Fatalf("incremental bundle lacks %s", img.Ref)
		}
	}
	if h, _ := v1.NewHash(f.images[1].Manifest); inc.Has(h) {
		t.Fatal("incremental bundle holds a manifest its base has")
	}
}

// tamper writes a copy of path with one byte flipped in the middle of
// the member holding content and returns the copy's path.
func tamper(t *testing.T, path string, content []byte) string {
	t.Helper()
	raw, _ := os.ReadFile(path)
	at := bytes.Index(raw, content)
	if at < 0 {
		t.Fatal("content not found in the bundle")
	}
	raw[at+len(content)/2] ^= 0xff
	out := filepath.Join(t.TempDir(), "tampered.tar")
	if err := os.WriteFile(out, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCorruptedMember(t *testing.T) {
	f := newFixture(t, 2)
	path := filepath.Join(t.TempDir(), "b.tar")
	write(t, path, f.images, f.st, nil)

	// a byte flipped inside a layer: Open reads headers only and accepts
	// it; Verify names the member; the blob no longer matches its digest
	var layer v1.Hash
	for h, size := range f.unique {
		if size > 60<<10 {
			layer = h
		}
	}
	content, _ := os.ReadFile(f.st.Path(layer))
	b := open(t, tamper(t, path, content))
	_, err := b.Verify(context.Background())
	if !errors.Is(err, bundle.ErrCorrupt) || !strings.Contains(err.Error(), "blobs/sha256/"+layer.Hex+" does not match its checksum") {
		t.Fatalf("Verify of a tampered layer: %v", err)
	}

	// a byte flipped in the bundle index: refused at Open
	meta := []byte(`"cachectl_version": "test"`)
	_, err = bundle.Open(tamper(t, path, meta))
	if !errors.Is(err, bundle.ErrCorrupt) || !strings.Contains(err.Error(), "cachectl-bundle.json does not match its checksum") {
		t.Fatalf("Open of a tampered index: %v", err)
	}

	// not a bundle at all
	junk := filepath.Join(t.TempDir(), "junk.tar")
	os.WriteFile(junk, bytes.Repeat([]byte("x"), 4096), 0o644)
	if _, err := bundle.Open(junk); err == nil {
		t.Fatal("opened junk")
	}
}

func TestTruncated(t *testing.T) {
	f := newFixture(t, 2)
	path := filepath.Join(t.TempDir(), "b.tar")
	write(t, path, f.images, f.st, nil)
	raw, _ := os.ReadFile(path)
	sums := bytes.LastIndex(raw, []byte("SHA256SUMS"))
	for _, tc := range []struct {
		name string
		size int
		want string
	}{
		{"mid blob", len(raw) / 2, "was the copy interrupted"},
		{"before the checksum manifest", sums, "SHA256SUMS"},
		{"mid header", 700, "truncated"},
		{"empty", 0, "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "t.tar")
			os.WriteFile(p, raw[:tc.size], 0o644)
			_, err := bundle.Open(p)
			if !errors.Is(err, bundle.ErrTruncated) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open of a bundle truncated to %d of %d bytes: %v", tc.size, len(raw), err)
			}
		})
	}
}

// TestWriteFailureKeepsOldFile: a failed write leaves the previous bundle
// and no temporary file.
func TestWriteFailureKeepsOldFile(t *testing.T) {
	f := newFixture(t, 1)
	path := filepath.Join(t.TempDir(), "b.tar")
	write(t, path, f.images, f.st, nil)
	before, _ := os.ReadFile(path)
	var layer v1.Hash
	for h, size := range f.unique {
		if size > 60<<10 {
			layer = h
		}
	}
	os.Remove(f.st.Path(layer))
	if _, err := bundle.Write(context.Background(), path, f.images, f.st, bundle.WriteOptions{}); err == nil {
		t.Fatal("wrote a bundle with a blob missing from the source")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("the old bundle changed")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("%d entries left next to the bundle", len(entries))
	}
}

// TestMissingBlob: a bundle rebuilt without one layer (and without its
// checksum line, so SHA256SUMS is self-consistent) is refused: its index
// says the blob is included.
func TestMissingBlob(t *testing.T) {
	f := newFixture(t, 2)
	path := filepath.Join(t.TempDir(), "b.tar")
	write(t, path, f.images, f.st, nil)
	var layer v1.Hash
	for h, size := range f.unique {
		if size > 60<<10 {
			layer = h
		}
	}
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var buf bytes.Buffer
	tr, tw := tar.NewReader(in), tar.NewWriter(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if h.Name == "blobs/sha256/"+layer.Hex {
			continue
		}
		if h.Name == bundle.ChecksumsFile {
			var kept []string
			for _, l := range strings.SplitAfter(string(data), "\n") {
				if !strings.Contains(l, layer.Hex) {
					kept = append(kept, l)
				}
			}
			data = []byte(strings.Join(kept, ""))
			h.Size = int64(len(data))
		}
		tw.WriteHeader(h)
		tw.Write(data)
	}
	tw.Close()
	out := filepath.Join(t.TempDir(), "missing.tar")
	os.WriteFile(out, buf.Bytes(), 0o644)
	_, err = bundle.Open(out)
	if !errors.Is(err, bundle.ErrCorrupt) || !strings.Contains(err.Error(), "blob "+layer.String()+" is listed as included but is not in the bundle") {
		t.Fatalf("Open of a bundle without a layer: %v", err)
	}
}
