package source

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// recorder is a source with every optional ability that records what
// reaches it.
type recorder struct {
	name  string
	calls []string
	fail  string // a reference that does not resolve
}

func (r *recorder) ResolveAll(ctx context.Context, reqs []ResolveRequest) (map[ResolveKey]Resolution, error) {
	out := map[ResolveKey]Resolution{}
	var errs []error
	for _, q := range reqs {
		r.calls = append(r.calls, "resolve "+q.Ref)
		if q.Ref == r.fail {
			errs = append(errs, fmt.Errorf("%s: not found in %s", q.Ref, r.name))
			continue
		}
		out[q.Key()] = Resolution{Digest: r.name}
	}
	return out, errors.Join(errs...)
}

func (r *recorder) Fetch(ctx context.Context, ref, manifest string) (v1.Image, error) {
	r.calls = append(r.calls, "fetch "+ref)
	return nil, errors.New(r.name + " fetched")
}

func (r *recorder) UnpackedSize(ctx context.Context, ref string, d v1.Descriptor) (int64, bool) {
	r.calls = append(r.calls, "size "+ref)
	return int64(len(r.name)), true
}

func (r *recorder) Stats() Stats {
	return Stats{BytesDownloaded: 10, BlobsDownloaded: 1, BlobsCached: int64(len(r.name))}
}

func (r *recorder) Close() error {
	r.calls = append(r.calls, "close")
	return errors.New(r.name + " closed")
}

// plain hides the optional abilities of a source.
type plain struct{ Source }

func isLocal(ref string) bool { return strings.HasPrefix(ref, "oci-layout:") }

func req(ref string) ResolveRequest {
	return ResolveRequest{Ref: ref, Platform: v1.Platform{OS: "linux", Architecture: "amd64"}}
}

func TestMultiDispatch(t *testing.T) {
	ctx := context.Background()
	local, fb := &recorder{name: "local", fail: "oci-layout:/l:nope"}, &recorder{name: "fallback", fail: "bad:1"}
	m := NewMulti(isLocal, local, fb)

	out, err := m.ResolveAll(ctx, []ResolveRequest{req("alpine:3.20"), req("oci-layout:/l:app")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[req("oci-layout:/l:app").Key()].Digest != "local" || out[req("alpine:3.20").Key()].Digest != "fallback" {
		t.Errorf("merged resolutions: %+v", out)
	}
	if fmt.Sprint(local.calls, fb.calls) != "[resolve oci-layout:/l:app] [resolve alpine:3.20]" {
		t.Errorf("calls %q %q", local.calls, fb.calls)
	}
	// Errors of both sides are reported together.
	_, err = m.ResolveAll(ctx, []ResolveRequest{req("bad:1"), req("oci-layout:/l:nope")})
	if err == nil || !strings.Contains(err.Error(), "bad:1: not found in fallback") || !strings.Contains(err.Error(), "oci-layout:/l:nope: not found in local") {
		t.Errorf("joined errors: %v", err)
	}

	if _, err := m.Fetch(ctx, "oci-layout:/l:app", "sha256:aa"); err == nil || err.Error() != "local fetched" {
		t.Errorf("local fetch: %v", err)
	}
	if _, err := m.Fetch(ctx, "alpine:3.20", "sha256:aa"); err == nil || err.Error() != "fallback fetched" {
		t.Errorf("registry fetch: %v", err)
	}
	if n, ok := m.UnpackedSize(ctx, "oci-layout:/l:app", v1.Descriptor{}); !ok || n != 5 {
		t.Errorf("local UnpackedSize %d %v", n, ok)
	}
	if n, ok := m.UnpackedSize(ctx, "alpine:3.20", v1.Descriptor{}); !ok || n != 8 {
		t.Errorf("fallback UnpackedSize %d %v", n, ok)
	}
	if st := m.Stats(); st != (Stats{BytesDownloaded: 20, BlobsDownloaded: 2, BlobsCached: 13}) {
		t.Errorf("Stats %+v: want both parts added", st)
	}
	if err := m.Close(); err == nil || !strings.Contains(err.Error(), "local closed") || !strings.Contains(err.Error(), "fallback closed") {
		t.Errorf("Close: %v", err)
	}

	// Parts without the optional abilities: nothing to ask, count or close.
	p := NewMulti(isLocal, plain{local}, plain{fb})
	if _, ok := p.UnpackedSize(ctx, "alpine:3.20", v1.Descriptor{}); ok {
		t.Error("UnpackedSize of a source that cannot tell")
	}
	if st := p.Stats(); st != (Stats{}) {
		t.Errorf("Stats %+v", st)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestMultiWithoutParts(t *testing.T) {
	ctx := context.Background()
	fb := &recorder{name: "fallback"}
	_, err := NewMulti(isLocal, nil, fb).ResolveAll(ctx, []ResolveRequest{req("oci-layout:/l:app"), req("alpine:3.20")})
	if err == nil || err.Error() != "oci-layout:/l:app: local sources are not available here" || len(fb.calls) != 1 {
		t.Errorf("without a local source: %v (fallback saw %q)", err, fb.calls)
	}
	if _, err := NewMulti(isLocal, nil, fb).Fetch(ctx, "oci-layout:/l:app", "sha256:aa"); err == nil || !strings.Contains(err.Error(), "local sources are not available here") {
		t.Errorf("fetch without a local source: %v", err)
	}
	m := NewMulti(isLocal, &recorder{name: "local"}, nil)
	if _, err := m.ResolveAll(ctx, []ResolveRequest{req("alpine:3.20")}); err == nil || err.Error() != "alpine:3.20: no registry or bundle source to resolve it from" {
		t.Errorf("without a fallback: %v", err)
	}
	if _, err := m.Fetch(ctx, "alpine:3.20", "sha256:aa"); err == nil || err.Error() != "alpine:3.20: no registry or bundle source to fetch it from" {
		t.Errorf("fetch without a fallback: %v", err)
	}
	if _, ok := m.UnpackedSize(ctx, "alpine:3.20", v1.Descriptor{}); ok {
		t.Error("UnpackedSize without a fallback")
	}
	if err := m.Close(); err == nil {
		t.Error("Close did not close the local part")
	}
}
