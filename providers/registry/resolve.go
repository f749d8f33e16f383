package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/providers/store"
)

// maxManifestSize bounds manifests and configs read into memory.
const maxManifestSize = 32 << 20

var manifestAccept = strings.Join([]string{
	string(types.OCIImageIndex), string(types.OCIManifestSchema1),
	string(types.DockerManifestList), string(types.DockerManifestSchema2),
}, ", ")

// Resolved is what a reference resolves to for one platform.
type Resolved struct {
	// Ref is the reference as given.
	Ref string
	// Digest is what the reference (tag) points at: an index or a manifest.
	Digest v1.Hash
	// DigestMediaType is the media type of Digest.
	DigestMediaType types.MediaType
	// Manifest is the platform-specific image manifest's digest; equal to
	// Digest when the reference points at an image manifest.
	Manifest v1.Hash
	// MediaType is the media type of Manifest (OCI or Docker v2 schema 2).
	MediaType types.MediaType
	// Platform is the image's platform (from the index entry, or from the
	// config of a single-platform image).
	Platform v1.Platform
	// Size is the sum of the compressed sizes of the config and layers: the
	// bytes a pull into an empty store downloads (besides the manifest).
	Size int64
	// Config and Layers are the manifest's descriptors.
	Config v1.Descriptor
	Layers []v1.Descriptor
	// Source is the registry host that answered (the mirror or upstream).
	Source string
}

// DefaultPlatform is used when a zero platform is asked for: linux and the
// architecture cachectl runs on.
func DefaultPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// ResolveAll resolves many references concurrently (within the concurrency
// bounds), each distinct reference+platform once. Results and errors are
// indexed like reqs.
func (c *Client) ResolveAll(ctx context.Context, reqs []source.ResolveRequest) ([]Resolved, []error) {
	out := make([]Resolved, len(reqs))
	errs := make([]error, len(reqs))
	groups := map[string][]int{}
	var keys []string
	for i, r := range reqs {
		k := r.Ref + "\x00" + platformKey(r.Platform)
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], i)
	}
	var g errgroup.Group
	g.SetLimit(max(c.opts.MaxConcurrency, 1))
	var mu sync.Mutex
	for _, k := range keys {
		idx := groups[k]
		g.Go(func() error {
			res, err := c.Resolve(ctx, reqs[idx[0]].Ref, reqs[idx[0]].Platform)
			mu.Lock()
			defer mu.Unlock()
			for _, i := range idx {
				out[i], errs[i] = res, err
			}
			return nil
		})
	}
	_ = g.Wait()
	return out, errs
}

func platformKey(p v1.Platform) string {
	if p.OS == "" && p.Architecture == "" {
		p = DefaultPlatform()
	}
	return p.String()
}

// Head returns the descriptor (digest, media type, size) that ref points
// at, with one HEAD request (falling back to GET when the registry does not
// answer HEAD with a digest). It is the cheap check for a moved tag.
func (c *Client) Head(ctx context.Context, ref string) (v1.Descriptor, error) {
	r, err := c.parse(ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	var d v1.Descriptor
	err = c.eachTarget(ctx, r.Context(), func(t target) error {
		var err error
		d, err = c.headOrGet(ctx, t, r.Identifier())
		return err
	})
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("resolving %s: %w", ref, err)
	}
	return d, nil
}

// Resolve resolves ref to its digest and, for an index, to the manifest of
// platform (zero: DefaultPlatform). When the index has no such platform the
// error lists the platforms it has.
func (c *Client) Resolve(ctx context.Context, ref string, platform v1.Platform) (Resolved, error) {
	if platform.OS == "" && platform.Architecture == "" {
		platform = DefaultPlatform()
	}
	r, err := c.parse(ref)
	if err != nil {
		return Resolved{}, err
	}
	var res Resolved
	err = c.eachTarget(ctx, r.Context(), func(t target) error {
		var err error
		res, err = c.resolveOn(ctx, t, r, platform)
		return err
	})
	if err != nil {
		return Resolved{}, fmt.Errorf("resolving %s: %w", ref, err)
	}
	res.Ref = ref
	return res, nil
}

