package registrytest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// SlowProxy is a proxy in front of a registry that delays or stalls some
// requests, or caps the bandwidth of every response: it widens race
// windows (a slow blob keeps an apply between two steps for a known
// time), stands for a registry that stops sending in the middle of a
// blob, and for a registry behind a link of limited bandwidth
// (StartThrottleProxy, SetRate; the benchmarks' 100 MB/s and 30 MB/s).
type SlowProxy struct {
	// Addr is host:port of the proxy, usable as a registry host.
	Addr string
	// URL is "http://" + Addr.
	URL string

	delay   atomic.Int64 // nanoseconds before a matching request is passed on
	stall   atomic.Bool  // matching bodies stop after half their bytes
	match   func(*http.Request) bool
	rp      *httputil.ReverseProxy
	done    chan struct{}
	stalled atomic.Int64
	// lim caps the bytes per second of all response bodies together
	// (nil: unlimited); served counts the body bytes passed on.
	lim    atomic.Pointer[rate.Limiter]
	served atomic.Int64
}

// throttleBurst is the most a throttled body passes on at once: the
// limiter's bucket, small against a second at the rates the benchmarks use.
const throttleBurst = 256 << 10

// StartThrottleProxy starts a proxy on 127.0.0.1 in front of the registry
// at upstream that passes every response body on at bytesPerSecond in all
// (the bodies of concurrent requests share it, as on one link), without
// delaying or stalling anything.
func StartThrottleProxy(t testing.TB, upstream string, bytesPerSecond int64) *SlowProxy {
	t.Helper()
	p := StartSlowProxy(t, upstream, 0, func(*http.Request) bool { return false })
	p.SetRate(bytesPerSecond)
	return p
}

// SetRate caps the bandwidth of all response bodies together at
// bytesPerSecond; 0 removes the cap. Bodies already being sent follow the
// new rate from their next read.
func (p *SlowProxy) SetRate(bytesPerSecond int64) {
	if bytesPerSecond <= 0 {
		p.lim.Store(nil)
		return
	}
	p.lim.Store(rate.NewLimiter(rate.Limit(bytesPerSecond), throttleBurst))
}

// Served returns how many response body bytes the proxy has passed on.
func (p *SlowProxy) Served() int64 { return p.served.Load() }

// throttledBody passes a response body on at the proxy's rate.
type throttledBody struct {
	io.ReadCloser
	ctx context.Context
	p   *SlowProxy
}

func (b *throttledBody) Read(buf []byte) (int, error) {
	lim := b.p.lim.Load()
	if lim != nil && len(buf) > throttleBurst {
		buf = buf[:throttleBurst]
	}
	n, err := b.ReadCloser.Read(buf)
	b.p.served.Add(int64(n))
	if lim != nil && n > 0 {
		if werr := lim.WaitN(b.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

// StartSlowProxy starts a proxy on 127.0.0.1 in front of the registry at
// upstream (a URL like Server.URL). Requests that match (default:
// MatchBlobs) wait delay before they are passed on; with SetStall(true)
// their body stops after half of its bytes, the connection left open and
// silent until the client gives up or the test ends.
func StartSlowProxy(t testing.TB, upstream string, delay time.Duration, match func(*http.Request) bool) *SlowProxy {
	t.Helper()
	up, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	if match == nil {
		match = MatchBlobs
	}
	p := &SlowProxy{match: match, done: make(chan struct{})}
	p.delay.Store(int64(delay))
	p.rp = httputil.NewSingleHostReverseProxy(up)
	p.rp.FlushInterval = -1
	p.rp.ModifyResponse = p.stallResponse
	p.rp.ErrorLog = log.New(io.Discard, "", 0)
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		close(p.done)
		srv.CloseClientConnections()
		srv.Close()
	})
	p.URL = srv.URL
	p.Addr = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// SetDelay changes the delay of matching requests.
func (p *SlowProxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// SetStall turns stalling of matching bodies on or off.
func (p *SlowProxy) SetStall(on bool) { p.stall.Store(on) }

// Stalled returns how many responses were stalled so far.
func (p *SlowProxy) Stalled() int { return int(p.stalled.Load()) }

func (p *SlowProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.match(r) {
		p.rp.ServeHTTP(w, r)
		return
	}
	if d := time.Duration(p.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		case <-p.done:
			return
		}
	}
	p.rp.ServeHTTP(w, r)
}

// stallBody passes on a body up to the middle of the blob, then blocks
// until the request or the proxy ends: the client sees a registry that
// went silent there, and stays silent when asked for the rest.
type stallBody struct {
	io.ReadCloser
	left int64
	ctx  <-chan struct{}
	done <-chan struct{}
	p    *SlowProxy
}

func (b *stallBody) Read(buf []byte) (int, error) {
	if b.left <= 0 {
		b.p.stalled.Add(1)
		select {
		case <-b.ctx:
		case <-b.done:
		}
		return 0, errors.New("stalled")
	}
	if int64(len(buf)) > b.left {
		buf = buf[:b.left]
	}
	n, err := b.ReadCloser.Read(buf)
	b.left -= int64(n)
	return n, err
}

func (p *SlowProxy) stallResponse(resp *http.Response) error {
	resp.Body = &throttledBody{ReadCloser: resp.Body, ctx: resp.Request.Context(), p: p}
	if p.stall.Load() && p.match(resp.Request) && resp.ContentLength > 0 &&
		(resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent) {
		// Stop at the middle of the whole blob: a resumed request (a Range
		// from a later offset) gets only what is left before it, or nothing.
		start, total := int64(0), resp.ContentLength
		var end int64
		if resp.StatusCode == http.StatusPartialContent {
			fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &start, &end, &total)
		}
		left := max(total/2-start, 0)
		resp.Body = &stallBody{ReadCloser: resp.Body, left: left, ctx: resp.Request.Context().Done(), done: p.done, p: p}
	}
	return nil
}

// MatchBlobDigests matches downloads of the given blobs ("sha256:…"),
// e.g. an image's layers but not its config.
func MatchBlobDigests(digests ...string) func(*http.Request) bool {
	want := map[string]bool{}
	for _, d := range digests {
		want[d] = true
	}
	return func(r *http.Request) bool {
		i := strings.LastIndex(r.URL.Path, "/blobs/")
		return MatchBlobs(r) && i >= 0 && want[r.URL.Path[i+len("/blobs/"):]]
	}
}
