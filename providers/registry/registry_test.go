package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/progress"
	"github.com/cachectl/cachectl/providers/registry"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/providers/store"
)

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

// client returns a client with short timeouts and no ambient credentials.
func client(t *testing.T, opts registry.Options) *registry.Client {
	t.Helper()
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 5 * time.Second
	}
	if opts.TotalRetryTime == 0 {
		opts.TotalRetryTime = 15 * time.Second
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.NewMultiKeychain() // anonymous
	}
	c, err := registry.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertClean checks that nothing is half-written in the store: tmp/ is
// empty and every blob hashes to its name.
func assertClean(t *testing.T, s *store.Store) {
	t.Helper()
	tmp, err := os.ReadDir(filepath.Join(s.Dir(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tmp) != 0 {
		t.Errorf("store tmp/ holds %d leftover files", len(tmp))
	}
	blobs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		f, err := os.Open(s.Path(b.Digest))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, _ = io.Copy(h, f)
		f.Close()
		if hex.EncodeToString(h.Sum(nil)) != b.Digest.Hex {
			t.Errorf("stored blob %s is corrupt", b.Digest)
		}
	}
}

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func blobSizes(t *testing.T, img v1.Image) int64 {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

func TestPullRealRegistry(t *testing.T) {
	srv := registrytest.StartDistribution(t)
	ctx := registrytest.Context(t)
	base := registrytest.Image(t, 3, 200<<10, 1)
	derived := registrytest.ImageOn(t, base, amd64, 2, 100<<10, 2)
	registrytest.Push(t, base, srv.Ref("team/base:1"))
	registrytest.Push(t, registrytest.OCI(t, derived), srv.Ref("team/app:1"))

	c := client(t, registry.Options{})
	st := newStore(t)

	res, err := c.Resolve(ctx, srv.Ref("team/base:1"), amd64)
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != digestOf(t, base) || res.Manifest != res.Digest {
		t.Errorf("Resolve = %+v, want digest %s", res, digestOf(t, base))
	}
	if res.Size != blobSizes(t, base) || res.Platform.Architecture != "amd64" || !res.MediaType.IsImage() {
		t.Errorf("Resolve = %+v", res)
	}
	img, stats, err := c.Pull(ctx, res.Ref, res.Manifest, st)
	if err != nil {
		t.Fatal(err)
	}
	if stats.BlobsDownloaded != 5 || stats.BlobsCached != 0 || stats.BytesDownloaded < res.Size {
		t.Errorf("first pull stats = %+v", stats)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}

	// Shared base layers come from the store.
	res2, err := c.Resolve(ctx, srv.Ref("team/app:1"), amd64)
	if err != nil {
		t.Fatal(err)
	}
	img2, stats2, err := c.Pull(ctx, res2.Ref, res2.Manifest, st)
	if err != nil {
		t.Fatal(err)
	}
	if stats2.BlobsCached != 3 || stats2.BlobsDownloaded != 4 {
		t.Errorf("derived pull stats = %+v, want 3 cached, 4 downloaded (manifest, config, 2 layers)", stats2)
	}
	if mt, _ := img2.MediaType(); !strings.Contains(string(mt), "oci") {
		t.Errorf("OCI image came back as %s", mt)
	}
	if err := validate.Image(img2); err != nil {
		t.Fatal(err)
	}

	// Pulling again downloads nothing.
	_, stats3, err := c.Pull(ctx, res.Ref, res.Manifest, st)
	if err != nil {
		t.Fatal(err)
	}
	if stats3.BytesDownloaded != 0 || stats3.BlobsDownloaded != 0 {
		t.Errorf("second pull downloaded %+v", stats3)
	}
	assertClean(t, st)
}

func TestIndexAndPlatforms(t *testing.T) {
	srv := registrytest.StartDistribution(t)
	ctx := registrytest.Context(t)
	arm := v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	imgAmd := registrytest.ImageOn(t, registrytest.Image(t, 1, 10<<10, 3), amd64, 1, 10<<10, 4)
	imgArm := registrytest.ImageOn(t, registrytest.Image(t, 1, 10<<10, 3), arm, 1, 10<<10, 5)
	idx := registrytest.Index(t, imgAmd, imgArm)
	idxDigest := registrytest.PushIndex(t, idx, srv.Ref("multi:1"))
	c := client(t, registry.Options{})

	res, err := c.Resolve(ctx, srv.Ref("multi:1"), v1.Platform{OS: "linux", Architecture: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != idxDigest || res.Manifest != digestOf(t, imgArm) || !res.DigestMediaType.IsIndex() {
		t.Errorf("Resolve arm64 = %+v; want index %s, manifest %s", res, idxDigest, digestOf(t, imgArm))
	}
	if res.Platform.Variant != "v8" || res.Size != blobSizes(t, imgArm) {
		t.Errorf("Resolve arm64 = %+v", res)
	}
	st := newStore(t)
	img, _, err := c.Pull(ctx, res.Ref, res.Manifest, st)
	if err != nil {
		t.Fatal(err)
	}
	if cf, _ := img.ConfigFile(); cf.Architecture != "arm64" {
		t.Errorf("pulled %s image", cf.Architecture)
	}
	// Pulling the index digest itself is refused with a hint.
	if _, _, err := c.Pull(ctx, res.Ref, res.Digest, st); err == nil || !strings.Contains(err.Error(), "not an image manifest") {
		t.Errorf("Pull(index) err = %v", err)
	}

	_, err = c.Resolve(ctx, srv.Ref("multi:1"), v1.Platform{OS: "linux", Architecture: "s390x"})
	if !image.IsPlatformMissing(err) {
		t.Fatalf("missing platform: err = %v", err)
	}
	for _, want := range []string{"linux/s390x", "linux/amd64", "linux/arm64/v8"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	// A single-platform image asked for another platform.
	registrytest.Push(t, imgAmd, srv.Ref("single:1"))
	if _, err := c.Resolve(ctx, srv.Ref("single:1"), v1.Platform{OS: "linux", Architecture: "arm64"}); err == nil || !strings.Contains(err.Error(), "linux/amd64") {
		t.Errorf("platform mismatch: err = %v", err)
	}
	// Unknown tag.
	if _, err := c.Resolve(ctx, srv.Ref("multi:nope"), amd64); !registry.NotFound(err) {
		t.Errorf("unknown tag: err = %v", err)
	}
}

func TestTagMoves(t *testing.T) {
	srv := registrytest.StartDistribution(t)
	ctx := registrytest.Context(t)
	c := client(t, registry.Options{})
	ref := srv.Ref("moving:latest")
	d1 := registrytest.Push(t, registrytest.Image(t, 1, 1024, 10), ref)
	res1, err := c.Resolve(ctx, ref, amd64)
	if err != nil || res1.Digest != d1 {
		t.Fatalf("Resolve = %+v, %v; want %s", res1, err, d1)
	}
	d2 := registrytest.Push(t, registrytest.Image(t, 1, 1024, 11), ref)
	res2, err := c.Resolve(ctx, ref, amd64)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Digest != d2 || res2.Digest == res1.Digest {
		t.Errorf("after moving the tag: %s, want %s", res2.Digest, d2)
	}
	h, err := c.Head(ctx, ref)
	if err != nil || h.Digest != d2 {
		t.Errorf("Head = %+v, %v", h, err)
	}
	// By digest still reaches the old image.
	old, err := c.Resolve(ctx, srv.Ref("moving@"+d1.String()), amd64)
	if err != nil || old.Manifest != d1 {
		t.Errorf("by digest = %+v, %v", old, err)
	}
}

func TestResolveAllDedupes(t *testing.T) {
	srv := registrytest.StartInProcess(t)
	ctx := registrytest.Context(t)
	registrytest.Push(t, registrytest.Image(t, 1, 1024, 20), srv.Ref("a:1"))
	registrytest.Push(t, registrytest.Image(t, 1, 1024, 21), srv.Ref("b:1"))
	px := registrytest.StartFaultProxy(t, srv.URL)
	c := client(t, registry.Options{})
	reqs := []source.ResolveRequest{
		{Ref: px.Addr + "/a:1", Platform: amd64},
		{Ref: px.Addr + "/b:1", Platform: amd64},
		{Ref: px.Addr + "/a:1", Platform: amd64},
		{Ref: px.Addr + "/a:1"}, // zero platform = default
		{Ref: px.Addr + "/c:1", Platform: amd64},
	}
	res, errs := c.ResolveAll(ctx, reqs)
	for i := 0; i < 4; i++ {
		if errs[i] != nil {
			t.Fatalf("req %d: %v", i, errs[i])
		}
	}
	if errs[4] == nil || !registry.NotFound(errs[4]) {
		t.Errorf("missing repo: %v", errs[4])
	}
	if res[0].Digest != res[2].Digest || res[0].Digest == res[1].Digest || res[0].Ref != reqs[0].Ref {
		t.Errorf("results misaligned: %+v", res)
	}
	heads := map[string]int{}
	for _, l := range px.Log() {
		if l.Method == "HEAD" {
			heads[l.Path]++
		}
	}
	if heads["/v2/a/manifests/1"] != 1 || heads["/v2/b/manifests/1"] != 1 {
		t.Errorf("HEAD requests per tag: %v (want one each)", heads)
	}
}

func TestConcurrentPullsShareDownloads(t *testing.T) {
	srv := registrytest.StartInProcess(t)
	ctx := registrytest.Context(t)
	base := registrytest.Image(t, 3, 300<<10, 30)
	a := registrytest.ImageOn(t, base, amd64, 1, 1024, 31)
	b := registrytest.ImageOn(t, base, amd64, 1, 1024, 32)
	registrytest.Push(t, a, srv.Ref("a:1"))
	registrytest.Push(t, b, srv.Ref("b:1"))
	px := registrytest.StartFaultProxy(t, srv.URL)
	var events bytes.Buffer
	c := client(t, registry.Options{Progress: progress.NewJSON(&events)})
	st := newStore(t)
	var wg sync.WaitGroup
	var total source.Stats
	var mu sync.Mutex
	for i := 0; i < 6; i++ {
		img := []v1.Image{a, b}[i%2]
		ref := px.Addr + []string{"/a:1", "/b:1"}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, s, err := c.Pull(ctx, ref, digestOf(t, img), st)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total.BlobsDownloaded += s.BlobsDownloaded
			mu.Unlock()
		}()
	}
	wg.Wait()
	gets := map[string]int{}
	for _, l := range px.Log() {
		if l.Method == "GET" && strings.Contains(l.Path, "/blobs/sha256:") {
			gets[l.Path[strings.LastIndex(l.Path, "/")+1:]]++
		}
	}
	for d, n := range gets {
		if n != 1 {
			t.Errorf("blob %s downloaded %d times", d, n)
		}
	}
	if len(gets) != 3+2+2 { // base layers, 2 top layers, 2 configs
		t.Errorf("%d distinct blobs fetched, want 7", len(gets))
	}
	// Manifests: 2, plus 7 blobs.
	if total.BlobsDownloaded != 9 {
		t.Errorf("blobs downloaded over all pulls = %d, want 9", total.BlobsDownloaded)
	}
	// The JSON stream has a start and a done per downloaded blob.
	counts := map[progress.Type]int{}
	dec := json.NewDecoder(&events)
	for {
		var e progress.Event
		if err := dec.Decode(&e); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		counts[e.Type]++
	}
	if counts[progress.Start] != 7 || counts[progress.Done] != 7 || counts[progress.Error] != 0 {
		t.Errorf("progress events %v", counts)
	}
	assertClean(t, st)
}

func TestAuthFileBasicAuth(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no ambient credentials
	const user, pass = "alice", "s3cr3t-Pa55word"
	srv := registrytest.StartDistribution(t, registrytest.WithBasicAuth(user, pass))
	ctx := registrytest.Context(t)
	img := registrytest.Image(t, 2, 4096, 40)
	registrytest.Push(t, img, srv.Ref("private/app:1"), srv.BasicAuth())
	ref := srv.Ref("private/app:1")

	// With the credentials file: works.
	var out bytes.Buffer
	c, err := registry.New(registry.Options{
		Hosts:    map[string]registry.HostSettings{srv.Addr: {AuthFile: registrytest.WriteAuthFile(t, srv.Addr, user, pass)}},
		Progress: progress.NewLines(&out),
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Resolve(ctx, ref, amd64)
	if err != nil {
		t.Fatal(err)
	}
	st := newStore(t)
	if _, _, err := c.Pull(ctx, ref, res.Manifest, st); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), pass) {
		t.Error("progress output contains the password")
	}

	// Without: a clear message naming the registry and how to log in.
	anon, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = anon.Resolve(ctx, ref, amd64)
	if !registry.IsAuth(err) {
		t.Fatalf("anonymous: err = %v, want an auth error", err)
	}
	for _, want := range []string{srv.Addr, "docker login", "auth_file", "no credentials"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// Anonymous pull of a known digest fails the same way.
	if _, _, err := anon.Pull(ctx, ref, res.Manifest, newStore(t)); !registry.IsAuth(err) {
		t.Errorf("anonymous pull: %v", err)
	}

	// Wrong password: rejected, and the secret is not echoed.
	const wrong = "Wr0ng-s3cret-XYZ"
	bad, err := registry.New(registry.Options{
		Hosts: map[string]registry.HostSettings{srv.Addr: {AuthFile: registrytest.WriteAuthFile(t, srv.Addr, user, wrong)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Resolve(ctx, ref, amd64)
	if !registry.IsAuth(err) || !strings.Contains(err.Error(), "rejected the credentials") {
		t.Fatalf("wrong password: err = %v", err)
	}
	for _, secret := range []string{wrong, pass, "YWxpY2U6"} { // base64("alice:") prefix
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks a secret: %q", err)
		}
	}
	assertClean(t, st)
}

func TestMirrorFirstThenUpstream(t *testing.T) {
	upstream := registrytest.StartDistribution(t)
	mirror := registrytest.StartInProcess(t)
	ctx := registrytest.Context(t)
	onlyUp := registrytest.Image(t, 1, 2048, 50)
	both := registrytest.Image(t, 1, 2048, 51)
	registrytest.Push(t, onlyUp, upstream.Ref("lib/up:1"))
	registrytest.Push(t, both, upstream.Ref("lib/both:1"))
	registrytest.Push(t, both, mirror.Ref("lib/both:1"))
	px := registrytest.StartFaultProxy(t, upstream.URL)
	c := client(t, registry.Options{Hosts: map[string]registry.HostSettings{px.Addr: {Mirror: mirror.Addr}}})

	res, err := c.Resolve(ctx, px.Addr+"/lib/both:1", amd64)
	if err != nil || res.Source != mirror.Addr {
		t.Fatalf("both: %+v, %v; want served by the mirror", res, err)
	}
	res, err = c.Resolve(ctx, px.Addr+"/lib/up:1", amd64)
	if err != nil || res.Source != px.Addr {
		t.Fatalf("up: %+v, %v; want served by upstream", res, err)
	}
	st := newStore(t)
	if _, _, err := c.Pull(ctx, px.Addr+"/lib/up:1", res.Manifest, st); err != nil {
		t.Fatal(err)
	}
	// Upstream down: the mirror still serves what it has.
	px.SetFaults(registrytest.Fault{Kind: registrytest.FaultStatus, Status: 404, Match: registrytest.MatchAny})
	if _, _, err := c.Pull(ctx, px.Addr+"/lib/both:1", digestOf(t, both), st); err != nil {
		t.Fatalf("pull via mirror: %v", err)
	}
	assertClean(t, st)
}

func TestInvalidReference(t *testing.T) {
	c := client(t, registry.Options{})
	if _, err := c.Resolve(context.Background(), "UPPER/Case::bad", amd64); err == nil {
		t.Fatal("bad reference accepted")
	}
}

func TestCAFileErrors(t *testing.T) {
	_, err := registry.New(registry.Options{Hosts: map[string]registry.HostSettings{"r.example": {CAFile: "/nonexistent/ca.pem"}}})
	if err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("missing ca_file: %v", err)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	_ = os.WriteFile(p, []byte("not a cert"), 0o644)
	if _, err := registry.New(registry.Options{Hosts: map[string]registry.HostSettings{"r.example": {CAFile: p}}}); err == nil {
		t.Error("garbage ca_file accepted")
	}
}

func TestTLSCAFile(t *testing.T) {
	srv := registrytest.StartDistribution(t, registrytest.WithTLS())
	ctx := registrytest.Context(t)
	img := registrytest.Image(t, 1, 4096, 70)
	registrytest.Push(t, img, srv.Ref("tls/app:1"), srv.Trust(t))
	ref := srv.Ref("tls/app:1")

	c := client(t, registry.Options{Hosts: map[string]registry.HostSettings{srv.Addr: {CAFile: srv.CAFile}}})
	res, err := c.Resolve(ctx, ref, amd64)
	if err != nil {
		t.Fatalf("with ca_file: %v", err)
	}
	st := newStore(t)
	if _, _, err := c.Pull(ctx, ref, res.Manifest, st); err != nil {
		t.Fatalf("with ca_file: %v", err)
	}

	start := time.Now()
	_, err = client(t, registry.Options{}).Resolve(ctx, ref, amd64)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without ca_file: err = %v, want a certificate error", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("certificate errors were retried (%s)", time.Since(start))
	}

	if _, err := client(t, registry.Options{Hosts: map[string]registry.HostSettings{srv.Addr: {Insecure: true}}}).Resolve(ctx, ref, amd64); err != nil {
		t.Errorf("insecure: %v", err)
	}
	assertClean(t, st)
}
