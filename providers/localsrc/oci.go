package localsrc

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cachectl/cachectl/providers/image"
)

// readBlob reads a small blob (manifest, index, config) of an OCI source
// fully and checks its digest (and size when d.Size >= 0).
func (s *Source) readBlob(d v1.Descriptor) ([]byte, error) {
	rc, size, err := s.fs.open(image.LayoutBlobPath(d.Digest))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > maxSmallBlob {
		return nil, fmt.Errorf("blob %s is %d bytes, too large for a manifest or config", d.Digest, size)
	}
	raw, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d.Digest, err)
	}
	if err := checkDigest(raw, d); err != nil {
		return nil, err
	}
	return raw, nil
}

func checkDigest(raw []byte, d v1.Descriptor) error {
	if d.Digest.Algorithm != "sha256" {
		return fmt.Errorf("blob %s: unsupported digest algorithm", d.Digest)
	}
	sum := sha256.Sum256(raw)
	if got := hex.EncodeToString(sum[:]); got != d.Digest.Hex {
		return fmt.Errorf("blob %s is corrupt: its content hashes to sha256:%s", d.Digest, got)
	}
	if d.Size >= 0 && int64(len(raw)) != d.Size {
		return fmt.Errorf("blob %s is corrupt: %d bytes, its descriptor says %d", d.Digest, len(raw), d.Size)
	}
	return nil
}

// layoutIndex reads and checks oci-layout and index.json.
func (s *Source) layoutIndex() (*v1.IndexManifest, error) {
	what := "OCI image layout"
	if s.kind == OCIArchive {
		what = "OCI archive"
	}
	raw, err := s.fs.readSmall(image.LayoutFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("not an %s: it has no oci-layout file", what)
		}
		return nil, err
	}
	var lay struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(raw, &lay); err != nil {
		return nil, fmt.Errorf("bad oci-layout file: %w", err)
	}
	if !strings.HasPrefix(lay.Version, "1.") {
		return nil, fmt.Errorf("unsupported OCI image layout version %q", lay.Version)
	}
	raw, err = s.fs.readSmall(image.IndexFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("not an %s: it has no index.json", what)
		}
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("bad index.json: %w", err)
	}
	return idx, nil
}

func (s *Source) resolveOCI(image string, platform v1.Platform) (Image, error) {
	var res Image
	idx, err := s.layoutIndex()
	if err != nil {
		return res, err
	}
	top, err := s.selectLayoutEntry(idx, image)
	if err != nil {
		return res, err
	}
	raw, err := s.readBlob(top)
	if err != nil {
		return res, err
	}
	res.Digest = top.Digest
	desc := top
	fromIndex := false
	if mt := mediaType(top, raw); mt.IsIndex() {
		child, err := pickPlatform(raw, top.Digest, platform)
		if err != nil {
			return res, err
		}
		if raw, err = s.readBlob(child); err != nil {
			return res, err
		}
		desc, fromIndex = child, true
	}
	m, err := parseManifest(raw, desc.Digest)
	if err != nil {
		return res, err
	}
	if !fromIndex {
		cfg, err := s.readBlob(m.Config)
		if err != nil {
			return res, fmt.Errorf("config of %s: %w", desc.Digest, err)
		}
		if err := checkPlatform(cfg, desc.Digest, platform); err != nil {
			return res, err
		}
	}
	res.Manifest = desc.Digest
	res.Parsed = m
	res.Size = imageSize(m)
	return res, nil
}

// selectLayoutEntry picks the index.json entry named name (by its ref.name
// annotation), or the only one.
func (s *Source) selectLayoutEntry(idx *v1.IndexManifest, name string) (v1.Descriptor, error) {
	var matches []v1.Descriptor
	for _, d := range idx.Manifests {
		if name == "" || d.Annotations[image.RefNameAnnotation] == name {
			matches = append(matches, d)
		}
	}
	switch {
	case len(matches) == 1:
		return matches[0], nil
	case len(idx.Manifests) == 0:
		return v1.Descriptor{}, errors.New("the layout holds no images")
	case len(matches) == 0:
		return v1.Descriptor{}, fmt.Errorf("no image named %q; the layout holds %s", name, layoutEntryNames(idx))
	case name == "":
		return v1.Descriptor{}, fmt.Errorf("the layout holds %d images (%s); name one: %s:%s:REF", len(matches), layoutEntryNames(idx), s.kind, s.path)
	}
	return v1.Descriptor{}, fmt.Errorf("%d entries are named %q; the name must select one image", len(matches), name)
}

func layoutEntryNames(idx *v1.IndexManifest) string {
	var names []string
	for _, d := range idx.Manifests {
		if n := d.Annotations[image.RefNameAnnotation]; n != "" {
			names = append(names, fmt.Sprintf("%q", n))
		} else {
			names = append(names, "an unnamed image "+d.Digest.String())
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func mediaType(d v1.Descriptor, raw []byte) types.MediaType {
	if d.MediaType != "" {
		return d.MediaType
	}
	mt, _ := image.ManifestMediaType(raw)
	return mt
}

func parseManifest(raw []byte, h v1.Hash) (*v1.Manifest, error) {
	mt, err := image.ManifestMediaType(raw)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", h, err)
	}
	if !mt.IsImage() {
		return nil, fmt.Errorf("%s: unsupported manifest media type %q", h, mt)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing manifest %s: %w", h, err)
	}
	return m, nil
}

func imageSize(m *v1.Manifest) int64 {
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}
