package planner

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
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cachectl/cachectl/providers/registry"
	"github.com/cachectl/cachectl/providers/store"
	"github.com/cachectl/cachectl/spec"
)

// ociRefNameAnnotation names an image in an OCI layout's index.json.
const ociRefNameAnnotation = "org.opencontainers.image.ref.name"

// maxLocalSmallBlob bounds manifests, indexes and configs read into memory.
const maxLocalSmallBlob = 32 << 20

// LocalSource resolves images from local sources (oci-layout:DIR[:REF],
// oci-archive:FILE[:REF], docker-archive:FILE[:REPO:TAG]) and copies their
// blobs into the blob store, verifying every digest. It never touches the
// network. It implements Resolver and Fetcher.
//
// A reference resolves to the digest of the image (or index) it selects in
// the source; a docker archive, which has no manifest, is converted to an
// OCI manifest deterministically (config bytes kept, layers kept as they
// are in the archive, uncompressed layer tars named by their diff_ids), so
// the same archive always resolves to the same digest and a changed one to
// another.
type LocalSource struct {
	// Store receives the blobs on Fetch; it also tells ResolveAll how many
	// bytes are not stored yet.
	Store *store.Store
	refs  map[string]*spec.LocalRef

	mu    sync.Mutex
	stats registry.PullStats
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
func (s *LocalSource) Stats() registry.PullStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
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
func (s *LocalSource) ResolveAll(ctx context.Context, reqs []ResolveRequest) (map[ResolveKey]Resolution, error) {
	out := make(map[ResolveKey]Resolution, len(reqs))
	opened := map[string]*localSrc{}
	defer func() {
		for _, o := range opened {
			o.close()
		}
	}()
	var errs []error
	for _, r := range reqs {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		k := ResolveKey{r.Ref, PlatformString(r.Platform)}
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
		res, err := src.resolve(lr, r.Platform)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w (platform %s)", r.Ref, err, k.Platform))
			continue
		}
		res.Download = s.missingBytes(res.manifest)
		out[k] = res.Resolution
	}
	return out, errors.Join(errs...)
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
	defer src.close()
	raw, m, err := src.manifestByDigest(lr, h)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if s.Store.Has(d.Digest) {
			s.count(0, false)
			continue
		}
		rc, size, err := src.blob(d)
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
		s.count(n, true)
	}
	if err := s.Store.PutBytes(ctx, h, raw); err != nil {
		return nil, fmt.Errorf("%s: store manifest: %w", ref, err)
	}
	return s.Store.Image(h)
}

func (s *LocalSource) count(n int64, copied bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if copied {
		s.stats.BytesDownloaded += n
		s.stats.BlobsDownloaded++
	} else {
		s.stats.BlobsCached++
	}
}

// localResolution is a Resolution with the image manifest it found.
type localResolution struct {
	Resolution
	manifest *v1.Manifest
}

// localSrc is an opened local source: a directory or a tar archive, read as
// an OCI image layout or as a docker archive.
type localSrc struct {
	kind spec.LocalKind
	fs   localFS
}

func openLocal(lr *spec.LocalRef) (*localSrc, error) {
	var fsys localFS
	var err error
	switch lr.Kind {
	case spec.LocalOCILayout:
		fsys, err = openLocalDir(lr.AbsPath)
	case spec.LocalOCIArchive, spec.LocalDockerArchive:
		fsys, err = openLocalTar(lr.AbsPath)
	default:
		err = fmt.Errorf("unknown local source kind %q", lr.Kind)
	}
	if err != nil {
		return nil, err
	}
	return &localSrc{kind: lr.Kind, fs: fsys}, nil
}

func (s *localSrc) close() { s.fs.close() }

