package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/cachectl/cachectl/providers/image"
)

// BlobSource gives the content of blobs by digest. *store.Store is one.
type BlobSource interface {
	Open(h v1.Hash) (io.ReadCloser, error)
}

// WriteOptions tune Write.
type WriteOptions struct {
	// Base makes the bundle incremental: blobs that the base bundle's
	// images need are left out (nil = a full, self-contained bundle).
	Base *Bundle
	// CachectlVersion is recorded in the bundle index.
	CachectlVersion string
	// Now is the clock (default time.Now); it sets Meta.Created and the
	// members' modification times.
	Now func() time.Time
}

// WriteResult says what Write wrote.
type WriteResult struct {
	// ID is the new bundle's ID (sha256 of its SHA256SUMS member).
	ID string
	// Images is the number of distinct reference+platform entries.
	Images int
	// Blobs and BlobBytes count the blobs written (each once).
	Blobs     int
	BlobBytes int64
	// Skipped and SkippedBytes count the blobs left to the base bundle.
	Skipped      int
	SkippedBytes int64
	// Size is the size of the bundle file.
	Size int64
}

// Write writes a bundle of images to path. Each image needs Ref, Platform,
// Digest and Manifest (Name is optional); its manifest, config and layers
// are read from src, verified against their digests and written once
// however many images share them. The file is written to a temporary file
// in the same directory, fsynced and renamed to path: path is either the
// old file or the complete new bundle.
func Write(ctx context.Context, path string, images []Image, src BlobSource, opts WriteOptions) (res *WriteResult, err error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	meta := Meta{FormatVersion: FormatVersion, Created: now().UTC().Truncate(time.Second), CachectlVersion: opts.CachectlVersion}
	if opts.Base != nil {
		meta.Base = &BaseRef{ID: opts.Base.ID, File: filepath.Base(opts.Base.Path())}
	}
	imgs, blobs, err := collect(images, src)
	if err != nil {
		return nil, err
	}
	meta.Images = imgs
	res = &WriteResult{Images: len(imgs)}
	baseHas := map[string]bool{}
	if opts.Base != nil {
		for _, b := range opts.Base.Meta.Blobs {
			baseHas[b.Digest] = true
		}
	}
	for i := range blobs {
		b := &blobs[i]
		b.Included = !baseHas[b.Digest]
		if b.Included {
			res.Blobs++
			res.BlobBytes += b.Size
		} else {
			res.Skipped++
			res.SkippedBytes += b.Size
		}
	}
	meta.Blobs = blobs

	dir := filepath.Dir(path)
	removeAbandoned(dir, filepath.Base(path))
	f, err := createLocked(dir, "."+filepath.Base(path)+".*.partial")
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := &tarWriter{tw: tar.NewWriter(f), mtime: meta.Created}
	if err = w.writeBytes(image.LayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return nil, err
	}
	idx, err := ociIndex(imgs)
	if err != nil {
		return nil, err
	}
	if err = w.writeBytes(image.IndexFile, idx); err != nil {
		return nil, err
	}
	mb, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if err = w.writeBytes(MetaFile, append(mb, '\n')); err != nil {
		return nil, err
	}
	for _, b := range blobs {
		if !b.Included {
			continue
		}
		if err = w.writeBlob(ctx, src, b); err != nil {
			return nil, err
		}
	}
	sums := w.sums.Bytes()
	if err = w.writeBytes(ChecksumsFile, sums); err != nil {
		return nil, err
	}
	if err = w.tw.Close(); err != nil {
		return nil, fmt.Errorf("bundle: finishing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return nil, fmt.Errorf("bundle: syncing %s: %w", tmp, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if err = f.Close(); err != nil {
		return nil, fmt.Errorf("bundle: closing %s: %w", tmp, err)
	}
	if err = os.Chmod(tmp, 0o644); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("bundle: placing %s: %w", path, err)
	}
	if d, e := os.Open(dir); e == nil {
		_ = d.Sync()
		d.Close()
	}
	sum := sha256.Sum256(sums)
	res.ID = "sha256:" + hex.EncodeToString(sum[:])
	res.Size = fi.Size()
	return res, nil
}

