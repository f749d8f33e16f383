package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"3":                             3 * time.Second,
		"Wed, 01 Jan 2025 00:00:10 GMT": 10 * time.Second,
		"Tue, 31 Dec 2024 00:00:10 GMT": 0,
	} {
		resp := &http.Response{Header: http.Header{"Retry-After": {v}}}
		if got, ok := retryAfter(resp, now); !ok || got != want {
			t.Errorf("Retry-After %q = %s, %v; want %s", v, got, ok, want)
		}
	}
	if _, ok := retryAfter(&http.Response{Header: http.Header{"Retry-After": {"soon"}}}, now); ok {
		t.Error("garbage Retry-After accepted")
	}
}

func TestBackoffBounds(t *testing.T) {
	for a := 0; a < 20; a++ {
		d := backoff(a)
		ceil := min(250*time.Millisecond<<min(a, 6), 10*time.Second)
		if d < ceil/2 || d > ceil {
			t.Errorf("backoff(%d) = %s, outside [%s, %s]", a, d, ceil/2, ceil)
		}
	}
}

func TestRetryable(t *testing.T) {
	for err, want := range map[error]bool{
		io.ErrUnexpectedEOF:                                         true,
		fmt.Errorf("read: %w", syscall.ECONNRESET):                  true,
		fmt.Errorf("x: %w", errTimeout):                             true,
		fmt.Errorf("dial: %w", syscall.ECONNREFUSED):                false,
		errors.New("x509: certificate signed by unknown authority"): false,
	} {
		if got := retryable(err); got != want {
			t.Errorf("retryable(%v) = %v, want %v", err, got, want)
		}
	}
}

// TestLastAnswerKeptWhenLastAttemptTimesOut: a registry answers 503 at
// first, then stops answering in time. The attempts that time out at the
// end of the retry time must not hide its answer: the caller gets the 503
// (and reports it), not "no response within 25ms" (seen on a loaded CI
// machine, where the last attempt had only the retry time's last
// milliseconds).
func TestLastAnswerKeptWhenLastAttemptTimesOut(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 2 {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		http.Error(w, `{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	rt := &retryTransport{inner: http.DefaultTransport, timeout: 300 * time.Millisecond, budget: 1500 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("got %v after %d requests; want the registry's 503", err, n.Load())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "UNAVAILABLE") {
		t.Fatalf("got %d %q; want the 503 and its body", resp.StatusCode, body)
	}
	if n.Load() < 3 {
		t.Fatalf("only %d requests: the test did not reach the silent phase", n.Load())
	}
}
