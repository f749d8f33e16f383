package apply

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/cachectl/cachectl/conformance/corpus"
	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/apptainer"
	"github.com/cachectl/cachectl/providers/enroot"
	"github.com/cachectl/cachectl/providers/registry"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/providers/rootfs"
	"github.com/cachectl/cachectl/providers/squashfs"
	"github.com/cachectl/cachectl/providers/store"
	"github.com/cachectl/cachectl/spec"
)

// faultyApply is one apply of an image behind a fault proxy into a SIF, a
// .sqsh and an OCI cache, with the real registry, builders and mksquashfs.
type faultyApply struct {
	dir    string
	ref    string
	st     *store.Store
	layers []v1.Layer
	m      *spec.Model
	src    *registry.ImageSource
}

var faultyRuntimes = map[string]spec.Runtime{"sif": spec.RuntimeApptainer, "sqsh": spec.RuntimeEnroot, "oci": spec.RuntimePodman}

func newFaultyApply(t *testing.T, srv *registrytest.Server, img v1.Image, repo string, faults func(oldest string) []registrytest.Fault, retry time.Duration) *faultyApply {
	t.Helper()
	layers, _ := img.Layers()
	oldest, _ := layers[0].Digest()
	px := registrytest.StartFaultProxy(t, srv.URL, faults(oldest.String())...)
	f := &faultyApply{dir: t.TempDir(), ref: px.Addr + "/" + repo, layers: layers}
	var hcl strings.Builder
	for name, rt := range faultyRuntimes {
		hcl.WriteString("cache \"" + name + "\" {\n  runtime = \"" + string(rt) + "\"\n  root = \"" + filepath.Join(f.dir, name) + "\"\n  images = [\"" + f.ref + "\"]\n}\n")
	}
	f.m, f.st, f.src = loadWithRegistry(t, f.dir, hcl.String(), registry.Options{RequestTimeout: 2 * time.Second, TotalRetryTime: retry})
	return f
}

func (f *faultyApply) run(t *testing.T, builder func(spec.Runtime) (providers.Builder, error)) error {
	t.Helper()
	ctx := registrytest.Context(t)
	p, err := planner.MakePlan(ctx, f.m, f.src, planner.Options{Refresh: true, Builder: realBuilderInfo})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(ctx, p, Deps{Resolver: f.src, Fetcher: f.src, Builder: builder},
		Options{Spec: f.m, BuilderInfo: realBuilderInfo, BuildParallelism: 1})
	return err
}

// check asserts what is at the caches' final paths: a valid artifact, in
// the index with its sha256, in each cache of want; nothing in the others;
// no leftovers in any staging area or in the store, whose blobs all match
// their digests.
func (f *faultyApply) check(t *testing.T, want ...string) {
	t.Helper()
	ctx := context.Background()
	for name, rt := range faultyRuntimes {
		root := filepath.Join(f.dir, name)
		placed := strings.Contains(strings.Join(want, " "), name)
		ix, err := cacheroot.ReadIndexAt(root, rt)
		if err != nil {
			t.Fatalf("%s: index: %v", name, err)
		}
		var files []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && d.Name() == spec.IndexDir {
				return filepath.SkipDir
			}
			if err == nil && !d.IsDir() {
				files = append(files, p)
			}
			return nil
		})
		if !placed {
			if len(files) != 0 || len(ix.Entries) != 0 {
				t.Errorf("%s: a failed build left %v at final paths, %d index entries", name, files, len(ix.Entries))
			}
		} else {
			if len(files) != 1 || len(ix.Entries) != 1 {
				t.Fatalf("%s: %v at final paths, %d index entries; want one artifact", name, files, len(ix.Entries))
			}
			b, _ := realBuilder(rt)
			if err := b.Verify(ctx, files[0]); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			if got := "sha256:" + sha256File(t, files[0]); got != ix.Entries[0].SHA256 {
				t.Errorf("%s: the index records sha256 %s, the file has %s", name, ix.Entries[0].SHA256, got)
			}
		}
		if ents, _ := os.ReadDir(filepath.Join(root, spec.IndexDir, "staging")); len(ents) != 0 {
			t.Errorf("%s: staging holds %d leftovers", name, len(ents))
		}
	}
	if tmp, _ := os.ReadDir(filepath.Join(f.st.Dir(), "tmp")); len(tmp) != 0 {
		t.Errorf("store tmp/ holds %d leftovers", len(tmp))
	}
	blobs, err := f.st.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if got := sha256File(t, f.st.Path(b.Digest)); got != b.Digest.Hex {
			t.Errorf("store holds %s under the wrong digest (%s)", b.Digest, got)
		}
	}
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	h := sha256.New()
	io.Copy(h, fh)
	return hex.EncodeToString(h.Sum(nil))
}