// collect reads each image's manifest from src and returns the distinct
// images (sorted) and every blob they need (sorted by digest).
func collect(images []Image, src BlobSource) ([]Image, []BlobInfo, error) {
	byKey := map[string]Image{}
	blobs := map[string]BlobInfo{}
	manifests := map[string]*v1.Manifest{}
	for _, img := range images {
		if prev, ok := byKey[img.Key()]; ok {
			if prev.Manifest != img.Manifest {
				return nil, nil, fmt.Errorf("bundle: %s (%s) resolved to two manifests, %s and %s", img.Ref, img.Platform, prev.Manifest, img.Manifest)
			}
			continue
		}
		if _, err := v1.ParsePlatform(img.Platform); err != nil || img.Platform == "" {
			return nil, nil, fmt.Errorf("bundle: %s: bad platform %q", img.Ref, img.Platform)
		}
		h, err := v1.NewHash(img.Manifest)
		if err != nil {
			return nil, nil, fmt.Errorf("bundle: %s: bad manifest digest %q: %w", img.Ref, img.Manifest, err)
		}
		if img.Digest == "" {
			img.Digest = img.Manifest
		}
		m, ok := manifests[img.Manifest]
		if !ok {
			raw, err := readBlob(src, h)
			if err != nil {
				return nil, nil, fmt.Errorf("bundle: %s: manifest: %w", img.Ref, err)
			}
			if m, err = v1.ParseManifest(bytes.NewReader(raw)); err != nil {
				return nil, nil, fmt.Errorf("bundle: %s: parsing manifest %s: %w", img.Ref, h, err)
			}
			if m.Config.Digest.Hex == "" {
				return nil, nil, fmt.Errorf("bundle: %s: %s is not an image manifest", img.Ref, h)
			}
			mt := m.MediaType
			if mt == "" {
				mt = types.OCIManifestSchema1
			}
			manifests[img.Manifest] = m
			blobs[img.Manifest] = BlobInfo{Digest: img.Manifest, Size: int64(len(raw)), MediaType: mt}
		}
		img.MediaType = blobs[img.Manifest].MediaType
		img.ManifestSize = blobs[img.Manifest].Size
		img.Size = 0
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			img.Size += d.Size
			blobs[d.Digest.String()] = BlobInfo{Digest: d.Digest.String(), Size: d.Size, MediaType: d.MediaType}
		}
		byKey[img.Key()] = img
	}
	out := make([]Image, 0, len(byKey))
	for _, img := range byKey {
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Ref != out[j].Ref {
			return out[i].Ref < out[j].Ref
		}
		return out[i].Platform < out[j].Platform
	})
	bl := make([]BlobInfo, 0, len(blobs))
	for _, b := range blobs {
		bl = append(bl, b)
	}
	sort.Slice(bl, func(i, j int) bool { return bl[i].Digest < bl[j].Digest })
	return out, bl, nil
}

// readBlob reads a small blob (a manifest) and checks its digest.
func readBlob(src BlobSource, h v1.Hash) ([]byte, error) {
	rc, err := src.Open(h)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", h, err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != h.Hex {
		return nil, fmt.Errorf("blob %s does not match its digest", h)
	}
	return b, nil
}

