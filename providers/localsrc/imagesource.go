package localsrc

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/providers/store"
)

// Ref is a local image reference as the spec resolved it (planner.LocalRefs
// makes them from the spec's oci-layout:DIR[:REF], oci-archive:FILE[:REF]
// and docker-archive:FILE[:REPO:TAG] references).
type Ref struct {
	// Kind of the source.
	Kind Kind
	// Path is the absolute path of the directory or archive.
	Path string
	// Image selects the image in the source (Source.Resolve); "" when it
	// holds exactly one.
	Image string
}

// ImageSource resolves images from local sources and copies their blobs
// into the blob store, verifying every digest; it never touches the
// network. It is the source.Source of local references (with
// source.StatsReporter and source.UnpackedSizer), over Source, which reads
// the formats.
//
// A reference resolves to the digest of the image (or index) it selects in
// the source; a docker archive, which has no manifest, is converted to an
// OCI manifest deterministically, so the same archive always resolves to
// the same digest and a changed one to another.
type ImageSource struct {
	// Store receives the blobs on Fetch; it also tells ResolveAll how many
	// bytes are not stored yet.
	Store *store.Store
	refs  map[string]Ref
	stats source.Counter
}

// NewImageSource returns the ImageSource of the local references refs (by
// reference as written) over the blob store st. It refuses other
// references.
func NewImageSource(st *store.Store, refs map[string]Ref) *ImageSource {
	return &ImageSource{Store: st, refs: refs}
}

// Stats returns what Fetch copied into the store (as BytesDownloaded and
// BlobsDownloaded) and found there already (BlobsCached).
func (s *ImageSource) Stats() source.Stats { return s.stats.Stats() }

func (s *ImageSource) ref(ref string) (Ref, error) {
	r, ok := s.refs[ref]
	if !ok {
		return Ref{}, fmt.Errorf("%s: not a local source of the spec", ref)
	}
	return r, nil
}

// open opens the source a local reference names.
func open(r Ref) (*Source, error) { return Open(r.Kind, r.Path) }

// ResolveAll resolves each distinct request once; each source file is
// opened once per call. Errors name the reference and are joined.
func (s *ImageSource) ResolveAll(ctx context.Context, reqs []source.ResolveRequest) (map[source.ResolveKey]source.Resolution, error) {
	out := make(map[source.ResolveKey]source.Resolution, len(reqs))
	opened := map[Ref]*Source{}
	defer func() {
		for _, o := range opened {
			o.Close()
		}
	}()
	var errs []error
	for _, r := range reqs {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		k := r.Key()
		if _, done := out[k]; done {
			continue
		}
		lr, err := s.ref(r.Ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		at := Ref{Kind: lr.Kind, Path: lr.Path}
		src := opened[at]
		if src == nil {
			if src, err = open(lr); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.Ref, err))
				continue
			}
			opened[at] = src
		}
		img, err := src.Resolve(lr.Image, r.Platform)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w (platform %s)", r.Ref, err, k.Platform))
			continue
		}
		out[k] = source.Resolution{
			Digest:   img.Digest.String(),
			Manifest: img.Manifest.String(),
			Size:     img.Size,
			Download: s.missingBytes(img.Parsed),
			Config:   img.Parsed.Config,
			Layers:   img.Parsed.Layers,
		}
	}
	return out, errors.Join(errs...)
}

// UnpackedSize reads the gzip trailer of a layer from the store, else from
// the local source's file.
func (s *ImageSource) UnpackedSize(ctx context.Context, ref string, d v1.Descriptor) (int64, bool) {
	return source.UnpackedSize(s.Store, d, func() ([]byte, error) {
		lr, err := s.ref(ref)
		if err != nil {
			return nil, err
		}
		src, err := open(lr)
		if err != nil {
			return nil, err
		}
		defer src.Close()
		rc, size, err := src.OpenBlob(d.Digest)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return source.ReadTail(rc, size, image.TrailerSize)
	})
}

// missingBytes is the part of an image's config and layers that the store
// lacks.
func (s *ImageSource) missingBytes(m *v1.Manifest) int64 {
	var n int64
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if s.Store == nil || !s.Store.Has(d.Digest) {
			n += d.Size
		}
	}
	return n
}

// Fetch copies the image whose manifest digest is manifest (as resolved
// from ref) into the store, verifying each blob against its digest, and
// returns it. It fails when the source no longer holds that image (it
// changed since the plan).
func (s *ImageSource) Fetch(ctx context.Context, ref, manifest string) (v1.Image, error) {
	if s.Store == nil {
		return nil, errors.New("local source: no blob store")
	}
	h, err := v1.NewHash(manifest)
	if err != nil {
		return nil, fmt.Errorf("bad manifest digest %q: %w", manifest, err)
	}
	lr, err := s.ref(ref)
	if err != nil {
		return nil, err
	}
	src, err := open(lr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	defer src.Close()
	raw, m, err := src.Manifest(lr.Image, h)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if s.Store.Has(d.Digest) {
			s.stats.Cached()
			continue
		}
		rc, size, err := src.OpenBlob(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		n, err := s.Store.Put(ctx, d.Digest, d.Size, rc)
		rc.Close()
		if err != nil {
			if errors.Is(err, store.ErrDigestMismatch) || errors.Is(err, store.ErrSizeMismatch) {
				return nil, fmt.Errorf("%s: blob %s (%d bytes in %s) is corrupt: %w", ref, d.Digest, size, lr.Path, err)
			}
			return nil, fmt.Errorf("%s: copy blob %s: %w", ref, d.Digest, err)
		}
		s.stats.Copied(n)
	}
	if err := s.Store.PutBytes(ctx, h, raw); err != nil {
		return nil, fmt.Errorf("%s: store manifest: %w", ref, err)
	}
	return s.Store.Image(h)
}
