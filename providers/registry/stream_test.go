package registry_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/cachectl/cachectl/providers/registry"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// TestPullStream: the image PullStream returns can be read while a layer
// still downloads: with the oldest layer's download stalled, the newest
// layer reads to its end; once the stall ends, the pull completes and the
// image is whole.
func TestPullStream(t *testing.T) {
	t.Parallel()
	srv := registrytest.StartDistribution(t)
	img := registrytest.Image(t, 3, 256<<10, 90)
	registrytest.Push(t, img, srv.Ref("stream/app:1"))
	layers, _ := img.Layers()
	oldest, _ := layers[0].Digest()
	px := registrytest.StartSlowProxy(t, srv.URL, 0, registrytest.MatchBlobDigests(oldest.String()))
	px.SetStall(true)
	c := client(t, registry.Options{RequestTimeout: time.Second, TotalRetryTime: 30 * time.Second})
	st := newStore(t)
	p, err := c.PullStream(registrytest.Context(t), px.Addr+"/stream/app:1", digestOf(t, img), st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Image().Layers()
	if err != nil || len(got) != 3 {
		t.Fatalf("layers: %v", err)
	}
	want, _ := layers[2].Compressed()
	wantBytes, _ := io.ReadAll(want)
	rc, err := got[2].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	newest, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(newest, wantBytes) {
		t.Fatalf("newest layer while the oldest is stalled: %d bytes, %v", len(newest), err)
	}
	if st.Has(oldest) {
		t.Fatal("the stalled layer is complete")
	}
	px.SetStall(false) // the client gives up on the stalled request and resumes
	final, stats, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(final); err != nil {
		t.Fatal(err)
	}
	if stats.BlobsDownloaded != 5 { // manifest, config, 3 layers
		t.Errorf("stats %+v", stats)
	}
}

// TestPullDownloadsLayersAtOnce: Pull (no reader follows the layers) does
// not wait for one layer before it starts the next: with the newest layer
// stalled halfway (over 8 MiB still to come), the older layers are
// complete while it hangs.
func TestPullDownloadsLayersAtOnce(t *testing.T) {
	t.Parallel()
	srv := registrytest.StartDistribution(t)
	img := registrytest.Image(t, 3, 20<<20, 91)
	registrytest.Push(t, img, srv.Ref("stream/big:1"))
	layers, _ := img.Layers()
	newest, _ := layers[2].Digest()
	px := registrytest.StartSlowProxy(t, srv.URL, 0, registrytest.MatchBlobDigests(newest.String()))
	px.SetStall(true)
	c := client(t, registry.Options{RequestTimeout: time.Minute, TotalRetryTime: 2 * time.Minute})
	st := newStore(t)
	ctx, cancel := context.WithCancel(registrytest.Context(t))
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Pull(ctx, px.Addr+"/stream/big:1", digestOf(t, img), st)
		done <- err
	}()
	older := func() bool {
		for _, l := range layers[:2] {
			d, _ := l.Digest()
			if !st.Has(d) {
				return false
			}
		}
		return true
	}
	// Not a timing bound: in order, the older layers wait for the stalled
	// one's request timeout (a minute).
	deadline := time.Now().Add(20 * time.Second)
	for !older() {
		if time.Now().After(deadline) {
			t.Fatal("the older layers did not download while the newest was stalled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.Has(newest) {
		t.Fatal("the stalled layer is complete")
	}
	cancel() // the stalled request would wait out its minute
	if err := <-done; err == nil {
		t.Fatal("a cancelled pull of a stalled layer succeeded")
	}
}
