package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/singleflight"
)

// Client resolves and pulls images. It is safe for concurrent use; share one
// per run so that concurrency bounds, connections and in-flight downloads
// are shared.
type Client struct {
	opts   Options
	kc     authn.Keychain
	global chan struct{}
	sf     singleflight.Group

	mu    sync.Mutex
	hosts map[string]*host // by canonical host
}

// host is the per-registry state: settings, base transport, semaphore and
// authenticated transports per repository.
type host struct {
	name     string // as in references
	settings HostSettings
	base     http.RoundTripper
	sem      chan struct{}
	// timeout and budget are the host's request timeout and retry time.
	timeout, budget time.Duration

	mu    sync.Mutex
	repos map[string]*repoTransport
}

type repoTransport struct {
	rt       http.RoundTripper
	hadCreds bool
}

// New returns a Client. It fails when a host's CA file cannot be read.
func New(opts Options) (*Client, error) {
	opts = opts.withDefaults()
	files := map[string]string{}
	for h, s := range opts.Hosts {
		if s.AuthFile != "" {
			files[canonicalHost(h)] = s.AuthFile
		}
	}
	c := &Client{
		opts:   opts,
		kc:     authn.NewMultiKeychain(&fileKeychain{files: files}, opts.Keychain),
		global: make(chan struct{}, opts.MaxConcurrency),
		hosts:  map[string]*host{},
	}
	// Fail early on unreadable CA files.
	for h := range opts.Hosts {
		if _, err := c.host(h); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// settings returns the settings for a registry host.
func (c *Client) settings(h string) HostSettings {
	if s, ok := c.opts.Hosts[h]; ok {
		return s
	}
	for k, s := range c.opts.Hosts {
		if sameHost(k, h) {
			return s
		}
	}
	return HostSettings{}
}

func (c *Client) host(h string) (*host, error) {
	key := canonicalHost(h)
	c.mu.Lock()
	defer c.mu.Unlock()
	if hs, ok := c.hosts[key]; ok {
		return hs, nil
	}
	s := c.settings(h)
	base := c.opts.Transport
	if base == nil {
		tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.CAFile != "" {
			pem, err := os.ReadFile(s.CAFile)
			if err != nil {
				return nil, fmt.Errorf("registry %s: ca_file: %w", h, err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("registry %s: ca_file %s holds no PEM certificate", h, s.CAFile)
			}
			tlsConf.RootCAs = pool
		}
		if s.Insecure {
			tlsConf.InsecureSkipVerify = true
		}
		base = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   15 * time.Second,
			ExpectContinueTimeout: time.Second,
			TLSClientConfig:       tlsConf,
			// Layers are already compressed; transparent gzip would
			// only hide Content-Length.
			DisableCompression: true,
		}
	}
	n := s.MaxConcurrency
	if n <= 0 {
		n = DefaultHostMaxConcurrency
	}
	hostTimeout, hostBudget := c.opts.RequestTimeout, c.opts.TotalRetryTime
	if s.RequestTimeout > 0 {
		hostTimeout = s.RequestTimeout
	}
	if s.TotalRetryTime > 0 {
		hostBudget = s.TotalRetryTime
	}
	hs := &host{
		name:     h,
		settings: s,
		base:     transport.NewUserAgent(&retryTransport{inner: base, timeout: hostTimeout, budget: hostBudget}, c.opts.UserAgent),
		timeout:  hostTimeout,
		budget:   hostBudget,
		sem:      make(chan struct{}, n),
		repos:    map[string]*repoTransport{},
	}
	c.hosts[key] = hs
	return hs, nil
}

// acquire takes a slot of the host's and the global concurrency bound.
func (c *Client) acquire(ctx context.Context, h *host) (release func(), err error) {
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case c.global <- struct{}{}:
	case <-ctx.Done():
		<-h.sem
		return nil, ctx.Err()
	}
	return func() { <-c.global; <-h.sem }, nil
}

// target is one place a repository can be read from: the mirror or the
// upstream registry.
type target struct {
	repo   name.Repository
	host   *host
	mirror bool
}

// registry returns the name of a registry host with the host's
// insecure setting applied.
func (c *Client) registry(h string) (name.Registry, error) {
	var opts []name.Option
	if c.settings(h).Insecure {
		opts = append(opts, name.Insecure)
	}
	return name.NewRegistry(h, opts...)
}

// parse parses a reference with the insecure setting of its registry.
func (c *Client) parse(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	if c.settings(r.Context().RegistryStr()).Insecure || c.settings(r.Context().Registry.Name()).Insecure {
		r, err = name.ParseReference(ref, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("invalid image reference %q: %w", ref, err)
		}
	}
	return r, nil
}

// targets returns where to read repo from: its mirror first (if any), then
// the registry itself.
func (c *Client) targets(repo name.Repository) ([]target, error) {
	var out []target
	if m := c.mirrorOf(repo); m != "" {
		reg, err := c.registry(m)
		if err != nil {
			return nil, fmt.Errorf("mirror %q of %s: %w", m, repo.RegistryStr(), err)
		}
		mh, err := c.host(m)
		if err != nil {
			return nil, err
		}
		out = append(out, target{repo: reg.Repo(repo.RepositoryStr()), host: mh, mirror: true})
	}
	h, err := c.host(repo.RegistryStr())
	if err != nil {
		return nil, err
	}
	return append(out, target{repo: repo, host: h}), nil
}

func (c *Client) mirrorOf(repo name.Repository) string {
	if m := c.settings(repo.RegistryStr()).Mirror; m != "" {
		return m
	}
	return c.settings(repo.Registry.Name()).Mirror
}

// transport returns the authenticated transport for a target's repository
// (pull scope), creating it (ping and token exchange) on first use.
func (c *Client) transport(ctx context.Context, t target) (*repoTransport, error) {
	key := t.repo.Name()
	t.host.mu.Lock()
	rt, ok := t.host.repos[key]
	t.host.mu.Unlock()
	if ok {
		return rt, nil
	}
	auth, err := c.kc.Resolve(t.repo)
	if err != nil {
		return nil, fmt.Errorf("registry %s: credentials: %w", t.repo.RegistryStr(), err)
	}
	hadCreds := auth != authn.Anonymous
	start := time.Now()
	tr, err := transport.NewWithContext(ctx, t.repo.Registry, auth, t.host.base, []string{t.repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, pingError(err, t, hadCreds, time.Since(start))
	}
	rt = &repoTransport{rt: tr, hadCreds: hadCreds}
	t.host.mu.Lock()
	t.host.repos[key] = rt
	t.host.mu.Unlock()
	return rt, nil
}

// url returns the distribution API URL of path (after /v2/<repo>/) on t.
func (t target) url(path string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s", t.repo.Registry.Scheme(), t.repo.RegistryStr(), t.repo.RepositoryStr(), path)
}
