package registrytest

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Layer returns a gzip layer holding one file ("data/<seed>.bin") of size
// pseudo-random bytes derived from seed: the same seed gives the same
// layer digest. The content is generated on demand (streamed), so large
// layers cost no memory.
func Layer(t testing.TB, size, seed int64) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return randomTar(size, seed), nil
	}, tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		t.Fatalf("building layer: %v", err)
	}
	return l
}

// randomTar streams a tar with one regular file of size random bytes.
func randomTar(size, seed int64) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/%d.bin", seed), Mode: 0o644, Size: size, Typeflag: tar.TypeReg, Uname: "root", Gname: "root"})
		if err == nil {
			_, err = io.CopyN(tw, rand.New(rand.NewSource(seed)), size)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// Image returns a linux/amd64 Docker v2 image with layers layers of
// layerSize random bytes each, deterministic in seed (layer i uses seed
// seed*1000+i).
func Image(t testing.TB, layers int, layerSize int64, seed int64) v1.Image {
	t.Helper()
	return ImageOn(t, empty.Image, v1.Platform{OS: "linux", Architecture: "amd64"}, layers, layerSize, seed)
}

// ImageOn returns base with layers more random layers and a config for
// platform. Images built on the same base share its layers (the "shared
// base layers" case).
func ImageOn(t testing.TB, base v1.Image, platform v1.Platform, layers int, layerSize int64, seed int64) v1.Image {
	t.Helper()
	img := base
	var ls []v1.Layer
	for i := 0; i < layers; i++ {
		ls = append(ls, Layer(t, layerSize, seed*1000+int64(i)))
	}
	img, err := mutate.AppendLayers(img, ls...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = platform.OS, platform.Architecture, platform.Variant
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", fmt.Sprintf("SEED=%d", seed)}
	cf.Config.Cmd = []string{"/bin/sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// OCI returns img with OCI media types (manifest and layers).
func OCI(t testing.TB, img v1.Image) v1.Image {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	out := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	out = mutate.ConfigMediaType(out, types.OCIConfigJSON)
	for _, l := range layers {
		out, err = mutate.Append(out, mutate.Addendum{Layer: l, MediaType: types.OCILayer})
		if err != nil {
			t.Fatal(err)
		}
	}
	out, err = mutate.ConfigFile(out, cf)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Index returns a multi-platform image index of the given images, each
// entry annotated with its image's platform (taken from its config).
func Index(t testing.TB, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	for _, img := range imgs {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		p := cf.Platform()
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	return idx
}

// Push writes img to ref ("127.0.0.1:PORT/repo:tag") over plain HTTP and
// returns its manifest digest. opts may add e.g. remote.WithAuth.
func Push(t testing.TB, img v1.Image, ref string, opts ...remote.Option) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, append([]remote.Option{remote.WithContext(Context(t))}, opts...)...); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// PushIndex writes idx (and its images) to ref and returns its digest.
func PushIndex(t testing.TB, idx v1.ImageIndex, ref string, opts ...remote.Option) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx, append([]remote.Option{remote.WithContext(Context(t))}, opts...)...); err != nil {
		t.Fatalf("pushing index %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// BasicAuth returns the remote option that authenticates as the server's
// user (for pushing to a WithBasicAuth registry).
func (s *Server) BasicAuth() remote.Option {
	return remote.WithAuth(&authn.Basic{Username: s.Username, Password: s.Password})
}