// TestStreamedApplyFaults: the streamed builds of a SIF, a .sqsh and an
// OCI archive of one image whose oldest layer (the last to arrive, read by
// the builds as it does) is corrupted at its very end or cut off, once or
// every time. Once: the blob is fetched again, the artifacts are built
// again from the complete image and are correct. Always: the apply fails
// and nothing is placed or recorded. Either way no staging file, partial
// blob or blob under a wrong digest is left.
func TestStreamedApplyFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped with -short")
	}
	registrytest.RequireTool(t, "mksquashfs")
	registrytest.RequireTool(t, "unsquashfs")
	srv := registrytest.StartDistribution(t)
	img := registrytest.Image(t, 3, 256<<10, 71)
	registrytest.Push(t, img, srv.Ref("faults/app:1"))
	on := func(kind registrytest.FaultKind, times int) func(string) []registrytest.Fault {
		return func(oldest string) []registrytest.Fault {
			return []registrytest.Fault{{Kind: kind, Times: times, Match: registrytest.MatchBlobDigests(oldest)}}
		}
	}
	for _, tc := range []struct {
		name   string
		faults func(string) []registrytest.Fault
		ok     bool
		errHas string
	}{
		{"corrupt end once", on(registrytest.FaultCorruptEnd, 1), true, ""},
		{"corrupt end always", on(registrytest.FaultCorruptEnd, 0), false, "digest mismatch"},
		{"cut once", on(registrytest.FaultTruncate, 1), true, ""},
		{"cut always", on(registrytest.FaultTruncate, 0), false, "gave up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The faults that heal need the retry time to fetch again on
			// a loaded machine; only those that never heal are bounded
			// short, to give up quickly.
			retry := time.Minute
			if !tc.ok {
				retry = 2 * time.Second
			}
			f := newFaultyApply(t, srv, img, "faults/app:1", tc.faults, retry)
			err := f.run(t, realBuilder)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				f.check(t, "sif", "sqsh", "oci")
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("err = %v, want one saying %q", err, tc.errHas)
			}
			for _, name := range []string{"sif", "sqsh", "oci"} {
				if !strings.Contains(err.Error(), "cache."+name) {
					t.Errorf("no error for the %s: %v", name, err)
				}
			}
			f.check(t)
			oldest, _ := f.layers[0].Digest()
			if f.st.Has(oldest) {
				t.Error("the corrupt layer is in the store")
			}
		})
	}
}

// TestStreamedApplyOneBuilderFails: the mksquashfs of the SIF (or of the
// .sqsh) dies in the middle of the stream the two builds share; the other
// one and the OCI archive of the same image are still placed, correct, and
// the failed build leaves nothing.
func TestStreamedApplyOneBuilderFails(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped with -short")
	}
	registrytest.RequireTool(t, "mksquashfs")
	registrytest.RequireTool(t, "unsquashfs")
	srv := registrytest.StartDistribution(t)
	img := registrytest.Image(t, 3, 2<<20, 72) // more than the pipe to mksquashfs holds (1 MiB)
	registrytest.Push(t, img, srv.Ref("faults/one:1"))
	// Reads a part of its tar stream, then fails as a mksquashfs that
	// died would.
	wrapper := filepath.Join(t.TempDir(), "mksquashfs")
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nhead -c 300000 >/dev/null\necho injected mksquashfs failure >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, failing := range []string{"sif", "sqsh"} {
		t.Run(failing, func(t *testing.T) {
			t.Parallel()
			f := newFaultyApply(t, srv, img, "faults/one:1", func(string) []registrytest.Fault { return nil }, time.Minute)
			err := f.run(t, func(rt spec.Runtime) (providers.Builder, error) {
				switch {
				case rt == spec.RuntimeApptainer && failing == "sif":
					r, err := apptainer.RuntimeNamed(string(rt))
					if err != nil {
						return nil, err
					}
					return apptainer.New(r, squashfs.WithMksquashfs(wrapper)), nil
				case rt == spec.RuntimeEnroot && failing == "sqsh":
					return enroot.New(squashfs.WithMksquashfs(wrapper)), nil
				}
				return realBuilder(rt)
			})
			if err == nil || !strings.Contains(err.Error(), "injected mksquashfs failure") || !strings.Contains(err.Error(), "cache."+failing) {
				t.Fatalf("err = %v, want the %s's injected failure", err, failing)
			}
			var want []string
			for name := range faultyRuntimes {
				if name != failing {
					want = append(want, name)
					if strings.Contains(err.Error(), "cache."+name) {
						t.Errorf("the %s's failure failed the %s: %v", failing, name, err)
					}
				}
			}
			f.check(t, want...)
		})
	}
}

