package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/singleflight"

	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/providers/store"
)

// ImageSource resolves references from transfer bundles instead of
// registries (no network at all) and copies blobs from the bundles into the
// shared blob store, verifying each against its digest and size as it is
// copied. It is the source.Source of bundles (with source.StatsReporter,
// source.UnpackedSizer and io.Closer).
//
// The first bundle is the head: its index maps references to digests.
// Every bundle provides blobs, so an incremental bundle's base (or its
// chain of bases) may follow it; blobs already in the store are not
// copied again.
type ImageSource struct {
	Bundles []*Bundle
	Store   *store.Store

	sf    singleflight.Group
	stats source.Counter
}

// OpenImageSource opens the bundles at paths (the head first) over the
// store st. Close it when done.
func OpenImageSource(st *store.Store, paths ...string) (*ImageSource, error) {
	if len(paths) == 0 {
		return nil, errors.New("no bundle given")
	}
	s := &ImageSource{Store: st}
	for _, p := range paths {
		b, err := Open(p)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.Bundles = append(s.Bundles, b)
	}
	return s, nil
}

// Close closes the bundle files.
func (s *ImageSource) Close() error {
	var errs []error
	for _, b := range s.Bundles {
		errs = append(errs, b.Close())
	}
	return errors.Join(errs...)
}

// Stats returns what the fetches so far copied from the bundles
// (BytesDownloaded, BlobsDownloaded) and found in the store (BlobsCached).
func (s *ImageSource) Stats() source.Stats {
	return s.stats.Stats()
}

func (s *ImageSource) head() *Bundle { return s.Bundles[0] }

// ResolveAll looks every request up in the head bundle's index. A request
// the bundle lacks, or whose blobs are neither in the given bundles nor in
// the store (an incremental bundle without its base), is an error; all of
// them are named in one error.
func (s *ImageSource) ResolveAll(ctx context.Context, reqs []source.ResolveRequest) (map[source.ResolveKey]source.Resolution, error) {
	out := make(map[source.ResolveKey]source.Resolution, len(reqs))
	var missing, incomplete []string
	for _, r := range reqs {
		k := r.Key()
		if _, done := out[k]; done {
			continue
		}
		img, ok := s.head().Lookup(k.Ref, k.Platform)
		if !ok {
			missing = append(missing, s.describeMissing(k))
			continue
		}
		descs, err := s.blobsOf(img)
		if err != nil {
			incomplete = append(incomplete, fmt.Sprintf("%s (%s): %v", k.Ref, k.Platform, err))
			continue
		}
		var download int64
		var absent []string
		for _, d := range descs {
			if s.Store != nil && s.Store.Has(d.Digest) {
				continue
			}
			download += d.Size
			if s.bundleWith(d.Digest) == nil {
				absent = append(absent, d.Digest.String())
			}
		}
		if len(absent) > 0 {
			incomplete = append(incomplete, fmt.Sprintf("%s (%s): %d blob(s) are in neither the store nor the given bundles (first %s)", k.Ref, k.Platform, len(absent), absent[0]))
			continue
		}
		res := source.Resolution{Digest: img.Digest, Manifest: img.Manifest, Size: img.Size, Download: download}
		if h, err := v1.NewHash(img.Manifest); err == nil {
			if m, _, err := s.manifest(h); err == nil {
				res.Config, res.Layers = m.Config, m.Layers
			}
		}
		out[k] = res
	}
	var errs []error
	if len(missing) > 0 {
		sort.Strings(missing)
		errs = append(errs, fmt.Errorf("bundle %s lacks %d image(s) the spec needs:\n    - %s\n  make a new bundle that includes them (cachectl bundle -o FILE.tar on a connected host)",
			s.head().Path(), len(missing), strings.Join(missing, "\n    - ")))
	}
	if len(incomplete) > 0 {
		sort.Strings(incomplete)
		hint := ""
		if base := s.head().Meta.Base; base != nil {
			hint = fmt.Sprintf("\n  %s is incremental: it extends %s (%s); apply that bundle first, or give it too: --source %s --source %s",
				s.head().Path(), base.File, base.ID, s.head().Path(), base.File)
		}
		errs = append(errs, fmt.Errorf("%d image(s) cannot be assembled from the bundle:\n    - %s%s", len(incomplete), strings.Join(incomplete, "\n    - "), hint))
	}
	return out, errors.Join(errs...)
}

// UnpackedSize reads the gzip trailer of a layer from the store, else from
// the bundle that holds it.
func (s *ImageSource) UnpackedSize(ctx context.Context, ref string, d v1.Descriptor) (int64, bool) {
	return source.UnpackedSize(s.Store, d, func() ([]byte, error) {
		b := s.bundleWith(d.Digest)
		if b == nil {
			return nil, fmt.Errorf("blob %s not in the bundles", d.Digest)
		}
		r, size, err := b.OpenBlob(d.Digest)
		if err != nil {
			return nil, err
		}
		return source.ReadTail(r, size, image.TrailerSize)
	})
}