// ociIndex is index.json: one descriptor per image, annotated with the
// normalized name (as Podman writes it) and the reference as written.
func ociIndex(imgs []Image) ([]byte, error) {
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
	for _, img := range imgs {
		h, _ := v1.NewHash(img.Manifest)
		p, _ := v1.ParsePlatform(img.Platform)
		ann := map[string]string{AnnotationRef: img.Ref}
		if img.Name != "" {
			ann[image.RefNameAnnotation] = img.Name
		}
		idx.Manifests = append(idx.Manifests, v1.Descriptor{MediaType: img.MediaType, Digest: h, Size: img.ManifestSize, Platform: p, Annotations: ann})
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return b, nil
}

// tarWriter writes members and records their checksums.
type tarWriter struct {
	tw    *tar.Writer
	mtime time.Time
	sums  bytes.Buffer
}

func (w *tarWriter) header(name string, size int64) error {
	if err := w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: w.mtime}); err != nil {
		return fmt.Errorf("bundle: writing %s: %w", name, err)
	}
	return nil
}

func (w *tarWriter) writeBytes(name string, b []byte) error {
	if err := w.header(name, int64(len(b))); err != nil {
		return err
	}
	if _, err := w.tw.Write(b); err != nil {
		return fmt.Errorf("bundle: writing %s: %w", name, err)
	}
	if name != ChecksumsFile {
		sum := sha256.Sum256(b)
		fmt.Fprintf(&w.sums, "%x  %s\n", sum, name)
	}
	return nil
}

func (w *tarWriter) writeBlob(ctx context.Context, src BlobSource, b BlobInfo) error {
	h, err := v1.NewHash(b.Digest)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	rc, err := src.Open(h)
	if err != nil {
		return fmt.Errorf("bundle: blob %s: %w", h, err)
	}
	defer rc.Close()
	name := image.LayoutBlobPath(h)
	if err := w.header(name, b.Size); err != nil {
		return err
	}
	var bad *image.BlobMismatchError
	err = image.CopyBlob(ctx, w.tw, rc, v1.Descriptor{Digest: h, Size: b.Size}, true)
	switch {
	case errors.As(err, &bad) && bad.Size != b.Size:
		return fmt.Errorf("bundle: blob %s in the source has %d bytes, its descriptor says %d", h, bad.Size, b.Size)
	case errors.As(err, &bad):
		return fmt.Errorf("bundle: blob %s in the source hashes to sha256:%s; remove it from the store and pull again", h, bad.Hex)
	case err != nil:
		return fmt.Errorf("bundle: writing blob %s: %w", h, err)
	}
	fmt.Fprintf(&w.sums, "%s  %s\n", h.Hex, name)
	return nil
}

// createLocked creates a temporary file in dir (os.CreateTemp's pattern)
// and holds an exclusive flock on it while the write runs, so that
// removeAbandoned of another run leaves it alone. A file such a run
// removed between its creation and the lock (its link count is then 0) is
// given up for a new one.
func createLocked(dir, pattern string) (*os.File, error) {
	for try := 0; ; try++ {
		f, err := os.CreateTemp(dir, pattern)
		if err != nil {
			return nil, err
		}
		var st syscall.Stat_t
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			err = syscall.Fstat(int(f.Fd()), &st)
		}
		if err == nil && st.Nlink > 0 {
			return f, nil
		}
		f.Close()
		os.Remove(f.Name())
		if try == 10 {
			return nil, fmt.Errorf("could not create a temporary file in %s that stays ours", dir)
		}
	}
}

// removeAbandoned removes the temporary files that killed writes of the
// bundle base left in dir (".BASE.*.partial"): regular files of the
// running user that no running write holds locked (createLocked). It never
// follows a symlink and leaves anything else alone.
func removeAbandoned(dir, base string) {
	matches, _ := filepath.Glob(filepath.Join(dir, "."+globEscape(base)+".*.partial"))
	for _, m := range matches {
		f, err := os.OpenFile(m, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		st, ok := fi.Sys().(*syscall.Stat_t)
		if err == nil && ok && fi.Mode().IsRegular() && int(st.Uid) == os.Geteuid() &&
			syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.Remove(m)
		}
		f.Close()
	}
}

// globEscape quotes the characters filepath.Match treats specially.
func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`)
	return r.Replace(s)
}
