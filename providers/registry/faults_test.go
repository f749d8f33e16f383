package registry_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cachectl/cachectl/providers/registry"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/providers/store"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// TestFaults pulls through a fault-injecting proxy in front of the real
// registry and checks the outcome and that nothing half-written is left in
// the store.
func TestFaults(t *testing.T) {
	srv := registrytest.StartDistribution(t)
	img := registrytest.Image(t, 2, 512<<10, 60)
	registrytest.Push(t, img, srv.Ref("faulty/app:1"))
	manifest := digestOf(t, img)

	type check func(t *testing.T, px *registrytest.Proxy, st *store.Store, err error, took time.Duration)
	ok := func(t *testing.T, _ *registrytest.Proxy, st *store.Store, err error, _ time.Duration) {
		t.Helper()
		if err != nil {
			t.Fatalf("pull failed: %v", err)
		}
		im, err := st.Image(manifest)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(im); err != nil {
			t.Fatal(err)
		}
	}
	resumed := func(t *testing.T, px *registrytest.Proxy, st *store.Store, err error, took time.Duration) {
		t.Helper()
		ok(t, px, st, err, took)
		for _, l := range px.Log() {
			if l.Range != "" && l.Fault == "" {
				return
			}
		}
		t.Errorf("no resumed (Range) request after the fault: %+v", px.Log())
	}
	nothingStored := func(want string) check {
		return func(t *testing.T, _ *registrytest.Proxy, st *store.Store, err error, _ time.Duration) {
			t.Helper()
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want one mentioning %q", err, want)
			}
			layers, _ := img.Layers()
			for _, l := range layers {
				if d, _ := l.Digest(); st.Has(d) {
					t.Errorf("layer %s stored despite the failure", d)
				}
			}
		}
	}
	cases := []struct {
		name   string
		faults []registrytest.Fault
		retry  time.Duration
		check  check
	}{
		{"503 twice then pass", []registrytest.Fault{{Kind: registrytest.FaultStatus, Status: 503, Times: 2}}, 0, ok},
		{"500 on manifests then pass", []registrytest.Fault{{Kind: registrytest.FaultStatus, Status: 500, Times: 2, Match: registrytest.MatchManifests}}, 0, ok},
		{"429 with Retry-After", []registrytest.Fault{{Kind: registrytest.FaultRetryAfter, RetryAfter: time.Second, Times: 1}}, 0,
			func(t *testing.T, px *registrytest.Proxy, st *store.Store, err error, took time.Duration) {
				ok(t, px, st, err, took)
				if took < time.Second {
					t.Errorf("pull took %s; Retry-After: 1 not honoured", took)
				}
			}},
		{"reset mid-blob", []registrytest.Fault{{Kind: registrytest.FaultReset, Times: 2}}, 0, resumed},
		{"truncated blob", []registrytest.Fault{{Kind: registrytest.FaultTruncate, Times: 1}}, 0, resumed},
		{"corrupted once", []registrytest.Fault{{Kind: registrytest.FaultCorrupt, Times: 1}}, 0, ok},
		{"corrupted always", []registrytest.Fault{{Kind: registrytest.FaultCorrupt}}, 0, nothingStored("digest mismatch")},
		{"truncated always", []registrytest.Fault{{Kind: registrytest.FaultTruncate}}, 2 * time.Second, nothingStored("gave up")},
		{"503 always", []registrytest.Fault{{Kind: registrytest.FaultStatus, Status: 503}}, 2 * time.Second,
			func(t *testing.T, px *registrytest.Proxy, st *store.Store, err error, took time.Duration) {
				nothingStored("503")(t, px, st, err, took)
				if took > 10*time.Second {
					t.Errorf("gave up after %s; the retry budget is 2s", took)
				}
				if n := px.Count(registrytest.FaultStatus); n < 2 {
					t.Errorf("only %d attempts", n)
				}
			}},
		{"401", []registrytest.Fault{{Kind: registrytest.FaultUnauthorized}}, 0,
			func(t *testing.T, px *registrytest.Proxy, st *store.Store, err error, took time.Duration) {
				if !registry.IsAuth(err) {
					t.Fatalf("err = %v, want an auth error", err)
				}
				for _, want := range []string{px.Addr, "docker login"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q lacks %q", err, want)
					}
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // the client uses no ambient credentials
			px := registrytest.StartFaultProxy(t, srv.URL, tc.faults...)
			c := client(t, registry.Options{TotalRetryTime: tc.retry})
			st := newStore(t)
			ctx := registrytest.Context(t)
			start := time.Now()
			_, _, err := c.Pull(ctx, px.Addr+"/faulty/app:1", manifest, st)
			if err != nil {
				t.Logf("error: %v", err)
			}
			tc.check(t, px, st, err, time.Since(start))
			assertClean(t, st)
		})
	}
}

// TestResolveRetries checks that resolution retries a flaky registry too.
func TestResolveRetries(t *testing.T) {
	srv := registrytest.StartInProcess(t)
	img := registrytest.Image(t, 1, 1024, 61)
	registrytest.Push(t, img, srv.Ref("r:1"))
	px := registrytest.StartFaultProxy(t, srv.URL,
		registrytest.Fault{Kind: registrytest.FaultStatus, Status: 502, Times: 1, Match: registrytest.MatchManifests},
		registrytest.Fault{Kind: registrytest.FaultRetryAfter, RetryAfter: time.Second, Times: 1, Match: registrytest.MatchManifests},
	)
	c := client(t, registry.Options{})
	res, err := c.Resolve(registrytest.Context(t), px.Addr+"/r:1", v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest != digestOf(t, img) {
		t.Errorf("Resolve = %+v", res)
	}
	if px.Count(registrytest.FaultStatus) != 1 || px.Count(registrytest.FaultRetryAfter) != 1 {
		t.Errorf("faults hit: %+v", px.Log())
	}
}
