// Package registry talks to OCI/Docker registries for cachectl: it resolves
// references to manifest digests (per platform) and pulls images into the
// shared blob store, with per-registry mirrors, TLS settings, credentials,
// bounded concurrency, retries and progress events.
//
// It builds on go-containerregistry's name parsing and authentication
// transports and speaks the distribution API itself, so that it controls
// retries (including resuming a blob after a connection reset), mirror
// fallback and streaming into the store.
//
// ImageSource is the source.Source of registries: what plan and apply
// resolve and pull through.
package registry

import (
	"github.com/cachectl/cachectl/providers/store"

	"net/http"
	"time"

	"github.com/cachectl/cachectl/providers/progress"
	"github.com/google/go-containerregistry/pkg/authn"
)

// Defaults for Options and HostSettings fields left zero.
const (
	DefaultMaxConcurrency     = 8                // all registries together
	DefaultHostMaxConcurrency = 4                // per registry host
	DefaultRequestTimeout     = 60 * time.Second // response headers; also max silence while reading a body
	DefaultTotalRetryTime     = 2 * time.Minute  // per request / per blob
)

// HostSettings are the per-registry settings of the spec's registry block.
type HostSettings struct {
	// Mirror is a registry host ("mirror.internal:5000") tried first for
	// every request; on any failure the upstream registry is used. The
	// mirror's own entry in Options.Hosts (if any) gives its settings.
	Mirror string
	// CAFile is a PEM file of CA certificates trusted in addition to the
	// system roots.
	CAFile string
	// AuthFile is a Docker config.json-style file ({"auths": {HOST:
	// {"auth": base64(user:password)}}}, also "username"/"password" or
	// "identitytoken") consulted before the default keychain.
	AuthFile string
	// Insecure allows plain HTTP and skips TLS verification. For loopback
	// and labs only.
	Insecure bool
	// MaxConcurrency bounds concurrent requests to this host
	// (default DefaultHostMaxConcurrency).
	MaxConcurrency int
	// RequestTimeout and TotalRetryTime override the Options' values for
	// this host (0 = those).
	RequestTimeout time.Duration
	TotalRetryTime time.Duration
}

// Options configure a Client. The zero value is usable.
type Options struct {
	// Hosts holds per-registry settings keyed by registry host as written
	// in references ("docker.io", "nvcr.io", "127.0.0.1:5000").
	Hosts map[string]HostSettings
	// MaxConcurrency bounds concurrent requests over all registries
	// (default DefaultMaxConcurrency).
	MaxConcurrency int
	// Keychain supplies credentials (default authn.DefaultKeychain: the
	// Docker config at $DOCKER_CONFIG or ~/.docker/config.json, with its
	// credential helpers). A host's AuthFile is always consulted first.
	Keychain authn.Keychain
	// RequestTimeout bounds the wait for a response's headers and any
	// silence while reading its body (default DefaultRequestTimeout).
	RequestTimeout time.Duration
	// TotalRetryTime bounds the time one request takes with all its
	// retries, and the time a blob download goes without receiving a byte
	// (stalls and retries included) before cachectl gives up (default
	// DefaultTotalRetryTime). No attempt outlasts it: the last one is cut
	// at the bound.
	TotalRetryTime time.Duration
	// Progress receives download events (nil: none).
	Progress progress.Sink
	// Transport replaces the base HTTP transport (for tests). It is still
	// wrapped with retries and authentication. Default: an http.Transport
	// honouring HTTPS_PROXY/NO_PROXY with the host's TLS settings.
	Transport http.RoundTripper
	// Cache, when set, is a blob store consulted for manifests and configs
	// by digest before asking the registry, and given every manifest and
	// config that Resolve fetches. With it a refresh of references whose
	// tags did not move costs one HEAD each, and a later Pull does not
	// fetch the config again.
	Cache *store.Store
	// UserAgent is sent with every request (default "cachectl").
	UserAgent string
}

func (o Options) withDefaults() Options {
	if o.MaxConcurrency <= 0 {
		o.MaxConcurrency = DefaultMaxConcurrency
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.TotalRetryTime <= 0 {
		o.TotalRetryTime = DefaultTotalRetryTime
	}
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.UserAgent == "" {
		o.UserAgent = "cachectl"
	}
	return o
}
