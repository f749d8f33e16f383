package registrytest

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// claimedRe finds the durations an error message gives as time spent: those
// after "in " or "after " ("gave up after 3 attempts in 2s").
var claimedRe = regexp.MustCompile(`\b(?:in|after) ((?:\d+(?:\.\d+)?(?:h|ms|µs|us|ns|m|s))+)\b`)

// CheckTimeClaims fails t unless msg says how long the client tried and
// every such duration it states is within max(0.5 s, 20 %) of took, the
// time the caller measured.
func CheckTimeClaims(t testing.TB, msg string, took time.Duration) {
	t.Helper()
	CheckTimeClaimsBetween(t, msg, took, took)
}

// CheckTimeClaimsBetween is CheckTimeClaims for a caller that measured
// more than the client's own tries (a whole command, its planning
// included): every stated duration must lie between lo and hi, with the
// same tolerance.
func CheckTimeClaimsBetween(t testing.TB, msg string, lo, hi time.Duration) {
	t.Helper()
	took := hi
	var claims []time.Duration
	for _, m := range claimedRe.FindAllStringSubmatch(msg, -1) {
		if d, err := time.ParseDuration(m[1]); err == nil {
			claims = append(claims, d)
		}
	}
	if len(claims) == 0 {
		t.Errorf("the error does not say how long the client tried (took %s): %s", took.Round(10*time.Millisecond), msg)
	}
	tol := max(500*time.Millisecond, took/5)
	for _, c := range claims {
		if c < lo-tol || c > hi+tol {
			t.Errorf("the error says %s but the client tried for %s: %s", c, took.Round(10*time.Millisecond), msg)
		}
	}
}

// CheckLeadsWith503 fails t unless msg names the registry's 503 answer
// before any TLS/HTTPS error: a registry speaking plain HTTP on loopback
// makes the HTTPS probe fail, which is not the story.
func CheckLeadsWith503(t testing.TB, msg string) {
	t.Helper()
	at := -1
	for _, w := range []string{"503", "Service Unavailable", "UNAVAILABLE"} {
		if j := strings.Index(msg, w); j >= 0 && (at < 0 || j < at) {
			at = j
		}
	}
	if at < 0 {
		t.Errorf("the error does not name the registry's answer (503 Service Unavailable): %s", msg)
		return
	}
	for _, w := range []string{"HTTPS", "https://", "tls:", "x509", "TLS"} {
		if k := strings.Index(msg, w); k >= 0 && k < at {
			t.Errorf("the error leads with a TLS/HTTPS error (%q at byte %d) before the registry's 503 (at byte %d): %s", w, k, at, msg)
			return
		}
	}
}