// describeMissing names a missing image and, when the bundle has the
// reference for other platforms, which.
func (s *ImageSource) describeMissing(k source.ResolveKey) string {
	var others []string
	for _, img := range s.head().Meta.Images {
		if img.Ref == k.Ref {
			others = append(others, img.Platform)
		}
	}
	d := fmt.Sprintf("%s (%s)", k.Ref, k.Platform)
	if len(others) > 0 {
		d += fmt.Sprintf(" (the bundle has it for %s only)", strings.Join(others, ", "))
	}
	return d
}

// bundleWith returns the first given bundle that holds blob h.
func (s *ImageSource) bundleWith(h v1.Hash) *Bundle {
	for _, b := range s.Bundles {
		if b.Has(h) {
			return b
		}
	}
	return nil
}

// manifest returns the verified bytes of an image manifest from the store
// or a bundle.
func (s *ImageSource) manifest(h v1.Hash) (*v1.Manifest, []byte, error) {
	var raw []byte
	if s.Store != nil && s.Store.Has(h) {
		b, err := s.Store.ReadAll(h)
		if err != nil {
			return nil, nil, err
		}
		raw = b
	} else if b := s.bundleWith(h); b != nil {
		r, size, err := b.OpenBlob(h)
		if err != nil {
			return nil, nil, err
		}
		if size > 32<<20 {
			return nil, nil, fmt.Errorf("manifest %s is %d bytes, too large", h, size)
		}
		if raw, err = io.ReadAll(r); err != nil {
			return nil, nil, fmt.Errorf("reading manifest %s from %s: %w", h, b.Path(), err)
		}
		if got, _, _ := v1.SHA256(bytes.NewReader(raw)); got != h {
			return nil, nil, fmt.Errorf("manifest %s in %s does not match its digest (hashes to %s): the bundle is damaged or tampered with; check it with 'cachectl bundle verify'", h, b.Path(), got)
		}
	} else {
		return nil, nil, fmt.Errorf("manifest %s is in neither the store nor the given bundles", h)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("parsing manifest %s: %w", h, err)
	}
	return m, raw, nil
}

// blobsOf lists the manifest, config and layers of an image.
func (s *ImageSource) blobsOf(img Image) ([]v1.Descriptor, error) {
	h, err := v1.NewHash(img.Manifest)
	if err != nil {
		return nil, err
	}
	m, raw, err := s.manifest(h)
	if err != nil {
		return nil, err
	}
	out := []v1.Descriptor{{Digest: h, Size: int64(len(raw)), MediaType: img.MediaType}, m.Config}
	seen := map[v1.Hash]bool{h: true, m.Config.Digest: true}
	for _, l := range m.Layers {
		if !seen[l.Digest] {
			seen[l.Digest] = true
			out = append(out, l)
		}
	}
	return out, nil
}

// Fetch copies the image manifest and its config and layers from the
// bundles into the store (each blob verified against its digest and size;
// a blob that does not match is never stored) and returns the image backed
// by the store.
func (s *ImageSource) Fetch(ctx context.Context, ref, manifest string) (v1.Image, error) {
	h, err := v1.NewHash(manifest)
	if err != nil {
		return nil, fmt.Errorf("bad manifest digest %q: %w", manifest, err)
	}
	m, raw, err := s.manifest(h)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	if err := s.copyBlob(ctx, v1.Descriptor{Digest: h, Size: int64(len(raw))}); err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	var errs []error
	seen := map[v1.Hash]bool{}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		if err := s.copyBlob(ctx, d); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	img, err := s.Store.Image(h)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return img, nil
}

// copyBlob copies one blob into the store unless it is there; concurrent
// copies of one blob in this process share one copy.
func (s *ImageSource) copyBlob(ctx context.Context, d v1.Descriptor) error {
	if s.Store.Has(d.Digest) {
		s.stats.Cached()
		return nil
	}
	v, err, shared := s.sf.Do(d.Digest.String(), func() (any, error) {
		if s.Store.Has(d.Digest) {
			return int64(-1), nil
		}
		b := s.bundleWith(d.Digest)
		if b == nil {
			return int64(0), fmt.Errorf("blob %s is in neither the store nor the given bundles", d.Digest)
		}
		r, size, err := b.OpenBlob(d.Digest)
		if err != nil {
			return int64(0), err
		}
		if size != d.Size {
			return int64(0), fmt.Errorf("blob %s in %s has %d bytes, the manifest says %d: the bundle is damaged or tampered with", d.Digest, b.Path(), size, d.Size)
		}
		n, err := s.Store.Put(ctx, d.Digest, d.Size, r)
		if err != nil {
			if errors.Is(err, store.ErrDigestMismatch) || errors.Is(err, store.ErrSizeMismatch) {
				return int64(0), fmt.Errorf("blob %s in %s does not match its digest: the bundle is damaged or tampered with (check it with 'cachectl bundle verify'): %w", d.Digest, b.Path(), err)
			}
			return int64(0), err
		}
		return n, nil
	})
	if err != nil {
		return err
	}
	if n := v.(int64); n >= 0 && !shared {
		s.stats.Copied(n)
	} else {
		s.stats.Cached()
	}
	return nil
}
