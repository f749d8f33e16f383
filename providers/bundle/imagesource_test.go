package bundle_test

import (
	"context"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/bundle"
	"github.com/cachectl/cachectl/providers/bundle/bundletest"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/providers/store"
)

func openSource(t *testing.T, paths ...string) *bundle.ImageSource {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := bundle.OpenImageSource(st, paths...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func reqs(refs ...string) []source.ResolveRequest {
	var out []source.ResolveRequest
	for _, r := range refs {
		out = append(out, source.ResolveRequest{Ref: r, Platform: amd64})
	}
	return out
}

func TestImageSourceResolveAndFetch(t *testing.T) {
	f := bundletest.New(t, "alpine:3.20", "example.com/tools:1")
	s := openSource(t, f.Write(t, "b.tar", nil, "alpine:3.20", "example.com/tools:1"))
	res, err := s.ResolveAll(context.Background(), reqs("alpine:3.20", "example.com/tools:1", "alpine:3.20"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"alpine:3.20", "example.com/tools:1"} {
		h, _ := f.Images[ref].Digest()
		r := res[source.ResolveKey{Ref: ref, Platform: "linux/amd64"}]
		if r.Manifest != h.String() || r.Size < 64<<10 || r.Download != r.Size+int64(len(mustRaw(t, f.Images[ref]))) {
			t.Fatalf("%s resolved to %+v (manifest %s)", ref, r, h)
		}
	}
	// fetch both: the shared base layer is copied once, every blob verified
	for _, ref := range []string{"alpine:3.20", "example.com/tools:1"} {
		h, _ := f.Images[ref].Digest()
		img, err := s.Fetch(context.Background(), ref, h.String())
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := img.Digest(); got != h {
			t.Fatalf("fetched %s, want %s", got, h)
		}
	}
	st := s.Stats()
	if st.BlobsDownloaded != 7 || st.BlobsCached != 1 { // 2 manifests, 2 configs, 3 distinct layers; 1 shared
		t.Fatalf("stats %+v", st)
	}
	// once in the store, nothing more to copy
	res, _ = s.ResolveAll(context.Background(), reqs("alpine:3.20"))
	if d := res[source.ResolveKey{Ref: "alpine:3.20", Platform: "linux/amd64"}].Download; d != 0 {
		t.Fatalf("download %d after fetch", d)
	}
}

func mustRaw(t *testing.T, img v1.Image) []byte {
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestImageSourceMissingImages(t *testing.T) {
	f := bundletest.New(t, "alpine:3.20")
	s := openSource(t, f.Write(t, "b.tar", nil, "alpine:3.20"))
	_, err := s.ResolveAll(context.Background(), append(reqs("alpine:3.20", "nosuch/a:1", "nosuch/b:2"),
		source.ResolveRequest{Ref: "alpine:3.20", Platform: v1.Platform{OS: "linux", Architecture: "arm64"}}))
	if err == nil {
		t.Fatal("no error for images the bundle lacks")
	}
	for _, want := range []string{"lacks 3 image(s)", "nosuch/a:1 (linux/amd64)", "nosuch/b:2 (linux/amd64)", "alpine:3.20 (linux/arm64) (the bundle has it for linux/amd64 only)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestImageSourceIncremental(t *testing.T) {
	f := bundletest.New(t, "alpine:3.20", "example.com/tools:1")
	basePath := f.Write(t, "base.tar", nil, "alpine:3.20")
	base, err := bundle.Open(basePath)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	incPath := f.Write(t, "inc.tar", base, "alpine:3.20", "example.com/tools:1")

	// alone, over an empty store: alpine's blobs are nowhere
	s := openSource(t, incPath)
	_, err = s.ResolveAll(context.Background(), reqs("alpine:3.20", "example.com/tools:1"))
	if err == nil || !strings.Contains(err.Error(), "alpine:3.20 (linux/amd64)") || !strings.Contains(err.Error(), "extends base.tar") {
		t.Fatalf("incremental bundle without its base: %v", err)
	}
	// tools' own blobs are in the incremental bundle, but it shares the
	// base layer with alpine, which only the base bundle holds
	if !strings.Contains(err.Error(), "example.com/tools:1 (linux/amd64): 1 blob(s)") {
		t.Fatalf("error does not name the shared layer tools lacks: %v", err)
	}

	// with the base given too
	s = openSource(t, incPath, basePath)
	res, err := s.ResolveAll(context.Background(), reqs("alpine:3.20", "example.com/tools:1"))
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range res {
		if _, err := s.Fetch(context.Background(), k.Ref, r.Manifest); err != nil {
			t.Fatal(err)
		}
	}

	// with the base applied before (its blobs in the store)
	s2, err := bundle.OpenImageSource(s.Store, incPath)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.ResolveAll(context.Background(), reqs("alpine:3.20", "example.com/tools:1")); err != nil {
		t.Fatal(err)
	}
}
