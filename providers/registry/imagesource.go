package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/providers/store"
)

// ImageSource resolves references against registries and pulls images into
// the shared blob store: the source.Source of registries (with
// source.StatsReporter and source.UnpackedSizer), over Client.
type ImageSource struct {
	Client *Client
	Store  *store.Store
	stats  source.Counter
}

// Stats returns what the pulls so far downloaded and found cached.
func (s *ImageSource) Stats() source.Stats {
	return s.stats.Stats()
}

// ResolveAll resolves each distinct request once, concurrently, and adds
// how many bytes are not in the store yet.
func (s *ImageSource) ResolveAll(ctx context.Context, reqs []source.ResolveRequest) (map[source.ResolveKey]source.Resolution, error) {
	out, errs := s.Client.ResolveAll(ctx, reqs)
	m := make(map[source.ResolveKey]source.Resolution, len(reqs))
	var all []error
	for i, r := range reqs {
		if i < len(errs) && errs[i] != nil {
			all = append(all, fmt.Errorf("%w (platform %s)", errs[i], image.PlatformString(r.Platform)))
			continue
		}
		res := out[i]
		m[r.Key()] = source.Resolution{
			Digest:   res.Digest.String(),
			Manifest: res.Manifest.String(),
			Size:     res.Size,
			Download: s.missingBytes(res),
			Config:   res.Config,
			Layers:   res.Layers,
		}
	}
	return m, errors.Join(all...)
}

// missingBytes is the part of an image's blobs that the store lacks; when
// the manifest itself is not stored yet, all of it.
func (s *ImageSource) missingBytes(res Resolved) int64 {
	if s.Store == nil || !s.Store.Has(res.Manifest) {
		return res.Size
	}
	img, err := s.Store.Image(res.Manifest)
	if err != nil {
		return res.Size
	}
	m, err := img.Manifest()
	if err != nil {
		return res.Size
	}
	var n int64
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if !s.Store.Has(d.Digest) {
			n += d.Size
		}
	}
	return n
}

// UnpackedSize reads the gzip trailer of a layer from the store, else from
// the registry (a Range request for its last 8 bytes).
func (s *ImageSource) UnpackedSize(ctx context.Context, ref string, d v1.Descriptor) (int64, bool) {
	return source.UnpackedSize(s.Store, d, func() ([]byte, error) {
		return s.Client.BlobTail(ctx, ref, d, image.TrailerSize)
	})
}

// Fetch pulls exactly the given manifest (and its blobs) into the store.
func (s *ImageSource) Fetch(ctx context.Context, ref, manifest string) (v1.Image, error) {
	h, err := v1.NewHash(manifest)
	if err != nil {
		return nil, fmt.Errorf("bad manifest digest %q: %w", manifest, err)
	}
	img, stats, err := s.Client.Pull(ctx, ref, h, s.Store)
	s.stats.Add(stats)
	return img, err
}

// FetchStream starts pulling exactly the given manifest into the store and
// returns once its manifest and config are there: the layers can be read
// while they download, newest first (source.StreamFetcher).
func (s *ImageSource) FetchStream(ctx context.Context, ref, manifest string) (v1.Image, func() error, error) {
	h, err := v1.NewHash(manifest)
	if err != nil {
		return nil, nil, fmt.Errorf("bad manifest digest %q: %w", manifest, err)
	}
	p, err := s.Client.PullStream(ctx, ref, h, s.Store)
	if err != nil {
		_, stats, _ := p.Wait()
		s.stats.Add(stats)
		return nil, nil, err
	}
	var once sync.Once
	var werr error
	wait := func() error {
		once.Do(func() {
			_, stats, err := p.Wait()
			s.stats.Add(stats)
			werr = err
		})
		return werr
	}
	return p.Image(), wait, nil
}
