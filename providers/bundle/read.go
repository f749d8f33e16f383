package bundle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/tarindex"
)

// member is where one tar member's data lies in the file.
type member struct {
	name   string
	offset int64
	size   int64
}

// Bundle is an open bundle file. Its methods are safe for concurrent use.
type Bundle struct {
	path    string
	f       *os.File
	members map[string]member
	order   []string
	sums    map[string]string // member name → sha256 hex
	images  map[string]Image
	blobs   map[string]BlobInfo

	// ID is the bundle's ID: the sha256 of its SHA256SUMS member.
	ID string
	// Meta is the bundle index.
	Meta Meta
}

// Open opens a bundle: it reads the tar headers once to index where every
// member lies (no member data is read, nothing is extracted), reads the
// checksum manifest and the bundle index, and checks their consistency:
// every member has a checksum and every checksum a member, each small
// metadata member matches its checksum, each blob member is named by its
// checksum, and the index's blobs have the sizes of their members. Blob
// contents are not hashed here: Verify does that for the whole bundle, and
// readers of a blob verify it as they copy it (OpenBlob's size and the
// digest). A truncated file fails with ErrTruncated; an inconsistent one
// with ErrCorrupt.
func Open(path string) (*Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	b := &Bundle{path: path, f: f, members: map[string]member{}}
	if err := b.load(); err != nil {
		f.Close()
		return nil, fmt.Errorf("bundle %s: %w", path, err)
	}
	return b, nil
}

// Path returns the file the bundle was opened from.
func (b *Bundle) Path() string { return b.path }

// Close closes the bundle file.
func (b *Bundle) Close() error { return b.f.Close() }

func (b *Bundle) load() error {
	_, err := tarindex.Scan(b.f, func(hdr *tar.Header, off int64) error {
		if hdr.Typeflag == tar.TypeDir {
			return nil
		}
		if hdr.Typeflag != tar.TypeReg {
			return corruptf("member %s is not a regular file", hdr.Name)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		if _, dup := b.members[name]; dup {
			return corruptf("member %s appears twice", name)
		}
		b.members[name] = member{name: name, offset: off, size: hdr.Size}
		b.order = append(b.order, name)
		return nil
	})
	switch {
	case errors.Is(err, tarindex.ErrTruncated):
		return fmt.Errorf("%w: %v (was the copy interrupted?)", ErrTruncated, err)
	case errors.Is(err, tarindex.ErrInvalid):
		return corruptf("%v", err)
	case err != nil:
		return err
	}
	if len(b.order) == 0 {
		return fmt.Errorf("%w: no members (empty or not a tar file)", ErrTruncated)
	}
	if b.order[len(b.order)-1] != ChecksumsFile {
		if _, ok := b.members[ChecksumsFile]; ok {
			return corruptf("%s is not the last member", ChecksumsFile)
		}
		return fmt.Errorf("%w: the checksum manifest %s (always the last member) is missing; the file ends after %s", ErrTruncated, ChecksumsFile, b.order[len(b.order)-1])
	}
	raw, err := b.readMember(ChecksumsFile, 64<<20)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(raw)
	b.ID = "sha256:" + hex.EncodeToString(sum[:])
	if b.sums, err = parseSums(raw); err != nil {
		return err
	}
	for _, n := range b.order {
		if n == ChecksumsFile {
			continue
		}
		if _, ok := b.sums[n]; !ok {
			return corruptf("member %s has no checksum in %s", n, ChecksumsFile)
		}
	}
	for n := range b.sums {
		if _, ok := b.members[n]; !ok {
			return corruptf("%s lists %s but the bundle has no such member", ChecksumsFile, n)
		}
	}
	for _, n := range []string{image.LayoutFile, image.IndexFile, MetaFile} {
		if _, ok := b.members[n]; !ok {
			return corruptf("member %s is missing; is this a cachectl bundle?", n)
		}
		if _, err := b.checkedMember(n); err != nil {
			return err
		}
	}
	mraw, _ := b.checkedMember(MetaFile)
	if err := json.Unmarshal(mraw, &b.Meta); err != nil {
		return corruptf("%s: %v", MetaFile, err)
	}
	if b.Meta.FormatVersion != FormatVersion {
		return fmt.Errorf("bundle format version %d is not supported (this cachectl reads version %d)", b.Meta.FormatVersion, FormatVersion)
	}
	b.images = map[string]Image{}
	for _, img := range b.Meta.Images {
		b.images[img.Key()] = img
	}
	b.blobs = map[string]BlobInfo{}
	for _, bl := range b.Meta.Blobs {
		b.blobs[bl.Digest] = bl
		h, err := v1.NewHash(bl.Digest)
		if err != nil {
			return corruptf("%s: bad digest %q", MetaFile, bl.Digest)
		}
		m, ok := b.members[image.LayoutBlobPath(h)]
		switch {
		case bl.Included && !ok:
			return corruptf("blob %s is listed as included but is not in the bundle", bl.Digest)
		case !bl.Included && ok:
			return corruptf("blob %s is listed as left to the base but is in the bundle", bl.Digest)
		case ok && m.size != bl.Size:
			return corruptf("blob %s has %d bytes, the index says %d", bl.Digest, m.size, bl.Size)
		}
		if !bl.Included && !b.Meta.Incremental() {
			return corruptf("blob %s is left out but the bundle is not incremental", bl.Digest)
		}
	}
	for _, n := range b.order {
		if h, ok := blobOfMember(n); ok {
			if b.sums[n] != h.Hex {
				return corruptf("member %s has checksum %s: a blob's checksum must be its digest", n, b.sums[n])
			}
			if _, listed := b.blobs[h.String()]; !listed {
				return corruptf("blob %s is in the bundle but not in its index", h)
			}
		} else if n != image.LayoutFile && n != image.IndexFile && n != MetaFile && n != ChecksumsFile {
			return corruptf("unexpected member %s", n)
		}
	}
	for _, img := range b.Meta.Images {
		if _, ok := b.blobs[img.Manifest]; !ok {
			return corruptf("image %s (%s): manifest %s is not among the bundle's blobs", img.Ref, img.Platform, img.Manifest)
		}
	}
	return nil
}

func parseSums(raw []byte) (map[string]string, error) {
	sums := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		hexsum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || !validHex(hexsum) || name == "" {
			return nil, corruptf("%s line %d is not \"<sha256>  <member>\"", ChecksumsFile, line)
		}
		if _, dup := sums[name]; dup {
			return nil, corruptf("%s lists %s twice", ChecksumsFile, name)
		}
		sums[name] = hexsum
	}
	if err := sc.Err(); err != nil {
		return nil, corruptf("%s: %v", ChecksumsFile, err)
	}
	return sums, nil
}

