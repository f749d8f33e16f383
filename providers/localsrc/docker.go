package localsrc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// dockerManifestEntry is one image of a docker archive's manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// dockerConversion is a docker archive image as an OCI image.
type dockerConversion struct {
	raw      []byte
	digest   v1.Hash
	manifest *v1.Manifest
	config   []byte
}

func (s *Source) resolveDocker(image string, platform v1.Platform) (Image, error) {
	var res Image
	conv, err := s.convertDocker(image)
	if err != nil {
		return res, err
	}
	if err := checkPlatform(conv.config, conv.digest, platform); err != nil {
		return res, err
	}
	res.Digest = conv.digest
	res.Manifest = conv.digest
	res.Parsed = conv.manifest
	res.Size = imageSize(conv.manifest)
	return res, nil
}

// convertDocker builds the OCI manifest of the image named image in a
// docker archive, and records which file holds each of its blobs (for
// OpenBlob). Layers keep their bytes: a layer stored as blobs/sha256/HEX
// (the layout of newer docker save) is named by that digest; an
// uncompressed layer tar by its diff_id from the config (docker save writes
// the layers uncompressed, so no layer is read to resolve); a compressed
// layer elsewhere is hashed. Every digest is verified when the blob is
// copied.
func (s *Source) convertDocker(image string) (*dockerConversion, error) {
	raw, err := s.fs.readSmall("manifest.json")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errors.New("not a docker archive: it has no manifest.json")
		}
		return nil, err
	}
	var entries []dockerManifestEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("bad manifest.json: %w", err)
	}
	e, err := s.selectDockerImage(entries, image)
	if err != nil {
		return nil, err
	}
	cfg, err := s.fs.readSmall(e.Config)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", e.Config, err)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(cfg))
	if err != nil {
		return nil, fmt.Errorf("parsing config %s: %w", e.Config, err)
	}
	if len(cf.RootFS.DiffIDs) != len(e.Layers) {
		return nil, fmt.Errorf("config %s lists %d diff_ids for %d layers", e.Config, len(cf.RootFS.DiffIDs), len(e.Layers))
	}
	cfgDigest, cfgSize, err := v1.SHA256(bytes.NewReader(cfg))
	if err != nil {
		return nil, err
	}
	if h, ok := dockerBlobDigest(e.Config); ok && h != cfgDigest {
		return nil, fmt.Errorf("config %s is corrupt: its content hashes to %s", e.Config, cfgDigest)
	}
	m := &v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: cfgSize, Digest: cfgDigest},
	}
	paths := map[v1.Hash]string{cfgDigest: e.Config}
	for i, p := range e.Layers {
		d, err := s.dockerLayer(p, cf.RootFS.DiffIDs[i])
		if err != nil {
			return nil, err
		}
		m.Layers = append(m.Layers, d)
		paths[d.Digest] = p
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	md, _, err := v1.SHA256(bytes.NewReader(out))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	for h, p := range paths {
		s.dockerPaths[h] = p
	}
	s.mu.Unlock()
	return &dockerConversion{raw: out, digest: md, manifest: m, config: cfg}, nil
}

// dockerLayer describes the layer file p of a docker archive.
func (s *Source) dockerLayer(p string, diffID v1.Hash) (v1.Descriptor, error) {
	rc, size, err := s.fs.open(p)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("layer %s: %w", p, err)
	}
	defer rc.Close()
	var magic [4]byte
	n, _ := io.ReadFull(rc, magic[:])
	mt := types.OCIUncompressedLayer
	switch {
	case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		mt = types.OCILayer
	case n == 4 && bytes.Equal(magic[:], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		mt = types.OCILayerZStd
	}
	d := v1.Descriptor{MediaType: mt, Size: size}
	if h, ok := dockerBlobDigest(p); ok {
		d.Digest = h
		return d, nil
	}
	if mt == types.OCIUncompressedLayer {
		d.Digest = diffID
		return d, nil
	}
	rc2, _, err := s.fs.open(p)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("layer %s: %w", p, err)
	}
	defer rc2.Close()
	h, _, err := v1.SHA256(rc2)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("layer %s: %w", p, err)
	}
	d.Digest = h
	return d, nil
}

// dockerBlobDigest recognizes blobs/sha256/HEX paths (newer docker save).
func dockerBlobDigest(p string) (v1.Hash, bool) {
	rest, ok := strings.CutPrefix(path.Clean(p), "blobs/sha256/")
	if !ok {
		return v1.Hash{}, false
	}
	h, err := v1.NewHash("sha256:" + rest)
	return h, err == nil
}

// selectDockerImage picks the manifest.json entry whose RepoTags hold image
// (compared normalized: alpine:3.20 = docker.io/library/alpine:3.20), or
// the only entry.
func (s *Source) selectDockerImage(entries []dockerManifestEntry, image string) (dockerManifestEntry, error) {
	if len(entries) == 0 {
		return dockerManifestEntry{}, errors.New("the archive holds no images")
	}
	if image == "" {
		if len(entries) == 1 {
			return entries[0], nil
		}
		return dockerManifestEntry{}, fmt.Errorf("the archive holds %d images (%s); name one: %s:%s:REPO:TAG", len(entries), dockerRepoTags(entries), s.kind, s.path)
	}
	want := normalizeDockerTag(image)
	for _, e := range entries {
		for _, t := range e.RepoTags {
			if t == image || normalizeDockerTag(t) == want {
				return e, nil
			}
		}
	}
	return dockerManifestEntry{}, fmt.Errorf("no image tagged %q; the archive holds %s", image, dockerRepoTags(entries))
}

func normalizeDockerTag(s string) string {
	r, err := name.NewTag(s)
	if err != nil {
		return s
	}
	return r.Name()
}

func dockerRepoTags(entries []dockerManifestEntry) string {
	var tags []string
	for i, e := range entries {
		if len(e.RepoTags) == 0 {
			tags = append(tags, fmt.Sprintf("an untagged image (entry %d)", i))
		}
		for _, t := range e.RepoTags {
			tags = append(tags, fmt.Sprintf("%q", t))
		}
	}
	sort.Strings(tags)
	return strings.Join(tags, ", ")
}
