package registry_test

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/registry"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// TestRetryTimeBounds: a registry that stops sending in the middle of a
// blob, and one that answers 503 to everything, are given up on at the
// retry time (not a multiple of it), and the messages say what happened:
// how long without data and where, or which status for how long — without
// the irrelevant error of the HTTPS probe of an insecure registry.
func TestRetryTimeBounds(t *testing.T) {
	srv := registrytest.StartDistribution(t)
	img := registrytest.Image(t, 1, 256<<10, 62)
	registrytest.Push(t, img, srv.Ref("slow/app:1"))
	manifest := digestOf(t, img)
	const retry = 3 * time.Second
	c := client(t, registry.Options{RequestTimeout: time.Second, TotalRetryTime: retry})

	t.Run("stalled blob", func(t *testing.T) {
		px := registrytest.StartFaultProxy(t, srv.URL,
			registrytest.Fault{Kind: registrytest.FaultStall, Times: 1},
			registrytest.Fault{Kind: registrytest.FaultHang})
		start := time.Now()
		_, _, err := c.Pull(registrytest.Context(t), px.Addr+"/slow/app:1", manifest, newStore(t))
		took := time.Since(start)
		if err == nil {
			t.Fatal("pull of a stalled blob succeeded")
		}
		for _, want := range []string{"no data for 3", "at byte ", "gave up (the retry time is 3s)"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
		// The bound is the retry time after the last byte, never several
		// request timeouts on top of it (generous slack for a loaded host).
		if took < retry || took > retry+3*time.Second {
			t.Errorf("gave up after %s, want about %s", took, retry)
		}
	})

	t.Run("503 to everything", func(t *testing.T) {
		px := registrytest.StartFaultProxy(t, srv.URL, registrytest.Fault{Kind: registrytest.FaultStatus, Match: registrytest.MatchAny})
		start := time.Now()
		_, err := c.Resolve(registrytest.Context(t), px.Addr+"/slow/app:1", v1.Platform{OS: "linux", Architecture: "amd64"})
		took := time.Since(start)
		if err == nil {
			t.Fatal("resolve succeeded")
		}
		if !strings.Contains(err.Error(), "answered HTTP 503 to every attempt for 3s (the retry time is 3s)") {
			t.Errorf("error does not say what happened: %v", err)
		}
		if strings.Contains(err.Error(), "HTTPS client") || strings.Contains(err.Error(), "https://") {
			t.Errorf("error leads with the HTTPS probe: %v", err)
		}
		if took > retry+3*time.Second {
			t.Errorf("gave up after %s, want about %s", took, retry)
		}
	})
}
