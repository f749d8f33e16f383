// Package bundletest makes bundles for tests: images on a shared base
// layer, put in a "connected host" blob store, and bundles of them written
// with bundle.Write.
package bundletest

import (
	"context"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/cachectl/cachectl/providers/bundle"
	"github.com/cachectl/cachectl/providers/store"
)

// Fixture holds the images of a test and the store they are in.
type Fixture struct {
	// Src is the connected host's store.
	Src *store.Store
	// Images by reference.
	Images map[string]v1.Image
	// Dir is where Write puts bundles.
	Dir string
}

// New makes one image per reference: a shared 48 KiB base layer and a
// 16 KiB layer of its own.
func New(t testing.TB, refs ...string) *Fixture {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &Fixture{Src: st, Images: map[string]v1.Image{}, Dir: t.TempDir()}
	baseLayer, err := random.Layer(48<<10, "application/vnd.docker.image.rootfs.diff.tar.gzip")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		f.Add(t, r, baseLayer)
	}
	return f
}

// Add makes an image of base and a random layer and stores it as ref.
func (f *Fixture) Add(t testing.TB, ref string, base v1.Layer) {
	t.Helper()
	top, err := random.Layer(16<<10, "application/vnd.docker.image.rootfs.diff.tar.gzip")
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, base, top)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	raw, _ := img.RawManifest()
	h, _ := img.Digest()
	cfg, _ := img.RawConfigFile()
	ch, _ := img.ConfigName()
	if err := f.Src.PutBytes(ctx, h, raw); err != nil {
		t.Fatal(err)
	}
	if err := f.Src.PutBytes(ctx, ch, cfg); err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	for _, l := range ls {
		d, _ := l.Digest()
		rc, _ := l.Compressed()
		if _, err := f.Src.Put(ctx, d, -1, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	f.Images[ref] = img
}

// Write writes a bundle of refs (incremental over base when set) to
// Dir/file and returns its path.
func (f *Fixture) Write(t testing.TB, file string, base *bundle.Bundle, refs ...string) string {
	t.Helper()
	var imgs []bundle.Image
	for _, r := range refs {
		h, _ := f.Images[r].Digest()
		imgs = append(imgs, bundle.Image{Ref: r, Platform: "linux/amd64", Digest: h.String(), Manifest: h.String()})
	}
	p := filepath.Join(f.Dir, file)
	if _, err := bundle.Write(context.Background(), p, imgs, f.Src, bundle.WriteOptions{Base: base}); err != nil {
		t.Fatal(err)
	}
	return p
}