// TestStreamedApplyMirrorFallsBack: the mirror cuts the oldest layer off
// every time, so the pull takes that blob from the registry itself after
// the builds have read part of it from the mirror's attempt: the pull ends
// well, and the artifacts are built again from the complete image.
func TestStreamedApplyMirrorFallsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped with -short")
	}
	registrytest.RequireTool(t, "mksquashfs")
	registrytest.RequireTool(t, "unsquashfs")
	srv := registrytest.StartDistribution(t)
	img := registrytest.Image(t, 3, 256<<10, 72)
	registrytest.Push(t, img, srv.Ref("mirror/app:1"))
	layers, _ := img.Layers()
	oldest, _ := layers[0].Digest()
	px := registrytest.StartFaultProxy(t, srv.URL, registrytest.Fault{Kind: registrytest.FaultTruncate, Match: registrytest.MatchBlobDigests(oldest.String())})
	f := &faultyApply{dir: t.TempDir(), ref: srv.Ref("mirror/app:1"), layers: layers}
	var hcl strings.Builder
	for name, rt := range faultyRuntimes {
		hcl.WriteString("cache \"" + name + "\" {\n  runtime = \"" + string(rt) + "\"\n  root = \"" + filepath.Join(f.dir, name) + "\"\n  images = [\"" + f.ref + "\"]\n}\n")
	}
	f.m, f.st, f.src = loadWithRegistry(t, f.dir, hcl.String(), registry.Options{RequestTimeout: 2 * time.Second, TotalRetryTime: 2 * time.Second,
		Hosts: map[string]registry.HostSettings{srv.Addr: {Insecure: true, Mirror: px.Addr}, px.Addr: {Insecure: true}}})
	if err := f.run(t, realBuilder); err != nil {
		t.Fatal(err)
	}
	f.check(t, "sif", "sqsh", "oci")
}

// countingBuilder counts the builds of a streaming builder.
type countingBuilder struct {
	providers.StreamBuilder
	n *atomic.Int32
}

func (c countingBuilder) Build(ctx context.Context, img v1.Image, req providers.BuildRequest, out string) error {
	c.n.Add(1)
	return c.StreamBuilder.Build(ctx, img, req, out)
}

func (c countingBuilder) BuildShared(ctx context.Context, m *rootfs.Member, img v1.Image, req providers.BuildRequest, out string) error {
	c.n.Add(1)
	return c.StreamBuilder.BuildShared(ctx, m, img, req, out)
}

// TestStreamedApplyBadLayerBuiltOnce: an image whose layer is itself bad
// (a hard link to a file no layer has) fails its streamed SIF and .sqsh
// builds the same way every time; the pull ended well, but they are not
// built again from the complete image (which read every layer and ran
// mksquashfs twice to fail twice). Nothing is placed.
func TestStreamedApplyBadLayerBuiltOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped with -short")
	}
	registrytest.RequireTool(t, "mksquashfs")
	srv := registrytest.StartDistribution(t)
	raw, err := corpus.TarBytes([]corpus.Member{corpus.Reg("a", 0o644, "x"), corpus.Hardlink("b", "missing")})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, bad)
	if err != nil {
		t.Fatal(err)
	}
	registrytest.Push(t, img, srv.Ref("faults/bad:1"))
	f := newFaultyApply(t, srv, img, "faults/bad:1", func(string) []registrytest.Fault { return nil }, time.Minute)
	var builds atomic.Int32
	err = f.run(t, func(rt spec.Runtime) (providers.Builder, error) {
		b, err := realBuilder(rt)
		if sb, ok := b.(providers.StreamBuilder); ok && err == nil {
			return countingBuilder{sb, &builds}, nil
		}
		return b, err
	})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("err = %v, want the missing hard-link target", err)
	}
	if n := builds.Load(); n != 2 {
		t.Errorf("%d builds of the SIF and the .sqsh, want 2: a bad layer was built again", n)
	}
	f.check(t, "oci")
}