// eachTarget runs fn on the mirror (if any) and then upstream until one
// succeeds. The upstream error is returned (wrapped), with the mirror's
// noted.
func (c *Client) eachTarget(ctx context.Context, repo name.Repository, fn func(target) error) error {
	ts, err := c.targets(repo)
	if err != nil {
		return err
	}
	var mirrorErr error
	for _, t := range ts {
		err = fn(t)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if t.mirror {
			mirrorErr = err
		}
	}
	if mirrorErr != nil {
		return fmt.Errorf("%w (mirror failed too: %v)", err, mirrorErr)
	}
	return err
}

func (c *Client) resolveOn(ctx context.Context, t target, r name.Reference, platform v1.Platform) (Resolved, error) {
	var res Resolved
	top, err := c.headOrGet(ctx, t, r.Identifier())
	if err != nil {
		return res, err
	}
	res.Source = t.repo.RegistryStr()
	res.Digest, res.DigestMediaType = top.Digest, top.MediaType
	raw, mt, err := c.getManifest(ctx, t, top.Digest.String())
	if err != nil {
		return res, err
	}
	res.DigestMediaType = mt
	manifest := top.Digest
	fromIndex := false
	if mt.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return res, fmt.Errorf("parsing index %s: %w", top.Digest, err)
		}
		child, err := image.PickPlatform(idx, top.Digest, platform)
		if err != nil {
			return res, err
		}
		manifest = child.Digest
		if child.Platform != nil {
			res.Platform = *child.Platform
		}
		if raw, mt, err = c.getManifest(ctx, t, manifest.String()); err != nil {
			return res, err
		}
		fromIndex = true
	}
	if !mt.IsImage() {
		return res, fmt.Errorf("%s: unsupported manifest media type %q", manifest, mt)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return res, fmt.Errorf("parsing manifest %s: %w", manifest, err)
	}
	res.Manifest, res.MediaType = manifest, mt
	res.Config, res.Layers = m.Config, m.Layers
	res.Size = m.Config.Size
	for _, l := range m.Layers {
		res.Size += l.Size
	}
	if !fromIndex {
		// A single-platform image says its platform in its config.
		cfgRaw, err := c.getSmallBlob(ctx, t, m.Config)
		if err != nil {
			return res, fmt.Errorf("config of %s: %w", manifest, err)
		}
		p, err := image.ConfigPlatform(cfgRaw, manifest, platform)
		switch {
		case p != nil:
			res.Platform = *p
		case err == nil:
			res.Platform = platform
		}
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// headOrGet returns the descriptor ident (tag or digest) points at on t:
// HEAD, then GET when the registry answers HEAD without a digest or with a
// status that says it does not serve HEAD. A registry that could not be
// reached, or kept failing until the retry time was spent, is not asked
// again.
func (c *Client) headOrGet(ctx context.Context, t target, ident string) (v1.Descriptor, error) {
	d, err := c.headManifest(ctx, t, ident)
	var se *StatusError
	if err == nil || ctx.Err() != nil || !(errors.Is(err, errNoDigest) || errors.As(err, &se) && headUnsupported(se.StatusCode)) {
		return d, err
	}
	raw, mt, gerr := c.getManifest(ctx, t, ident)
	if gerr != nil {
		return v1.Descriptor{}, gerr
	}
	sum := sha256.Sum256(raw)
	return v1.Descriptor{MediaType: mt, Size: int64(len(raw)), Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}}, nil
}

var errNoDigest = errors.New("HEAD response without Docker-Content-Digest")

// headUnsupported reports whether a HEAD status suggests asking with GET
// (registries and proxies that do not implement HEAD on manifests).
func headUnsupported(code int) bool {
	switch code {
	case http.StatusMethodNotAllowed, http.StatusNotImplemented, http.StatusBadRequest, http.StatusNotAcceptable:
		return true
	}
	return false
}

func (c *Client) do(ctx context.Context, t target, req *http.Request) (*http.Response, *repoTransport, error) {
	rt, err := c.transport(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	cl := &http.Client{Transport: rt.rt}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, rt, fmt.Errorf("registry %s: %w", t.repo.RegistryStr(), err)
	}
	return resp, rt, nil
}

