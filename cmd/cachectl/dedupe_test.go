package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// countingProxy forwards to a registry and counts the bytes of blob bodies
// it serves: whole blobs, and the byte ranges plan reads (gzip trailers).
type countingProxy struct {
	addr       string
	blobBytes  atomic.Int64
	rangeBytes atomic.Int64
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func startCountingProxy(t *testing.T, upstream string) *countingProxy {
	u, _ := url.Parse(upstream)
	cp := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method == http.MethodGet && strings.Contains(r.Request.URL.Path, "/blobs/") {
			if r.StatusCode == http.StatusPartialContent && r.Request.Header.Get("Range") != "" {
				r.Body = countingBody{r.Body, &cp.rangeBytes}
			} else {
				r.Body = countingBody{r.Body, &cp.blobBytes}
			}
		}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	cp.addr = ln.Addr().String()
	return cp
}

// TestDedupeAcrossRuntimes: the same three images (sharing base layers) in
// an apptainer, an enroot and a podman cache: the bytes fetched from the
// registry equal the unique blob bytes (each blob once), besides the last 8
// bytes of each layer that plan reads for its write bound; a no-op apply
// fetches 0 bytes.
func TestDedupeAcrossRuntimes(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	registrytest.RequireTool(t, "mksquashfs")
	srv := registrytest.StartDistribution(t)
	proxy := startCountingProxy(t, srv.URL)
	plat := v1.Platform{OS: "linux", Architecture: "amd64"}
	base := registrytest.Image(t, 2, 256<<10, 1)
	unique := map[v1.Hash]int64{}
	layers := map[v1.Hash]bool{}
	var refs []string
	for i := 0; i < 3; i++ {
		img := registrytest.ImageOn(t, base, plat, 2, 128<<10, int64(10+i))
		ref := fmt.Sprintf("%s/dedupe/img%d:1", srv.Addr, i)
		registrytest.Push(t, img, ref)
		refs = append(refs, fmt.Sprintf("%s/dedupe/img%d:1", proxy.addr, i))
		m, _ := img.Manifest()
		unique[m.Config.Digest] = m.Config.Size
		for _, l := range m.Layers {
			unique[l.Digest] = l.Size
			layers[l.Digest] = true
		}
	}
	var want int64
	for _, n := range unique {
		want += n
	}
	dir := t.TempDir()
	quoted := `"` + strings.Join(refs, `", "`) + `"`
	specText := fmt.Sprintf(`
flavor "all" { images = [%s] }
cache "sif"  {
  runtime = "apptainer"
  root    = "%[2]s/sif"
  flavors = ["all"]
}
cache "sqsh" {
  runtime = "enroot"
  root    = "%[2]s/sqsh"
  flavors = ["all"]
}
cache "oci" {
  runtime = "podman"
  root    = "%[2]s/oci"
  flavors = ["all"]
}
`, quoted, dir)
	specFile := filepath.Join(dir, "spec.hcl")
	os.WriteFile(specFile, []byte(specText), 0o644)
	run := func() string {
		var out bytes.Buffer
		args := []string{"-f", specFile, "--store", filepath.Join(dir, "store"), "apply", "--auto-approve", "--progress", "none"}
		if code := Run(context.Background(), args, strings.NewReader(""), &out, &out); code != 0 {
			t.Fatalf("apply exit %d:\n%s", code, out.String())
		}
		return out.String()
	}
	out := run()
	if !strings.Contains(out, "9 added") {
		t.Fatalf("want 9 artifacts:\n%s", out)
	}
	got := proxy.blobBytes.Load()
	t.Logf("3 images x 3 runtimes: %d unique blobs, %d unique blob bytes, %d blob bytes fetched", len(unique), want, got)
	if got != want {
		t.Fatalf("fetched %d blob bytes, want exactly the unique blob bytes %d", got, want)
	}
	if r := proxy.rangeBytes.Load(); r != 8*int64(len(layers)) {
		t.Errorf("plan read %d bytes of gzip trailers, want 8 per layer (%d)", r, 8*len(layers))
	}
	proxy.blobBytes.Store(0)
	out = run()
	if !strings.Contains(out, "No changes") || proxy.blobBytes.Load() != 0 {
		t.Fatalf("no-op apply fetched %d bytes:\n%s", proxy.blobBytes.Load(), out)
	}
}
