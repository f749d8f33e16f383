package image

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ManifestMediaType returns the media type of a raw manifest or index: its
// mediaType field, or, when absent (allowed by OCI), guessed from its shape
// (manifests → an OCI index, config → an OCI image manifest, schemaVersion
// 1 → a Docker v2 schema 1 manifest).
func ManifestMediaType(raw []byte) (types.MediaType, error) {
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     types.MediaType `json:"mediaType"`
		Config        json.RawMessage `json:"config"`
		Manifests     json.RawMessage `json:"manifests"`
		Layers        json.RawMessage `json:"layers"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return "", fmt.Errorf("not a JSON manifest: %w", err)
	}
	if probe.MediaType != "" {
		return probe.MediaType, nil
	}
	switch {
	case probe.Manifests != nil:
		return types.OCIImageIndex, nil
	case probe.Config != nil:
		return types.OCIManifestSchema1, nil
	case probe.SchemaVersion == 1:
		return types.DockerManifestSchema1, nil
	}
	return "", fmt.Errorf("unrecognised manifest")
}

// Layer compressions, as LayerCompression names them.
const (
	CompressionGzip = "gzip"
	CompressionNone = "none"
)

// LayerCompression says how a layer of media type mt is compressed:
// CompressionGzip (OCI and Docker gzip layers), CompressionNone (plain
// tar layers) or "" (zstd, or unknown).
func LayerCompression(mt types.MediaType) string {
	switch s := string(mt); {
	case strings.HasSuffix(s, "gzip"):
		return CompressionGzip
	case strings.HasSuffix(s, "tar"):
		return CompressionNone
	}
	return ""
}

// GzipUnpackedSize reads the size a gzip stream of compressed bytes unpacks
// to from its trailer (its last 8 bytes: CRC32 and ISIZE, the size modulo
// 2^32, RFC 1952). ISIZE is taken up by whole multiples of 2^32 until it is
// at least about the compressed size (deflate makes incompressible data
// only a little larger), so layers that unpack to more than 4 GiB are read
// right unless they compress better than 2^32 bytes per compressed size. A
// zero ISIZE (the empty last member of an eStargz or other multi-member
// stream) is unknown.
func GzipUnpackedSize(trailer []byte, compressed int64) (int64, bool) {
	if len(trailer) < 4 {
		return 0, false
	}
	isize := int64(binary.LittleEndian.Uint32(trailer[len(trailer)-4:]))
	if isize == 0 && compressed > 64 {
		return 0, false
	}
	// Incompressible data grows a little in deflate (stored or Huffman-only
	// blocks: zlib's deflateBound allows 0.03% and 13 bytes); 2% and 1 KiB
	// leave room for any encoder.
	floor := compressed - compressed/50 - 1024
	u := isize
	for u < floor {
		u += 1 << 32
	}
	return u, true
}

// TrailerSize is how many bytes at the end of a gzip layer
// LayerUnpackedSize reads: CRC32 and ISIZE.
const TrailerSize = 8

// LayerUnpackedSize returns how many bytes the layer d unpacks to without
// reading all of it: its size for an uncompressed layer, the gzip trailer's
// ISIZE (GzipUnpackedSize) for a gzip layer, whose last TrailerSize bytes
// tail reads; false for zstd and unknown media types, a layer too short to
// be gzip, or a trailer tail cannot read.
func LayerUnpackedSize(d v1.Descriptor, tail func() ([]byte, error)) (int64, bool) {
	switch LayerCompression(d.MediaType) {
	case CompressionNone:
		return d.Size, true
	case CompressionGzip:
		if d.Size < 18 {
			return 0, false
		}
		b, err := tail()
		if err != nil {
			return 0, false
		}
		return GzipUnpackedSize(b, d.Size)
	}
	return 0, false
}
