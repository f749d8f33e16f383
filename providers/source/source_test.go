package source

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cachectl/cachectl/providers/store"
)

func TestCounter(t *testing.T) {
	var c Counter
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Copied(100)
			c.Cached()
		}()
	}
	wg.Wait()
	c.Add(Stats{BytesDownloaded: 1, BlobsDownloaded: 1, BlobsCached: 1})
	if got, want := c.Stats(), (Stats{BytesDownloaded: 1001, BlobsDownloaded: 11, BlobsCached: 11}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestKey(t *testing.T) {
	r := ResolveRequest{Ref: "alpine:3.20", Platform: v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}
	if got := r.Key(); got != (ResolveKey{Ref: "alpine:3.20", Platform: "linux/arm64/v8"}) {
		t.Errorf("Key = %+v", got)
	}
}

// TestUnpackedSize: the trailer comes from the store when it holds the
// layer (the source is not asked), else from the source.
func TestUnpackedSize(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(bytes.Repeat([]byte("layer "), 1000))
	zw.Close()
	blob := buf.Bytes()
	h, _, _ := v1.SHA256(bytes.NewReader(blob))
	d := v1.Descriptor{MediaType: types.OCILayer, Digest: h, Size: int64(len(blob))}
	fromSource := func() ([]byte, error) { return ReadTail(bytes.NewReader(blob), int64(len(blob)), 8) }
	refuse := func() ([]byte, error) { return nil, errors.New("the source was asked") }

	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := UnpackedSize(st, d, fromSource); !ok || n != 6000 {
		t.Errorf("from the source: %d, %v", n, ok)
	}
	if _, ok := UnpackedSize(nil, d, refuse); ok {
		t.Error("no store and a failing source: size known")
	}
	if _, err := st.Put(context.Background(), h, d.Size, bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	if n, ok := UnpackedSize(st, d, refuse); !ok || n != 6000 {
		t.Errorf("from the store: %d, %v", n, ok)
	}
	if _, err := ReadTail(io.MultiReader(bytes.NewReader(blob)), int64(len(blob)), 8); err == nil {
		t.Error("ReadTail of a reader that cannot seek")
	}
}