func (s *localSrc) resolve(lr *spec.LocalRef, platform v1.Platform) (localResolution, error) {
	if platform.OS == "" {
		platform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	if s.kind == spec.LocalDockerArchive {
		return s.resolveDocker(lr, platform)
	}
	return s.resolveOCI(lr, platform)
}

// manifestByDigest returns the raw and parsed image manifest h of the image
// lr selects; for OCI layouts any manifest blob of the layout.
func (s *localSrc) manifestByDigest(lr *spec.LocalRef, h v1.Hash) ([]byte, *v1.Manifest, error) {
	if s.kind == spec.LocalDockerArchive {
		conv, err := s.convertDocker(lr)
		if err != nil {
			return nil, nil, err
		}
		if conv.digest != h {
			return nil, nil, fmt.Errorf("the archive changed since the plan: its image is now %s, not %s; plan again", conv.digest, h)
		}
		return conv.raw, conv.manifest, nil
	}
	if _, err := s.layoutIndex(); err != nil {
		return nil, nil, err
	}
	raw, err := s.readBlob(v1.Descriptor{Digest: h, Size: -1})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("manifest %s is no longer in %s (the source changed since the plan); plan again", h, lr.AbsPath)
		}
		return nil, nil, err
	}
	m, err := parseLocalManifest(raw, h)
	if err != nil {
		return nil, nil, err
	}
	return raw, m, nil
}

// blob opens a config or layer blob for copying. For OCI layouts it is
// blobs/ALG/HEX; for docker archives the file manifest.json names.
func (s *localSrc) blob(d v1.Descriptor) (io.ReadCloser, int64, error) {
	if p, ok := d.Annotations[dockerPathAnnotation]; ok {
		return s.fs.open(p)
	}
	return s.fs.open(localBlobPath(d.Digest))
}

func localBlobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// readBlob reads a small blob (manifest, index, config) fully and checks
// its digest (and size when d.Size >= 0).
func (s *localSrc) readBlob(d v1.Descriptor) ([]byte, error) {
	rc, size, err := s.fs.open(localBlobPath(d.Digest))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > maxLocalSmallBlob {
		return nil, fmt.Errorf("blob %s is %d bytes, too large for a manifest or config", d.Digest, size)
	}
	raw, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d.Digest, err)
	}
	if err := checkBlobDigest(raw, d); err != nil {
		return nil, err
	}
	return raw, nil
}

