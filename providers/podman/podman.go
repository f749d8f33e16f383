// Package podman builds Podman OCI archives: what `podman save
// --format=oci-archive` writes, an uncompressed tar of an OCI image layout
// (oci-layout, index.json, blobs/sha256/...) holding one image whose manifest
// is annotated with org.opencontainers.image.ref.name = the full normalized
// reference. Jobs use it as `oci-archive:/path/file`.
//
// Docker schema 2 images are converted the way containers/image converts them
// for an OCI layout: the manifest and config get OCI media types (which
// changes the manifest digest), layers keep their bytes and only change media
// type (Docker gzip layer → OCI gzip layer). The config blob keeps its bytes.
// Layers are streamed from the image into the archive, verified against their
// digests on the way, without temporary copies.
package podman

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/image"
)

// layoutFile is the content of the oci-layout file.
const layoutFile = `{"imageLayoutVersion": "1.0.0"}`

// Builder makes OCI archives. It implements providers.Builder.
type Builder struct {
	verifyDigests bool
}

// Option configures a Builder.
type Option func(*Builder)

// WithDigestVerification sets whether Build hashes every blob while copying
// it and fails on a digest or size mismatch. Default true.
func WithDigestVerification(on bool) Option { return func(b *Builder) { b.verifyDigests = on } }

// New returns a Builder.
func New(opts ...Option) *Builder {
	b := &Builder{verifyDigests: true}
	for _, o := range opts {
		o(b)
	}
	return b
}

var _ providers.Builder = (*Builder)(nil)

// Format returns "oci-archive".
func (*Builder) Format() string { return "oci-archive" }

// Version returns the output format revision.
func (*Builder) Version() string { return "1" }

// ociMediaType maps a layer media type to its OCI equivalent.
func ociMediaType(mt types.MediaType) (types.MediaType, error) {
	switch mt {
	case types.DockerLayer, types.OCILayer:
		return types.OCILayer, nil
	case types.DockerUncompressedLayer, types.OCIUncompressedLayer:
		return types.OCIUncompressedLayer, nil
	case types.DockerForeignLayer, types.OCIRestrictedLayer:
		return types.OCIRestrictedLayer, nil
	case types.OCIUncompressedRestrictedLayer, types.OCILayerZStd:
		return mt, nil
	}
	return "", fmt.Errorf("podman: unsupported layer media type %q", mt)
}

// Converted is the OCI form of an image: its manifest bytes and digest.
type Converted struct {
	Manifest       v1.Manifest
	RawManifest    []byte
	ManifestDigest v1.Hash
	RawConfig      []byte
}

// Convert returns the OCI manifest of img (Docker media types converted).
func Convert(img v1.Image) (*Converted, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("podman: read manifest: %w", err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("podman: read config: %w", err)
	}
	out := *m.DeepCopy()
	out.SchemaVersion = 2
	out.MediaType = types.OCIManifestSchema1
	switch out.Config.MediaType {
	case types.DockerConfigJSON, types.OCIConfigJSON, "":
		out.Config.MediaType = types.OCIConfigJSON
	default:
		return nil, fmt.Errorf("podman: unsupported config media type %q", out.Config.MediaType)
	}
	for i := range out.Layers {
		mt, err := ociMediaType(out.Layers[i].MediaType)
		if err != nil {
			return nil, err
		}
		out.Layers[i].MediaType = mt
	}
	raw, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("podman: encode manifest: %w", err)
	}
	d, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	return &Converted{Manifest: out, RawManifest: raw, ManifestDigest: d, RawConfig: rawCfg}, nil
}

// Build writes the OCI archive of img to out (which must not exist). On
// error it removes out.
func (b *Builder) Build(ctx context.Context, img v1.Image, req providers.BuildRequest, out string) (err error) {
	if req.NormalizedName == "" {
		return errors.New("podman: BuildRequest.NormalizedName is empty")
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("podman: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("podman: close %s: %w", out, cerr)
		}
		if err != nil {
			os.Remove(out)
		}
	}()
	return b.Write(ctx, img, req.NormalizedName, f)
}

