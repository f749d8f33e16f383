package registry_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/cachectl/cachectl/providers/registry"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// BlobTail reads the last bytes of a layer with one Range request against
// the real distribution registry; a registry that ignores Range (here a
// proxy that drops the header) gets ErrNoRange instead of a whole download.
func TestBlobTail(t *testing.T) {
	srv := registrytest.StartDistribution(t)
	img := registrytest.Image(t, 1, 1<<20, 7)
	ref := srv.Addr + "/tail/img:1"
	registrytest.Push(t, img, ref)
	l, _ := img.Layers()
	d, err := l[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := l[0].Compressed()
	blob, _ := io.ReadAll(rc)
	m, _ := img.Manifest()
	desc := m.Layers[0]
	if desc.Digest != d {
		t.Fatal("manifest and layer disagree")
	}
	c := client(t, registry.Options{})
	got, err := c.BlobTail(t.Context(), ref, desc, 8)
	if err != nil || !bytes.Equal(got, blob[len(blob)-8:]) {
		t.Fatalf("BlobTail = %x, %v; want %x", got, err, blob[len(blob)-8:])
	}

	u, _ := url.Parse(srv.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	director := rp.Director
	rp.Director = func(r *http.Request) { director(r); r.Header.Del("Range") }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: rp}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	_, err = c.BlobTail(t.Context(), ln.Addr().String()+"/tail/img:1", desc, 8)
	if !errors.Is(err, registry.ErrNoRange) {
		t.Fatalf("without Range support: %v, want ErrNoRange", err)
	}
}
