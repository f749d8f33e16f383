package store

import (
	"bytes"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cachectl/cachectl/providers/image"
)

// Image returns the image whose manifest is the stored blob manifest, backed
// entirely by local blobs: its config and layers must be in the store (Pull
// puts them there). Docker v2 schema 2 and OCI manifests are supported;
// layers offer both Compressed() and Uncompressed().
func (s *Store) Image(manifest v1.Hash) (v1.Image, error) {
	return s.image(manifest, nil)
}

// PendingImage is Image for an image whose manifest and config are in the
// store but whose layers may still be arriving: each layer's Compressed
// stream is what open returns for it (e.g. a Follow of the blob once its
// download started). The layers' sizes and digests are the manifest's.
func (s *Store) PendingImage(manifest v1.Hash, open func(v1.Descriptor) (io.ReadCloser, error)) (v1.Image, error) {
	return s.image(manifest, open)
}

func (s *Store) image(manifest v1.Hash, open func(v1.Descriptor) (io.ReadCloser, error)) (v1.Image, error) {
	raw, err := s.ReadAll(manifest)
	if err != nil {
		return nil, err
	}
	mt, err := image.ManifestMediaType(raw)
	if err != nil {
		return nil, fmt.Errorf("store: manifest %s: %w", manifest, err)
	}
	if !mt.IsImage() {
		return nil, fmt.Errorf("store: blob %s is a %s, not an image manifest", manifest, mt)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("store: parsing manifest %s: %w", manifest, err)
	}
	descs := map[v1.Hash]v1.Descriptor{m.Config.Digest: m.Config}
	for _, l := range m.Layers {
		descs[l.Digest] = l
	}
	for h := range descs {
		if (open == nil || h == m.Config.Digest) && !s.Has(h) {
			return nil, fmt.Errorf("store: image %s is incomplete: blob %s is missing", manifest, h)
		}
	}
	return partial.CompressedToImage(&storeImage{s: s, raw: raw, mt: mt, m: m, descs: descs, open: open})
}

type storeImage struct {
	s     *Store
	raw   []byte
	mt    types.MediaType
	m     *v1.Manifest
	descs map[v1.Hash]v1.Descriptor
	open  func(v1.Descriptor) (io.ReadCloser, error) // nil: from the store
}

func (i *storeImage) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *storeImage) MediaType() (types.MediaType, error) { return i.mt, nil }
func (i *storeImage) RawConfigFile() ([]byte, error)      { return i.s.ReadAll(i.m.Config.Digest) }
func (i *storeImage) Manifest() (*v1.Manifest, error)     { return i.m.DeepCopy(), nil }
func (i *storeImage) ConfigName() (v1.Hash, error)        { return i.m.Config.Digest, nil }
func (i *storeImage) Digest() (v1.Hash, error)            { return partial.Digest(i) }
func (i *storeImage) Size() (int64, error)                { return int64(len(i.raw)), nil }
func (i *storeImage) Descriptor() (*v1.Descriptor, error) { return partial.Descriptor(i) }
func (i *storeImage) ConfigLayer() (v1.Layer, error)      { return partial.ConfigLayer(i) }

func (i *storeImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	d, ok := i.descs[h]
	if !ok {
		return nil, fmt.Errorf("store: blob %s is not part of this image", h)
	}
	return &storeLayer{s: i.s, d: d, open: i.open}, nil
}

type storeLayer struct {
	s    *Store
	d    v1.Descriptor
	open func(v1.Descriptor) (io.ReadCloser, error)
}

func (l *storeLayer) Digest() (v1.Hash, error)            { return l.d.Digest, nil }
func (l *storeLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) { return l.d.MediaType, nil }
func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	if l.open != nil {
		return l.open(l.d)
	}
	return l.s.Open(l.d.Digest)
}
func (l *storeLayer) Descriptor() (*v1.Descriptor, error) { d := l.d; return &d, nil }

// Referenced returns the set of blobs that the given manifests (image
// manifests or indexes) need: each manifest itself, the children of an
// index, configs and layers. Manifests or children that are not in the
// store are kept in the set but not descended into. Use it with KeepSet for
// GC.
func (s *Store) Referenced(manifests ...v1.Hash) (map[v1.Hash]bool, error) {
	set := map[v1.Hash]bool{}
	var walk func(h v1.Hash) error
	walk = func(h v1.Hash) error {
		if set[h] {
			return nil
		}
		set[h] = true
		if !s.Has(h) {
			return nil
		}
		raw, err := s.ReadAll(h)
		if err != nil {
			return err
		}
		mt, err := image.ManifestMediaType(raw)
		if err != nil {
			return fmt.Errorf("store: manifest %s: %w", h, err)
		}
		switch {
		case mt.IsIndex():
			idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
			if err != nil {
				return fmt.Errorf("store: parsing index %s: %w", h, err)
			}
			for _, d := range idx.Manifests {
				if err := walk(d.Digest); err != nil {
					return err
				}
			}
		case mt.IsImage():
			m, err := v1.ParseManifest(bytes.NewReader(raw))
			if err != nil {
				return fmt.Errorf("store: parsing manifest %s: %w", h, err)
			}
			set[m.Config.Digest] = true
			for _, l := range m.Layers {
				set[l.Digest] = true
			}
		}
		return nil
	}
	for _, h := range manifests {
		if err := walk(h); err != nil {
			return nil, err
		}
	}
	return set, nil
}
