package localsrc_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cachectl/cachectl/providers/localsrc/localsrctest"
	"github.com/cachectl/cachectl/providers/source"
)

// BenchmarkLocalDockerArchive measures, for a docker archive with a 64 MiB
// layer, resolving (a header scan that seeks over the layer data; run once
// per plan) and fetching into an empty store (copy + sha256 of every blob).
// Opt-in: CACHECTL_BENCH=1 go test -run '^$' -bench LocalDockerArchive ./providers/localsrc
func BenchmarkLocalDockerArchive(b *testing.B) {
	if os.Getenv("CACHECTL_BENCH") == "" {
		b.Skip("set CACHECTL_BENCH=1 to run")
	}
	base, err := localsrctest.Image(1, "amd64")
	if err != nil {
		b.Fatal(err)
	}
	big, err := random.Layer(64<<20, types.OCIUncompressedLayer)
	if err != nil {
		b.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, big)
	if err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(b.TempDir(), "d.tar")
	if err := localsrctest.WriteDockerArchive(file, localsrctest.DockerClassic, localsrctest.Named{Name: "big:1", Image: img}); err != nil {
		b.Fatal(err)
	}
	ref := "docker-archive:" + file + ":big:1"
	reqs := []source.ResolveRequest{{Ref: ref, Platform: amd64}}
	b.Run("resolve", func(b *testing.B) {
		s, _ := newImageSource(b, ref)
		for i := 0; i < b.N; i++ {
			if _, err := s.ResolveAll(context.Background(), reqs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fetch", func(b *testing.B) {
		fi, _ := os.Stat(file)
		b.SetBytes(fi.Size())
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			s, _ := newImageSource(b, ref)
			out, err := s.ResolveAll(context.Background(), reqs)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := s.Fetch(context.Background(), ref, out[reqs[0].Key()].Manifest); err != nil {
				b.Fatal(err)
			}
		}
	})
}