// readMember reads a whole member (at most limit bytes).
func (b *Bundle) readMember(name string, limit int64) ([]byte, error) {
	m, ok := b.members[name]
	if !ok {
		return nil, fmt.Errorf("member %s: %w", name, ErrNotFound)
	}
	if m.size > limit {
		return nil, corruptf("member %s has %d bytes, more than the %d expected", name, m.size, limit)
	}
	buf := make([]byte, m.size)
	if _, err := b.f.ReadAt(buf, m.offset); err != nil {
		return nil, fmt.Errorf("reading member %s: %w", name, err)
	}
	return buf, nil
}

// checkedMember reads a small member and checks it against SHA256SUMS.
func (b *Bundle) checkedMember(name string) ([]byte, error) {
	raw, err := b.readMember(name, 64<<20)
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != b.sums[name] {
		return nil, corruptf("member %s does not match its checksum (tampered or damaged)", name)
	}
	return raw, nil
}

// Images returns the bundle's images, sorted by reference then platform.
func (b *Bundle) Images() []Image { return append([]Image(nil), b.Meta.Images...) }

// Lookup returns the image of a reference (as written in the spec) for a
// platform (os/arch[/variant]).
func (b *Bundle) Lookup(ref, platform string) (Image, bool) {
	img, ok := b.images[ref+"\x00"+platform]
	return img, ok
}

// Has reports whether the blob is in the bundle (not merely listed).
func (b *Bundle) Has(h v1.Hash) bool {
	_, ok := b.members[image.LayoutBlobPath(h)]
	return ok
}

// Blob returns what the bundle's index says about a blob its images need
// (included or left to the base).
func (b *Bundle) Blob(digest string) (BlobInfo, bool) {
	bl, ok := b.blobs[digest]
	return bl, ok
}

// OpenBlob returns a reader of blob h's bytes in place, and its size.
// The bytes are not verified: callers hash what they read (the blob store
// does, on Put).
func (b *Bundle) OpenBlob(h v1.Hash) (io.Reader, int64, error) {
	m, ok := b.members[image.LayoutBlobPath(h)]
	if !ok {
		return nil, 0, fmt.Errorf("blob %s: %w %s", h, ErrNotFound, b.path)
	}
	return io.NewSectionReader(b.f, m.offset, m.size), m.size, nil
}

// Open is OpenBlob as an io.ReadCloser, so that a Bundle is a BlobSource
// (for writing a bundle from another).
func (b *Bundle) Open(h v1.Hash) (io.ReadCloser, error) {
	r, _, err := b.OpenBlob(h)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(r), nil
}

// Members returns the member names in file order.
func (b *Bundle) Members() []string { return append([]string(nil), b.order...) }
