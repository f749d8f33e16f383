package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/image"
)

// Report summarizes a verified bundle.
type Report struct {
	// ID is the bundle's ID (sha256 of SHA256SUMS).
	ID string
	// Base names the base bundle of an incremental bundle (nil otherwise).
	Base *BaseRef
	// Images counts reference+platform entries.
	Images int
	// Members counts tar members; Blobs and BlobBytes the blobs held.
	Members   int
	Blobs     int
	BlobBytes int64
	// LeftOut and LeftOutBytes count the blobs left to the base bundle.
	LeftOut      int
	LeftOutBytes int64
}

// Verify checks the whole bundle without a spec: every member's bytes
// against SHA256SUMS (so every blob against its digest), every included
// manifest's config and layers present (or, in an incremental bundle,
// listed as left to the base), and index.json consistent with the bundle
// index. All problems found are returned together, wrapped in ErrCorrupt.
func (b *Bundle) Verify(ctx context.Context) (*Report, error) {
	rep := &Report{ID: b.ID, Base: b.Meta.Base, Images: len(b.Meta.Images), Members: len(b.order)}
	var errs []error
	buf := make([]byte, 1<<20)
	for _, n := range b.order {
		if n == ChecksumsFile {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m := b.members[n]
		h := sha256.New()
		if _, err := io.CopyBuffer(h, io.NewSectionReader(b.f, m.offset, m.size), buf); err != nil {
			return nil, fmt.Errorf("bundle %s: reading %s: %w", b.path, n, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != b.sums[n] {
			errs = append(errs, fmt.Errorf("member %s does not match its checksum (sha256:%s, want sha256:%s): tampered or damaged", n, got, b.sums[n]))
			continue
		}
		if _, ok := blobOfMember(n); ok {
			rep.Blobs++
			rep.BlobBytes += m.size
		}
	}
	for _, bl := range b.Meta.Blobs {
		if !bl.Included {
			rep.LeftOut++
			rep.LeftOutBytes += bl.Size
		}
	}
	errs = append(errs, b.checkManifests()...)
	errs = append(errs, b.checkOCIIndex()...)
	if len(errs) > 0 {
		return rep, fmt.Errorf("bundle %s: %w", b.path, joinCorrupt(errs))
	}
	return rep, nil
}

func joinCorrupt(errs []error) error {
	if len(errs) == 1 {
		return fmt.Errorf("%w: %w", ErrCorrupt, errs[0])
	}
	msg := fmt.Sprintf("%d problems:", len(errs))
	for _, e := range errs {
		msg += "\n  * " + e.Error()
	}
	return fmt.Errorf("%w: %s", ErrCorrupt, msg)
}

// checkManifests checks that every image's blobs are held, or left to the
// base in an incremental bundle, and that the index's sizes are right.
func (b *Bundle) checkManifests() []error {
	var errs []error
	for _, img := range b.Meta.Images {
		h, err := v1.NewHash(img.Manifest)
		if err != nil {
			errs = append(errs, fmt.Errorf("image %s (%s): bad manifest digest %q", img.Ref, img.Platform, img.Manifest))
			continue
		}
		if !b.Has(h) {
			continue // left to the base (checked in Open)
		}
		raw, err := b.readMember(image.LayoutBlobPath(h), 32<<20)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != h.Hex {
			continue // reported as a checksum mismatch
		}
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			errs = append(errs, fmt.Errorf("image %s (%s): manifest %s: %v", img.Ref, img.Platform, shortDigest(img.Manifest), err))
			continue
		}
		var size int64
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			size += d.Size
			bl, listed := b.blobs[d.Digest.String()]
			switch {
			case !listed:
				errs = append(errs, fmt.Errorf("image %s (%s): blob %s is neither in the bundle nor in its index", img.Ref, img.Platform, d.Digest))
			case !bl.Included && !b.Meta.Incremental():
				errs = append(errs, fmt.Errorf("image %s (%s): blob %s is missing", img.Ref, img.Platform, d.Digest))
			case bl.Included && !b.Has(d.Digest):
				errs = append(errs, fmt.Errorf("image %s (%s): blob %s is missing", img.Ref, img.Platform, d.Digest))
			}
		}
		if size != img.Size {
			errs = append(errs, fmt.Errorf("image %s (%s): index says %d bytes, the manifest %d", img.Ref, img.Platform, img.Size, size))
		}
	}
	return errs
}

// checkOCIIndex checks that index.json describes exactly the bundle's
// images.
func (b *Bundle) checkOCIIndex() []error {
	raw, err := b.readMember(image.IndexFile, 64<<20)
	if err != nil {
		return []error{err}
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		return []error{fmt.Errorf("%s: %v", image.IndexFile, err)}
	}
	want := map[string]Image{}
	for _, img := range b.Meta.Images {
		want[img.Key()] = img
	}
	var errs []error
	seen := map[string]bool{}
	for _, d := range idx.Manifests {
		ref := d.Annotations[AnnotationRef]
		plat := ""
		if d.Platform != nil {
			plat = platformString(*d.Platform)
		}
		img, ok := want[ref+"\x00"+plat]
		if !ok {
			errs = append(errs, fmt.Errorf("%s lists %s (%s), which the bundle index does not", image.IndexFile, ref, plat))
			continue
		}
		seen[img.Key()] = true
		if d.Digest.String() != img.Manifest || d.Size != img.ManifestSize {
			errs = append(errs, fmt.Errorf("%s maps %s (%s) to %s, the bundle index to %s", image.IndexFile, ref, plat, shortDigest(d.Digest.String()), shortDigest(img.Manifest)))
		}
	}
	for k, img := range want {
		if !seen[k] {
			errs = append(errs, fmt.Errorf("%s lacks %s (%s)", image.IndexFile, img.Ref, img.Platform))
		}
	}
	return errs
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// IsTruncated reports whether err says a bundle is truncated.
func IsTruncated(err error) bool { return errors.Is(err, ErrTruncated) }
