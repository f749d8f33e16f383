// Package source defines where cachectl gets images from and what every
// image source does: resolve references for a platform to digests
// (Resolver), and make an image's blobs local in the blob store (Fetcher).
// A Source is both. The sources live next to the formats they read:
// providers/registry (OCI/Docker registries), providers/bundle (transfer
// bundles), providers/localsrc (OCI layouts, OCI and docker archives);
// Multi sends each reference to the one that serves it.
//
// What a source may do beyond that is a named optional interface, checked
// where it is used: StatsReporter (what fetches copied), UnpackedSizer
// (how large a layer unpacks, for the plan's write estimate), StreamFetcher
// (images usable while their layers download) and io.Closer (a source
// holding files open).
package source

import (
	"context"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/image"
)

// ResolveRequest asks for one reference on one platform.
type ResolveRequest struct {
	// Ref is the reference as written in the spec.
	Ref      string
	Platform v1.Platform
}

// Key is the key of the request's resolution.
func (r ResolveRequest) Key() ResolveKey {
	return ResolveKey{Ref: r.Ref, Platform: image.PlatformString(r.Platform)}
}

// ResolveKey identifies one resolution: a reference for a platform
// (image.PlatformString).
type ResolveKey struct {
	Ref      string
	Platform string
}

// Resolution is what a reference resolved to for one platform.
type Resolution struct {
	// Digest the reference points at (an index or a manifest).
	Digest string `json:"digest"`
	// Manifest is the platform-specific image manifest.
	Manifest string `json:"manifest"`
	// Size is the sum of the config and compressed layer sizes.
	Size int64 `json:"size"`
	// Download is how many of those bytes are not in the blob store yet.
	Download int64 `json:"download"`
	// Config and Layers are the image manifest's descriptors (for the
	// write estimate; not saved).
	Config v1.Descriptor   `json:"-"`
	Layers []v1.Descriptor `json:"-"`
}

// Resolver resolves references to digests, concurrently, each distinct
// request once. The result has an entry for each request that resolved
// (keyed by ResolveRequest.Key); the error joins every failure, each
// naming its reference.
type Resolver interface {
	ResolveAll(ctx context.Context, reqs []ResolveRequest) (map[ResolveKey]Resolution, error)
}

// Fetcher makes the blobs of the image manifest manifest ("sha256:…", as
// resolved from ref) local in the blob store, verifying each, and returns
// the image backed by the store.
type Fetcher interface {
	Fetch(ctx context.Context, ref string, manifest string) (v1.Image, error)
}

// StreamFetcher is implemented by sources that can hand out an image
// before all of its blobs are local: FetchStream returns once the manifest
// and the config are in the blob store; reading a layer waits for its
// bytes as they arrive (and fails if its download fails). wait returns
// when every blob is local and verified, with the error that stopped the
// fetch; the image is only complete (and safe to hand to another process)
// after wait returned nil.
type StreamFetcher interface {
	FetchStream(ctx context.Context, ref string, manifest string) (img v1.Image, wait func() error, err error)
}

// Source resolves and fetches images.
type Source interface {
	Resolver
	Fetcher
}

// UnpackedSizer is implemented by sources that can tell how many bytes a
// compressed layer of ref unpacks to without reading all of it: from the
// gzip trailer (image.LayerUnpackedSize) in the blob store, a bundle, a
// local source, or a registry (one Range request). false: unknown.
type UnpackedSizer interface {
	UnpackedSize(ctx context.Context, ref string, layer v1.Descriptor) (int64, bool)
}

// Stats counts what a source's fetches did.
type Stats struct {
	// BytesDownloaded is the number of bytes of blobs (manifests included)
	// the fetches copied into the store: downloaded from a registry,
	// copied from a bundle or a local source.
	BytesDownloaded int64
	// BlobsDownloaded counts those blobs.
	BlobsDownloaded int64
	// BlobsCached counts config and layer blobs that were in the store
	// already, or copied by a concurrent fetch in this process.
	BlobsCached int64
}

// Add adds o to s.
func (s *Stats) Add(o Stats) {
	s.BytesDownloaded += o.BytesDownloaded
	s.BlobsDownloaded += o.BlobsDownloaded
	s.BlobsCached += o.BlobsCached
}

// StatsReporter is implemented by sources that count what they fetched.
type StatsReporter interface {
	Stats() Stats
}

// Counter is the Stats of a source, safe for concurrent fetches. Its zero
// value counts nothing yet.
type Counter struct {
	mu sync.Mutex
	s  Stats
}

// Copied counts one blob of n bytes copied into the store.
func (c *Counter) Copied(n int64) { c.Add(Stats{BytesDownloaded: n, BlobsDownloaded: 1}) }

// Cached counts one blob found in the store.
func (c *Counter) Cached() { c.Add(Stats{BlobsCached: 1}) }

// Add adds s to the count.
func (c *Counter) Add(s Stats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Add(s)
}

// Stats returns the count so far.
func (c *Counter) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}
