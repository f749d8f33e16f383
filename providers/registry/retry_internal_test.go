package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
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
