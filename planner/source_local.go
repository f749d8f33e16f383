package planner

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/localsrc"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/providers/store"
	"github.com/cachectl/cachectl/spec"
)

// LocalSource resolves images from local sources (oci-layout:DIR[:REF],
// oci-archive:FILE[:REF], docker-archive:FILE[:REPO:TAG]) and copies their
// blobs into the blob store, verifying every digest. It never touches the
// network. It implements source.Resolver and source.Fetcher over providers/localsrc,
// which reads the formats.
//
// A reference resolves to the digest of the image (or index) it selects in
// the source; a docker archive, which has no manifest, is converted to an
// OCI manifest deterministically (see localsrc), so the same archive always
// resolves to the same digest and a changed one to another.
type LocalSource struct {
	// Store receives the blobs on Fetch; it also tells ResolveAll how many
	// bytes are not stored yet.
	Store *store.Store
	refs  map[string]*spec.LocalRef

	stats source.Counter
}

// NewLocalSource returns a LocalSource for the local references of m (their
// paths resolved against the spec's directory by spec.Load). References
// not in m are parsed when asked for; their paths must then be absolute.
func NewLocalSource(st *store.Store, m *spec.Model) *LocalSource {
	s := &LocalSource{Store: st, refs: map[string]*spec.LocalRef{}}
	if m != nil {
		for _, c := range m.Caches {
			for _, a := range c.Artifacts {
				if a.Local != nil {
					s.refs[a.Ref] = a.Local
				}
			}
		}
	}
	return s
}

// Handles reports whether ref names a local source.
func (s *LocalSource) Handles(ref string) bool { return spec.IsLocalRef(ref) }

// Stats returns what Fetch copied into the store (as BytesDownloaded and
// BlobsDownloaded) and found there already (BlobsCached).
func (s *LocalSource) Stats() source.Stats {
	return s.stats.Stats()
}

func (s *LocalSource) localRef(ref string) (*spec.LocalRef, error) {
	if r := s.refs[ref]; r != nil {
		return r, nil
	}
	r, err := spec.ParseLocalRef(ref)
	if err != nil {
		return nil, err
	}
	if r.AbsPath == "" {
		return nil, fmt.Errorf("%s: the relative path %q can only be resolved against the spec that names it", ref, r.Path)
	}
	return r, nil
}

// ResolveAll resolves each distinct request once; each source file is
// opened once per call. Errors name the reference and are joined.
func (s *LocalSource) ResolveAll(ctx context.Context, reqs []source.ResolveRequest) (map[source.ResolveKey]source.Resolution, error) {
	out := make(map[source.ResolveKey]source.Resolution, len(reqs))
	opened := map[string]*localsrc.Source{}
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
		lr, err := s.localRef(r.Ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		src := opened[string(lr.Kind)+":"+lr.AbsPath]
		if src == nil {
			if src, err = openLocal(lr); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.Ref, err))
				continue
			}
			opened[string(lr.Kind)+":"+lr.AbsPath] = src
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
// the local source's file when it can seek.
func (s *LocalSource) UnpackedSize(ctx context.Context, ref string, d v1.Descriptor) (int64, bool) {
	return source.UnpackedSize(s.Store, d, func() ([]byte, error) {
		lr, err := s.localRef(ref)
		if err != nil {
			return nil, err
		}
		src, err := openLocal(lr)
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
func (s *LocalSource) missingBytes(m *v1.Manifest) int64 {
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
func (s *LocalSource) Fetch(ctx context.Context, ref, manifest string) (v1.Image, error) {
	if s.Store == nil {
		return nil, errors.New("local source: no blob store")
	}
	h, err := v1.NewHash(manifest)
	if err != nil {
		return nil, fmt.Errorf("bad manifest digest %q: %w", manifest, err)
	}
	lr, err := s.localRef(ref)
	if err != nil {
		return nil, err
	}
	src, err := openLocal(lr)
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
				return nil, fmt.Errorf("%s: blob %s (%d bytes in %s) is corrupt: %w", ref, d.Digest, size, lr.AbsPath, err)
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

// openLocal opens the source a local reference names.
func openLocal(lr *spec.LocalRef) (*localsrc.Source, error) {
	return localsrc.Open(localsrc.Kind(lr.Kind), lr.AbsPath)
}

// ImageName is the name an artifact built from ref records inside it (the
// org.opencontainers.image.ref.name of a Podman archive): for a registry
// reference the normalized reference (docker.io/library/alpine:3.20); for
// a local source its image name, normalized when it is a registry-style
// reference with a tag or digest ("app:1" → docker.io/library/app:1), else
// as written ("v1"); for a local source without a name "localhost/" +
// fileName, Podman's convention for images without a registry.
func ImageName(ref, fileName string) string {
	if !spec.IsLocalRef(ref) {
		return image.NormalizedName(ref)
	}
	lr, err := spec.ParseLocalRef(ref)
	if err != nil || lr.Image == "" {
		return "localhost/" + strings.ToLower(path.Base(fileName))
	}
	if info, err := spec.ParseRef(lr.Image); err == nil && (info.Tag != "" || info.Digest != "") {
		return image.NormalizedName(lr.Image)
	}
	return lr.Image
}