func checkBlobDigest(raw []byte, d v1.Descriptor) error {
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
func (s *localSrc) layoutIndex() (*v1.IndexManifest, error) {
	what := "OCI image layout"
	if s.kind == spec.LocalOCIArchive {
		what = "OCI archive"
	}
	raw, err := s.fs.readSmall("oci-layout")
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
	raw, err = s.fs.readSmall("index.json")
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

func (s *localSrc) resolveOCI(lr *spec.LocalRef, platform v1.Platform) (localResolution, error) {
	var res localResolution
	idx, err := s.layoutIndex()
	if err != nil {
		return res, err
	}
	top, err := selectLayoutEntry(idx, lr)
	if err != nil {
		return res, err
	}
	raw, err := s.readBlob(top)
	if err != nil {
		return res, err
	}
	res.Digest = top.Digest.String()
	desc := top
	fromIndex := false
	if mt := localMediaType(top, raw); mt.IsIndex() {
		child, err := pickLocalPlatform(raw, top.Digest, platform)
		if err != nil {
			return res, err
		}
		if raw, err = s.readBlob(child); err != nil {
			return res, err
		}
		desc, fromIndex = child, true
	}
	m, err := parseLocalManifest(raw, desc.Digest)
	if err != nil {
		return res, err
	}
	if !fromIndex {
		cfg, err := s.readBlob(m.Config)
		if err != nil {
			return res, fmt.Errorf("config of %s: %w", desc.Digest, err)
		}
		if err := checkLocalPlatform(cfg, desc.Digest, platform); err != nil {
			return res, err
		}
	}
	res.Manifest = desc.Digest.String()
	res.manifest = m
	res.Size = localImageSize(m)
	return res, nil
}

// selectLayoutEntry picks the index.json entry lr names (by its ref.name
// annotation), or the only one.
func selectLayoutEntry(idx *v1.IndexManifest, lr *spec.LocalRef) (v1.Descriptor, error) {
	var matches []v1.Descriptor
	for _, d := range idx.Manifests {
		if lr.Image == "" || d.Annotations[ociRefNameAnnotation] == lr.Image {
			matches = append(matches, d)
		}
	}
	switch {
	case len(matches) == 1:
		return matches[0], nil
	case len(idx.Manifests) == 0:
		return v1.Descriptor{}, errors.New("the layout holds no images")
	case len(matches) == 0:
		return v1.Descriptor{}, fmt.Errorf("no image named %q; the layout holds %s", lr.Image, layoutEntryNames(idx))
	case lr.Image == "":
		return v1.Descriptor{}, fmt.Errorf("the layout holds %d images (%s); name one: %s:%s:REF", len(matches), layoutEntryNames(idx), lr.Kind, lr.Path)
	}
	return v1.Descriptor{}, fmt.Errorf("%d entries are named %q; the name must select one image", len(matches), lr.Image)
}

func layoutEntryNames(idx *v1.IndexManifest) string {
	var names []string
	for _, d := range idx.Manifests {
		if n := d.Annotations[ociRefNameAnnotation]; n != "" {
			names = append(names, fmt.Sprintf("%q", n))
		} else {
			names = append(names, "an unnamed image "+d.Digest.String())
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func localMediaType(d v1.Descriptor, raw []byte) types.MediaType {
	if d.MediaType != "" {
		return d.MediaType
	}
	mt, _ := store.ManifestMediaType(raw)
	return mt
}

func parseLocalManifest(raw []byte, h v1.Hash) (*v1.Manifest, error) {
	mt, err := store.ManifestMediaType(raw)
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

func localImageSize(m *v1.Manifest) int64 {
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// pickLocalPlatform returns the entry of the index raw for platform, with the
// registry's rules: entries without a platform or for "unknown" (attestations)
// are skipped; a wanted variant must match (arm64's missing variant is v8).
func pickLocalPlatform(raw []byte, h v1.Hash, want v1.Platform) (v1.Descriptor, error) {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("parsing index %s: %w", h, err)
	}
	var avail []string
	seen := map[string]bool{}
	for _, d := range idx.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" {
			continue
		}
		if localPlatformMatches(want, *d.Platform) {
			return d, nil
		}
		if s := d.Platform.String(); !seen[s] {
			seen[s] = true
			avail = append(avail, s)
		}
	}
	sort.Strings(avail)
	if len(avail) == 0 {
		return v1.Descriptor{}, fmt.Errorf("no image for platform %s in index %s (the index lists no platforms)", want.String(), h)
	}
	return v1.Descriptor{}, fmt.Errorf("no image for platform %s in index %s; available: %s", want.String(), h, strings.Join(avail, ", "))
}

func localPlatformMatches(want, have v1.Platform) bool {
	if want.OS != have.OS || want.Architecture != have.Architecture {
		return false
	}
	if want.Variant == "" {
		return true
	}
	return localNormVariant(want) == localNormVariant(have)
}

func localNormVariant(p v1.Platform) string {
	if p.Variant == "" && p.Architecture == "arm64" {
		return "v8"
	}
	return p.Variant
}

// checkLocalPlatform fails when a single-platform image's config names another
// platform than want.
func checkLocalPlatform(rawCfg []byte, h v1.Hash, want v1.Platform) error {
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return fmt.Errorf("parsing config of %s: %w", h, err)
	}
	if p := cf.Platform(); p != nil && p.OS != "" && p.Architecture != "" && !localPlatformMatches(want, *p) {
		return fmt.Errorf("image %s is for platform %s only, not %s", h, p.String(), want.String())
	}
	return nil
}

// dockerPathAnnotation carries, on the descriptors of a converted docker
// archive, the file in the archive that holds the blob. It is stripped
// before the manifest is encoded.
const dockerPathAnnotation = "cachectl.internal/docker-archive-path"

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
	manifest *v1.Manifest // descriptors carry dockerPathAnnotation
	config   []byte
}

func (s *localSrc) resolveDocker(lr *spec.LocalRef, platform v1.Platform) (localResolution, error) {
	var res localResolution
	conv, err := s.convertDocker(lr)
	if err != nil {
		return res, err
	}
	if err := checkLocalPlatform(conv.config, conv.digest, platform); err != nil {
		return res, err
	}
	res.Digest = conv.digest.String()
	res.Manifest = res.Digest
	res.manifest = conv.manifest
	res.Size = localImageSize(conv.manifest)
	return res, nil
}

// convertDocker builds the OCI manifest of the image lr selects in a docker
// archive. Layers keep their bytes: a layer stored as blobs/sha256/HEX (the
// layout of newer docker save) is named by that digest; an uncompressed
// layer tar by its diff_id from the config (docker save writes the layers
// uncompressed, so no layer is read to resolve); a compressed layer
// elsewhere is hashed. Every digest is verified when the blob is copied.
func (s *localSrc) convertDocker(lr *spec.LocalRef) (*dockerConversion, error) {
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
	e, err := selectDockerImage(entries, lr)
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
	for i, p := range e.Layers {
		d, err := s.dockerLayer(p, cf.RootFS.DiffIDs[i])
		if err != nil {
			return nil, err
		}
		m.Layers = append(m.Layers, d)
	}
	clean := m.DeepCopy()
	for i := range clean.Layers {
		clean.Layers[i].Annotations = nil
	}
	out, err := json.Marshal(clean)
	if err != nil {
		return nil, err
	}
	md, _, err := v1.SHA256(bytes.NewReader(out))
	if err != nil {
		return nil, err
	}
	m.Config.Annotations = map[string]string{dockerPathAnnotation: e.Config}
	return &dockerConversion{raw: out, digest: md, manifest: m, config: cfg}, nil
}

func (s *localSrc) dockerLayer(p string, diffID v1.Hash) (v1.Descriptor, error) {
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
	d := v1.Descriptor{MediaType: mt, Size: size, Annotations: map[string]string{dockerPathAnnotation: p}}
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

// selectDockerImage picks the manifest.json entry whose RepoTags hold
// lr.Image (compared normalized: alpine:3.20 = docker.io/library/alpine:3.20),
// or the only entry.
func selectDockerImage(entries []dockerManifestEntry, lr *spec.LocalRef) (dockerManifestEntry, error) {
	if len(entries) == 0 {
		return dockerManifestEntry{}, errors.New("the archive holds no images")
	}
	if lr.Image == "" {
		if len(entries) == 1 {
			return entries[0], nil
		}
		return dockerManifestEntry{}, fmt.Errorf("the archive holds %d images (%s); name one: %s:%s:REPO:TAG", len(entries), dockerRepoTags(entries), lr.Kind, lr.Path)
	}
	want := normalizeDockerTag(lr.Image)
	for _, e := range entries {
		for _, t := range e.RepoTags {
			if t == lr.Image || normalizeDockerTag(t) == want {
				return e, nil
			}
		}
	}
	return dockerManifestEntry{}, fmt.Errorf("no image tagged %q; the archive holds %s", lr.Image, dockerRepoTags(entries))
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

// localFS is read access to the files of a local source.
type localFS interface {
	// open opens a file by its slash-separated path relative to the source.
	open(name string) (io.ReadCloser, int64, error)
	// readSmall reads a small file (at most maxLocalSmallBlob bytes).
	readSmall(name string) ([]byte, error)
	close()
}

func readSmallFile(fsys localFS, name string) ([]byte, error) {
	rc, size, err := fsys.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > maxLocalSmallBlob {
		return nil, fmt.Errorf("%s is %d bytes, too large", name, size)
	}
	b, err := io.ReadAll(io.LimitReader(rc, maxLocalSmallBlob+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// localCleanName checks a relative slash-separated path inside a source.
func localCleanName(n string) (string, error) {
	c := path.Clean(strings.TrimPrefix(n, "./"))
	if c == "." || c == ".." || strings.HasPrefix(c, "../") || strings.HasPrefix(c, "/") {
		return "", fmt.Errorf("path %q leaves the source", n)
	}
	return c, nil
}

// localDir reads an OCI layout directory; paths cannot leave it (os.Root).
type localDir struct {
	dir  string
	root *os.Root
}

func openLocalDir(dir string) (*localDir, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory (an OCI layout is a directory; use oci-archive: for a tar)", dir)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &localDir{dir: dir, root: r}, nil
}

func (d *localDir) open(n string) (io.ReadCloser, int64, error) {
	c, err := localCleanName(n)
	if err != nil {
		return nil, 0, err
	}
	f, err := d.root.Open(filepath.FromSlash(c))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, 0, fmt.Errorf("%s has no %s: %w", d.dir, c, os.ErrNotExist)
		}
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s in %s is not a regular file", c, d.dir)
	}
	return f, fi.Size(), nil
}

func (d *localDir) readSmall(n string) ([]byte, error) { return readSmallFile(d, n) }
func (d *localDir) close()                             { d.root.Close() }

// localTar reads files of an uncompressed tar archive in place: one scan of
// the headers (seeking over the data) records where each file's data is.
type localTar struct {
	file    string
	f       *os.File
	entries map[string]localTarEntry
}

type localTarEntry struct {
	off, size int64
	link      string // symlink or hard link target, archive-relative
}

func openLocalTar(file string) (*localTar, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	t := &localTar{file: file, f: f, entries: map[string]localTarEntry{}}
	if err := t.scan(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return t, nil
}

func (t *localTar) scan() error {
	fi, err := t.f.Stat()
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return errors.New("is a directory, not a tar archive (use oci-layout: for a layout directory)")
	}
	var magic [2]byte
	if n, _ := t.f.ReadAt(magic[:], 0); n == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		return errors.New("is gzip-compressed; decompress it first (gunzip), archives are read uncompressed")
	}
	tr := tar.NewReader(t.f)
	var end int64 // where the data of the last entry ends (block aligned)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("not a valid tar archive (truncated?): %w", err)
		}
		off, err := t.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		end = off + (h.Size+511)/512*512
		n, err := localCleanName(h.Name)
		if err != nil {
			continue // never addressable
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			t.entries[n] = localTarEntry{off: off, size: h.Size}
		case tar.TypeSymlink:
			target := h.Linkname
			if !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(n), target)
			}
			t.entries[n] = localTarEntry{link: target}
		case tar.TypeLink:
			t.entries[n] = localTarEntry{link: h.Linkname}
		}
	}
	if len(t.entries) == 0 {
		return errors.New("the archive is empty")
	}
	// A truncated last file passes the scan (tar seeks past it): check the
	// data of every file lies within the archive.
	for n, e := range t.entries {
		if e.link == "" && e.off+e.size > fi.Size() {
			return fmt.Errorf("not a valid tar archive: %s is cut off (truncated?)", n)
		}
	}
	// An archive cut between two entries ends without the zero block that
	// every tar writer puts after the last entry.
	var zero [512]byte
	if n, _ := t.f.ReadAt(zero[:], end); n < len(zero) || !bytes.Equal(zero[:], make([]byte, 512)) {
		return errors.New("not a valid tar archive: no end-of-archive marker after the last file (truncated?)")
	}
	return nil
}

