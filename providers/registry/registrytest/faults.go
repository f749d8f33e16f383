package registrytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// FaultKind selects what a Fault does to a request.
type FaultKind int

const (
	// FaultStatus answers with Fault.Status (default 503) and an error body.
	FaultStatus FaultKind = iota
	// FaultRetryAfter answers 429 Too Many Requests with a Retry-After header.
	FaultRetryAfter
	// FaultReset sends the upstream headers and half the body, then resets
	// the TCP connection (RST).
	FaultReset
	// FaultTruncate sends the upstream headers (full Content-Length) and
	// half the body, then closes the connection.
	FaultTruncate
	// FaultCorrupt sends the full body with some bytes flipped.
	FaultCorrupt
	// FaultUnauthorized answers 401 with a basic-auth challenge.
	FaultUnauthorized
	// FaultCorruptEnd sends the full body with its last bytes flipped: a
	// reader of the blob as it arrives has read nearly all of it when the
	// digest fails.
	FaultCorruptEnd
)

func (k FaultKind) String() string {
	return [...]string{"status", "retry-after", "reset", "truncate", "corrupt", "unauthorized", "corrupt-end"}[k]
}

// Fault is one injected failure.
type Fault struct {
	Kind FaultKind
	// Status for FaultStatus (default 503).
	Status int
	// RetryAfter for FaultRetryAfter (default 1s; whole seconds).
	RetryAfter time.Duration
	// Times is how many matching requests are affected (0: all of them).
	Times int
	// Match selects affected requests (default: MatchBlobs for reset,
	// truncate, corrupt, status and retry-after; MatchAny for unauthorized).
	Match func(*http.Request) bool

	hits int
}

// MatchBlobs matches blob downloads (GET /v2/…/blobs/sha256:…).
func MatchBlobs(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:")
}

// MatchManifests matches manifest requests (GET or HEAD).
func MatchManifests(r *http.Request) bool {
	return strings.Contains(r.URL.Path, "/manifests/")
}

// MatchAny matches every request.
func MatchAny(*http.Request) bool { return true }

// Logged is a request the proxy saw.
type Logged struct {
	Method, Path, Range string
	// Fault is the fault applied ("" when passed through).
	Fault string
}

// Proxy is a fault-injecting HTTP proxy in front of a registry.
type Proxy struct {
	// Addr is host:port of the proxy, usable as a registry host.
	Addr string
	// URL is "http://" + Addr.
	URL string

	mu     sync.Mutex
	faults []*Fault
	log    []Logged
	up     *url.URL
	rp     *httputil.ReverseProxy
}

// StartFaultProxy starts a proxy on 127.0.0.1 in front of the registry at
// upstream (a URL like Server.URL) that applies faults in order: a request
// gets the first fault that matches it and has hits left.
func StartFaultProxy(t testing.TB, upstream string, faults ...Fault) *Proxy {
	t.Helper()
	up, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{up: up}
	p.SetFaults(faults...)
	p.rp = httputil.NewSingleHostReverseProxy(up)
	p.rp.FlushInterval = -1
	p.rp.ErrorLog = nil
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	p.Addr = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// SetFaults replaces the fault list (and resets hit counts).
func (p *Proxy) SetFaults(faults ...Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
	for _, f := range faults {
		f := f
		f.hits = 0
		if f.Match == nil {
			f.Match = MatchBlobs
			if f.Kind == FaultUnauthorized {
				f.Match = MatchAny
			}
		}
		p.faults = append(p.faults, &f)
	}
}

// Log returns the requests seen so far.
func (p *Proxy) Log() []Logged {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Logged(nil), p.log...)
}

// Count returns how many requests got a fault of kind k.
func (p *Proxy) Count(k FaultKind) int {
	n := 0
	for _, l := range p.Log() {
		if l.Fault == k.String() {
			n++
		}
	}
	return n
}

func (p *Proxy) pick(r *http.Request) *Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	var chosen *Fault
	for _, f := range p.faults {
		if (f.Times == 0 || f.hits < f.Times) && f.Match(r) {
			f.hits++
			chosen = f
			break
		}
	}
	l := Logged{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range")}
	if chosen != nil {
		l.Fault = chosen.Kind.String()
	}
	p.log = append(p.log, l)
	return chosen
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := p.pick(r)
	if f == nil {
		p.rp.ServeHTTP(w, r)
		return
	}
	switch f.Kind {
	case FaultStatus:
		code := f.Status
		if code == 0 {
			code = http.StatusServiceUnavailable
		}
		writeError(w, code, "UNAVAILABLE", "injected fault")
	case FaultRetryAfter:
		d := f.RetryAfter
		if d <= 0 {
			d = time.Second
		}
		w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
		writeError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", "injected rate limit")
	case FaultUnauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="cachectl-fault"`)
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
	case FaultReset, FaultTruncate, FaultCorrupt, FaultCorruptEnd:
		p.body(w, r, f.Kind)
	}
}

func writeError(w http.ResponseWriter, code int, ecode, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": ecode, "message": msg}}})
}

// body fetches the upstream response and damages its body.
func (p *Proxy) body(w http.ResponseWriter, r *http.Request, kind FaultKind) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host, out.Host = p.up.Scheme, p.up.Host, p.up.Host
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		writeError(w, http.StatusBadGateway, "PROXY", err.Error())
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		return
	}
	total := resp.ContentLength
	if total < 0 {
		b, _ := io.ReadAll(resp.Body)
		total = int64(len(b))
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
	}
	w.Header().Set("Content-Length", strconv.FormatInt(total, 10))
	w.WriteHeader(resp.StatusCode)
	half := total / 2
	if kind == FaultCorruptEnd {
		half = max(0, total-64)
	}
	switch kind {
	case FaultCorrupt, FaultCorruptEnd:
		_, _ = io.CopyN(w, resp.Body, half)
		chunk := make([]byte, min(64, total-half))
		n, _ := io.ReadFull(resp.Body, chunk)
		for i := range chunk[:n] {
			chunk[i] ^= 0xff
		}
		_, _ = w.Write(chunk[:n])
		_, _ = io.Copy(w, resp.Body)
		return
	default:
		_, _ = io.CopyN(w, resp.Body, half)
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
		}
		conn, buf, err := hj.Hijack()
		if err != nil {
			panic(fmt.Sprintf("hijack: %v", err))
		}
		_ = buf.Flush()
		if tc, ok := conn.(*net.TCPConn); ok && kind == FaultReset {
			_ = tc.SetLinger(0) // close with RST
		}
		conn.Close()
	}
}
