package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// errTimeout reports a request that got no response (or no body bytes) in
// time; it is retryable.
var errTimeout = errors.New("registry did not answer in time")

// retryTransport retries idempotent requests on 5xx, 429 (honouring
// Retry-After), connection resets and timeouts, with exponential back-off
// and full jitter, within a total time budget per request. It also applies
// the request timeout to the response headers and to silences while the
// body is read.
type retryTransport struct {
	inner   http.RoundTripper
	timeout time.Duration // header wait and body idle timeout
	budget  time.Duration // total time for all attempts
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	idempotent := req.Method == http.MethodGet || req.Method == http.MethodHead
	if !idempotent || (req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) {
		return t.once(req, t.timeout)
	}
	parent := req.Context()
	start := time.Now()
	deadline := start.Add(t.budget)
	// The last attempt gets a fair share of the retry time: an attempt
	// squeezed into its last milliseconds only times out, on a busy host
	// or a distant registry, and hides what the registry said before.
	final := min(t.timeout, max(t.budget/5, 250*time.Millisecond))
	var answered *http.Response // the last retryable status, its body kept
	for attempt := 0; ; attempt++ {
		resp, err := t.once(req, min(t.timeout, time.Until(deadline)))
		wait := backoff(attempt)
		switch {
		case err != nil:
			if parent.Err() != nil || !retryable(err) {
				return nil, err
			}
		case retryableStatus(resp.StatusCode):
			if ra, ok := retryAfter(resp, time.Now()); ok {
				wait = ra
			}
		default:
			return resp, nil
		}
		// The last wait is cut to what the retry time leaves, so that one
		// more attempt runs at its end instead of giving up early.
		left := time.Until(deadline)
		if wait > left-final && left >= final {
			wait = left - final
		}
		if wait > left-final {
			switch {
			case err == nil:
				return resp, nil // the caller reports the status
			case answered != nil && errors.Is(err, errTimeout):
				// The registry's last answer says more than a last
				// attempt that got none in time.
				return answered, nil
			}
			return nil, fmt.Errorf("%w (gave up after %d attempts in %s; the retry time is %s)", err, attempt+1, time.Since(start).Round(100*time.Millisecond), t.budget)
		}
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(body))
			answered = resp
		}
		if err := sleep(parent, wait); err != nil {
			return nil, err
		}
	}
}

// once performs one attempt with the header timeout and wraps the body with
// the idle timeout (timeout, at most the request timeout).
func (t *retryTransport) once(req *http.Request, timeout time.Duration) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	var timedOut atomic.Bool
	timeout = max(timeout, 10*time.Millisecond)
	timer := time.AfterFunc(timeout, func() { timedOut.Store(true); cancel() })
	resp, err := t.inner.RoundTrip(req.Clone(ctx))
	if !timer.Stop() || timedOut.Load() {
		if resp != nil {
			resp.Body.Close()
		}
		cancel()
		if req.Context().Err() != nil {
			return nil, req.Context().Err()
		}
		return nil, fmt.Errorf("%s %s: no response within %s: %w", req.Method, req.URL.Redacted(), timeout.Round(time.Millisecond), errTimeout)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &idleBody{rc: resp.Body, cancel: cancel, timeout: t.timeout, parent: req.Context(),
		timer: time.AfterFunc(t.timeout, func() { timedOut.Store(true); cancel() }), timedOut: &timedOut}
	return resp, nil
}

// idleBody cancels the request when no byte arrives for timeout.
type idleBody struct {
	rc       io.ReadCloser
	cancel   context.CancelFunc
	timeout  time.Duration
	timer    *time.Timer
	timedOut *atomic.Bool
	parent   context.Context
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == nil || n > 0 {
		b.timer.Reset(b.timeout)
	}
	if err != nil && err != io.EOF && b.timedOut.Load() && b.parent.Err() == nil {
		err = fmt.Errorf("no data for %s: %w", b.timeout, errTimeout)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel()
	return err
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusRequestTimeout:
		return true
	}
	return false
}

// retryable reports whether a transport or body-read error is worth
// retrying: resets, unexpected EOFs, timeouts. Refused connections, DNS
// failures and TLS/certificate errors are not (a mirror that is down must
// fail fast so that the upstream is tried).
func retryable(err error) bool {
	if err == nil {
		return false
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recErr tls.RecordHeaderError
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, errTimeout):
		return false
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &recErr):
		return false
	case errors.As(err, &dnsErr):
		return dnsErr.IsTemporary || dnsErr.IsTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return false
	case errors.Is(err, errTimeout), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return false
}

// backoff returns the wait before retry attempt+1: full jitter over an
// exponential ceiling of 250ms·2^attempt, capped at 10s.
func backoff(attempt int) time.Duration {
	ceil := 250 * time.Millisecond << min(attempt, 6)
	if ceil > 10*time.Second {
		ceil = 10 * time.Second
	}
	return ceil/2 + rand.N(ceil/2+1)
}

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(resp *http.Response, now time.Time) (time.Duration, bool) {
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