func (t *localTar) lookup(n string) (localTarEntry, string, error) {
	c, err := localCleanName(n)
	if err != nil {
		return localTarEntry{}, "", err
	}
	for range 16 {
		e, ok := t.entries[c]
		if !ok {
			return localTarEntry{}, "", fmt.Errorf("%s has no %s: %w", t.file, c, os.ErrNotExist)
		}
		if e.link == "" {
			return e, c, nil
		}
		if c, err = localCleanName(e.link); err != nil {
			return localTarEntry{}, "", err
		}
	}
	return localTarEntry{}, "", fmt.Errorf("%s: too many links at %s", t.file, n)
}

func (t *localTar) open(n string) (io.ReadCloser, int64, error) {
	e, _, err := t.lookup(n)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(io.NewSectionReader(t.f, e.off, e.size)), e.size, nil
}

func (t *localTar) readSmall(n string) ([]byte, error) { return readSmallFile(t, n) }
func (t *localTar) close()                             { t.f.Close() }

// ImageName is the name an artifact built from ref records inside it (the
// org.opencontainers.image.ref.name of a Podman archive): for a registry
// reference the normalized reference (docker.io/library/alpine:3.20); for
// a local source its image name, normalized when it is a registry-style
// reference with a tag or digest ("app:1" → docker.io/library/app:1), else
// as written ("v1"); for a local source without a name "localhost/" +
// fileName, Podman's convention for images without a registry.
func ImageName(ref, fileName string) string {
	if !spec.IsLocalRef(ref) {
		return normalizedName(ref)
	}
	lr, err := spec.ParseLocalRef(ref)
	if err != nil || lr.Image == "" {
		return "localhost/" + strings.ToLower(path.Base(fileName))
	}
	if info, err := spec.ParseRef(lr.Image); err == nil && (info.Tag != "" || info.Digest != "") {
		return normalizedName(lr.Image)
	}
	return lr.Image
}