func (c *Client) headManifest(ctx context.Context, t target, ident string) (v1.Descriptor, error) {
	release, err := c.acquire(ctx, t.host)
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer release()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, t.url("manifests/"+ident), nil)
	if err != nil {
		return v1.Descriptor{}, err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, rt, err := c.do(ctx, t, req)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return v1.Descriptor{}, statusError(resp, t.repo.RegistryStr(), t.repo.RepositoryStr(), "manifest "+ident, rt.hadCreds)
	}
	resp.Body.Close()
	h, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return v1.Descriptor{}, errNoDigest
	}
	if strings.HasPrefix(ident, "sha256:") && h.String() != ident {
		return v1.Descriptor{}, fmt.Errorf("registry %s: manifest %s answered with digest %s", t.repo.RegistryStr(), ident, h)
	}
	size, _ := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	return v1.Descriptor{Digest: h, MediaType: types.MediaType(resp.Header.Get("Content-Type")), Size: size}, nil
}

// getManifest fetches a manifest; when ident is a digest the content is
// verified against it.
func (c *Client) getManifest(ctx context.Context, t target, ident string) ([]byte, types.MediaType, error) {
	h, byDigest := v1.NewHash(ident)
	if byDigest == nil && c.opts.Cache != nil && c.opts.Cache.Has(h) {
		if raw, err := c.opts.Cache.ReadAll(h); err == nil {
			if mt, err := image.ManifestMediaType(raw); err == nil {
				return raw, mt, nil
			}
		}
	}
	raw, mt, err := c.fetchManifest(ctx, t, ident)
	if err == nil && byDigest == nil && c.opts.Cache != nil {
		// Verified above against its digest; a failure to cache is not an error.
		_ = c.opts.Cache.PutBytes(ctx, h, raw)
	}
	return raw, mt, err
}

func (c *Client) fetchManifest(ctx context.Context, t target, ident string) ([]byte, types.MediaType, error) {
	release, err := c.acquire(ctx, t.host)
	if err != nil {
		return nil, "", err
	}
	defer release()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url("manifests/"+ident), nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, rt, err := c.do(ctx, t, req)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", statusError(resp, t.repo.RegistryStr(), t.repo.RepositoryStr(), "manifest "+ident, rt.hadCreds)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("registry %s: reading manifest %s: %w", t.repo.RegistryStr(), ident, err)
	}
	if len(raw) > maxManifestSize {
		return nil, "", fmt.Errorf("registry %s: manifest %s is larger than %d bytes", t.repo.RegistryStr(), ident, maxManifestSize)
	}
	if strings.HasPrefix(ident, "sha256:") {
		sum := sha256.Sum256(raw)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != ident {
			return nil, "", fmt.Errorf("registry %s: manifest %s: content hashes to %s: %w", t.repo.RegistryStr(), ident, got, store.ErrDigestMismatch)
		}
	}
	mt, err := image.ManifestMediaType(raw)
	if err != nil {
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			mt = types.MediaType(ct)
		} else {
			return nil, "", fmt.Errorf("registry %s: manifest %s: %w", t.repo.RegistryStr(), ident, err)
		}
	}
	return raw, mt, nil
}

// getSmallBlob fetches a small blob (a config) into memory, verified.
func (c *Client) getSmallBlob(ctx context.Context, t target, d v1.Descriptor) ([]byte, error) {
	if d.Size > maxManifestSize {
		return nil, fmt.Errorf("blob %s is too large (%d bytes)", d.Digest, d.Size)
	}
	if c.opts.Cache != nil && c.opts.Cache.Has(d.Digest) {
		if raw, err := c.opts.Cache.ReadAll(d.Digest); err == nil {
			return raw, nil
		}
	}
	raw, err := c.fetchSmallBlob(ctx, t, d)
	if err == nil && c.opts.Cache != nil {
		_ = c.opts.Cache.PutBytes(ctx, d.Digest, raw)
	}
	return raw, err
}

func (c *Client) fetchSmallBlob(ctx context.Context, t target, d v1.Descriptor) ([]byte, error) {
	release, err := c.acquire(ctx, t.host)
	if err != nil {
		return nil, err
	}
	defer release()
	br := &blobReader{ctx: ctx, c: c, t: t, digest: d.Digest, size: d.Size}
	defer br.Close()
	raw, err := io.ReadAll(io.LimitReader(br, maxManifestSize+1))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	if hex.EncodeToString(sum[:]) != d.Digest.Hex || (d.Size >= 0 && int64(len(raw)) != d.Size) {
		return nil, fmt.Errorf("registry %s: blob %s: %w", t.repo.RegistryStr(), d.Digest, store.ErrDigestMismatch)
	}
	return raw, nil
}