// Write writes the OCI archive of img, named refName, to w.
func (b *Builder) Write(ctx context.Context, img v1.Image, refName string, w io.Writer) error {
	conv, err := Convert(img)
	if err != nil {
		return err
	}
	cfgFile, _ := img.ConfigFile()
	mtime := time.Unix(0, 0).UTC()
	if cfgFile != nil && !cfgFile.Created.IsZero() {
		mtime = cfgFile.Created.Time.UTC()
	}

	index := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType:   types.OCIManifestSchema1,
			Size:        int64(len(conv.RawManifest)),
			Digest:      conv.ManifestDigest,
			Annotations: map[string]string{image.RefNameAnnotation: refName},
		}},
	}
	rawIndex, err := json.Marshal(index)
	if err != nil {
		return fmt.Errorf("podman: encode index: %w", err)
	}

	// Blobs in digest order, each once (as a directory walk would list them).
	type blob struct {
		digest v1.Hash
		size   int64
		data   []byte   // small JSON blobs
		layer  v1.Layer // layers, streamed
	}
	blobs := map[string]*blob{
		conv.ManifestDigest.Hex:         {digest: conv.ManifestDigest, size: int64(len(conv.RawManifest)), data: conv.RawManifest},
		conv.Manifest.Config.Digest.Hex: {digest: conv.Manifest.Config.Digest, size: int64(len(conv.RawConfig)), data: conv.RawConfig},
	}
	if conv.Manifest.Config.Size != int64(len(conv.RawConfig)) {
		return fmt.Errorf("podman: config is %d bytes, manifest says %d", len(conv.RawConfig), conv.Manifest.Config.Size)
	}
	for _, d := range conv.Manifest.Layers {
		if _, ok := blobs[d.Digest.Hex]; ok {
			continue
		}
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			return fmt.Errorf("podman: layer %s: %w", d.Digest, err)
		}
		blobs[d.Digest.Hex] = &blob{digest: d.Digest, size: d.Size, layer: l}
	}
	keys := make([]string, 0, len(blobs))
	for k, bl := range blobs {
		if bl.digest.Algorithm != "sha256" {
			return fmt.Errorf("podman: unsupported digest algorithm %s", bl.digest)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)

	tw := tar.NewWriter(w)
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(name string, size int64) error {
		return tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: mtime, Format: tar.FormatPAX})
	}
	if err := dir("blobs/"); err != nil {
		return fmt.Errorf("podman: %w", err)
	}
	if err := dir("blobs/sha256/"); err != nil {
		return fmt.Errorf("podman: %w", err)
	}
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		bl := blobs[k]
		if err := file(image.LayoutBlobPath(bl.digest), bl.size); err != nil {
			return fmt.Errorf("podman: %w", err)
		}
		if bl.data != nil {
			if _, err := tw.Write(bl.data); err != nil {
				return fmt.Errorf("podman: %w", err)
			}
			continue
		}
		if err := b.copyLayer(ctx, tw, bl.layer, bl.digest, bl.size); err != nil {
			return err
		}
	}
	if err := file(image.IndexFile, int64(len(rawIndex))); err != nil {
		return fmt.Errorf("podman: %w", err)
	}
	if _, err := tw.Write(rawIndex); err != nil {
		return fmt.Errorf("podman: %w", err)
	}
	if err := file(image.LayoutFile, int64(len(layoutFile))); err != nil {
		return fmt.Errorf("podman: %w", err)
	}
	if _, err := io.WriteString(tw, layoutFile); err != nil {
		return fmt.Errorf("podman: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("podman: %w", err)
	}
	return nil
}

// copyLayer streams a layer's compressed bytes into tw, checking size and digest.
func (b *Builder) copyLayer(ctx context.Context, tw io.Writer, l v1.Layer, digest v1.Hash, size int64) error {
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("podman: open layer %s: %w", digest, err)
	}
	defer rc.Close()
	var bad *image.BlobMismatchError
	err = image.CopyBlob(ctx, tw, rc, v1.Descriptor{Digest: digest, Size: size}, b.verifyDigests)
	switch {
	case errors.As(err, &bad) && bad.Size != size:
		return fmt.Errorf("podman: layer %s is %d bytes, manifest says %d", digest, bad.Size, size)
	case errors.As(err, &bad):
		return fmt.Errorf("podman: layer %s has digest sha256:%s", digest, bad.Hex)
	case err != nil:
		return fmt.Errorf("podman: copy layer %s: %w", digest, err)
	}
	return nil
}
