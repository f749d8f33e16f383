package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/spec"
)

// These tests check the apply engine's logic (placement, index, staleness,
// locking, partial failure) with a trivial builder; the real builders and
// a real registry are exercised end to end in cmd/cachectl's scripts.

type fakeSource struct {
	images  map[string]v1.Image // ref → image
	fetches atomic.Int32
	fail    map[string]bool
}

func (f *fakeSource) ResolveAll(ctx context.Context, reqs []source.ResolveRequest) (map[source.ResolveKey]source.Resolution, error) {
	out := map[source.ResolveKey]source.Resolution{}
	for _, r := range reqs {
		img, ok := f.images[r.Ref]
		if !ok {
			return nil, fmt.Errorf("%s: not found", r.Ref)
		}
		d, _ := img.Digest()
		out[source.ResolveKey{Ref: r.Ref, Platform: image.PlatformString(r.Platform)}] = source.Resolution{Digest: d.String(), Manifest: d.String(), Size: 10}
	}
	return out, nil
}

func (f *fakeSource) Fetch(ctx context.Context, ref, manifest string) (v1.Image, error) {
	f.fetches.Add(1)
	if f.fail[ref] {
		return nil, errors.New("injected failure")
	}
	img := f.images[ref]
	if d, _ := img.Digest(); d.String() != manifest {
		return nil, fmt.Errorf("asked for %s, have %s", manifest, d)
	}
	return img, nil
}

type textBuilder struct{}

func (textBuilder) Format() string  { return "txt" }
func (textBuilder) Version() string { return "1" }
func (textBuilder) Build(ctx context.Context, img v1.Image, req providers.BuildRequest, out string) error {
	d, _ := img.Digest()
	return os.WriteFile(out, []byte(req.Ref+" "+d.String()+"\n"), 0o600)
}
func (textBuilder) Verify(ctx context.Context, path string) error { return nil }

// model is a spec of one apptainer cache "sif" at root with refs.
func model(t *testing.T, root string, prune bool, refs ...string) *spec.Model {
	t.Helper()
	c := &spec.Cache{Name: "sif", Runtime: spec.RuntimeApptainer, Root: root, Platform: spec.DefaultPlatform,
		FileMode: 0o644, DirMode: 0o755, Prune: prune}
	for _, r := range refs {
		p, err := name.ParseReference(r)
		if err != nil {
			t.Fatal(err)
		}
		n, err := spec.FileName(c.Runtime, r)
		if err != nil {
			t.Fatal(err)
		}
		c.Artifacts = append(c.Artifacts, &spec.Artifact{Cache: c.Name, Ref: r, Parsed: p, Name: n, Path: spec.JoinRoot(root, n), Platform: c.Platform})
	}
	return &spec.Model{Caches: []*spec.Cache{c}}
}

func newFake(t *testing.T, refs ...string) *fakeSource {
	f := &fakeSource{images: map[string]v1.Image{}, fail: map[string]bool{}}
	for _, r := range refs {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		f.images[r] = img
	}
	return f
}

func planAndApply(t *testing.T, m *spec.Model, src *fakeSource) (*planner.Plan, error) {
	t.Helper()
	opts := planner.Options{Refresh: true, Builder: func(spec.Runtime) planner.BuilderInfo { return planner.BuilderInfo{Format: "txt", Version: "1"} }}
	p, err := planner.MakePlan(context.Background(), m, src, opts)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	_, err = Run(context.Background(), p, Deps{Resolver: src, Fetcher: src, Builder: func(spec.Runtime) (providers.Builder, error) { return textBuilder{}, nil }}, Options{Spec: m, BuilderInfo: txtInfo})
	return p, err
}

func txtInfo(spec.Runtime) planner.BuilderInfo {
	return planner.BuilderInfo{Format: "txt", Version: "1"}
}

func replan(t *testing.T, m *spec.Model, src *fakeSource) *planner.Plan {
	t.Helper()
	p, err := planner.MakePlan(context.Background(), m, src, planner.Options{Refresh: true, Builder: func(spec.Runtime) planner.BuilderInfo { return planner.BuilderInfo{Format: "txt", Version: "1"} }})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return p
}

func TestApplyConverges(t *testing.T) {
	root := filepath.Join(t.TempDir(), "sif")
	refs := []string{"alpine:3.20", "determinedai/pytorch-ngc:0.38.1", "nvcr.io/nvidia/pytorch:24.01-py3"}
	src := newFake(t, refs...)
	m := model(t, root, true, refs...)
	p, err := planAndApply(t, m, src)
	if err != nil {
		t.Fatal(err)
	}
	if p.Summary.Add != 3 {
		t.Fatalf("plan adds %d, want 3", p.Summary.Add)
	}
	for _, r := range refs {
		b, err := os.ReadFile(filepath.Join(root, r))
		if err != nil || !strings.HasPrefix(string(b), r+" ") {
			t.Errorf("%s: %q %v", r, b, err)
		}
		fi, _ := os.Stat(filepath.Join(root, r))
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v", r, fi.Mode())
		}
	}
	if again := replan(t, m, src); again.HasChanges() {
		t.Fatalf("second plan has changes: %+v", again.Changes)
	}
	// staging is gone
	if ents, _ := os.ReadDir(filepath.Join(root, spec.IndexDir, "staging")); len(ents) != 0 {
		t.Errorf("staging not clean: %v", ents)
	}
}

func TestApplyModeDriftAndPrune(t *testing.T) {
	root := filepath.Join(t.TempDir(), "sif")
	src := newFake(t, "a:1", "b:1")
	m := model(t, root, true, "a:1", "b:1")
	if _, err := planAndApply(t, m, src); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(root, "a:1"), 0o600)
	m2 := model(t, root, true, "a:1")
	p, err := planAndApply(t, m2, src)
	if err != nil {
		t.Fatal(err)
	}
	if p.Summary.Change != 1 || p.Summary.Destroy != 1 {
		t.Fatalf("summary %+v", p.Summary)
	}
	if fi, _ := os.Stat(filepath.Join(root, "a:1")); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode not fixed: %v", fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(root, "b:1")); !os.IsNotExist(err) {
		t.Errorf("b:1 not deleted: %v", err)
	}
	if again := replan(t, m2, src); again.HasChanges() {
		t.Fatalf("not converged: %+v", again.Changes)
	}
}

func TestApplyNeverTouchesUnmanaged(t *testing.T) {
	root := filepath.Join(t.TempDir(), "sif")
	os.MkdirAll(root, 0o755)
	os.WriteFile(filepath.Join(root, "mine.sif"), []byte("hand made"), 0o644)
	os.WriteFile(filepath.Join(root, "a:1"), []byte("in the way"), 0o644)
	src := newFake(t, "a:1")
	m := model(t, root, true, "a:1")
	_, err := planner.MakePlan(context.Background(), m, src, planner.Options{Refresh: true})
	if err == nil || !strings.Contains(err.Error(), "was not placed by cachectl") {
		t.Fatalf("want a conflict error, got %v", err)
	}
	os.Remove(filepath.Join(root, "a:1"))
	if _, err := planAndApply(t, m, src); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "mine.sif")); string(b) != "hand made" {
		t.Fatal("unmanaged file touched")
	}
	p := replan(t, model(t, root, true), src) // everything left the spec, prune on
	for _, ch := range p.Changes {
		if ch.Name == "mine.sif" {
			t.Fatalf("unmanaged file planned: %+v", ch)
		}
	}
	if len(p.Roots[0].Unmanaged) != 1 {
		t.Fatalf("unmanaged not reported: %+v", p.Roots[0])
	}
}

func TestApplyStalePlanRefused(t *testing.T) {
	root := filepath.Join(t.TempDir(), "sif")
	src := newFake(t, "a:1", "b:1")
	if _, err := planAndApply(t, model(t, root, true, "a:1"), src); err != nil {
		t.Fatal(err)
	}
	m := model(t, root, true, "a:1", "b:1")
	p := replan(t, m, src)
	// Someone changes the root after the plan was made.
	os.Chmod(filepath.Join(root, "a:1"), 0o600)
	_, err := Run(context.Background(), p, Deps{Fetcher: src, Builder: func(spec.Runtime) (providers.Builder, error) { return textBuilder{}, nil }}, Options{Spec: m, BuilderInfo: txtInfo})
	if err == nil || !strings.Contains(err.Error(), "plan is stale") {
		t.Fatalf("want stale error, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "b:1")); !os.IsNotExist(err) {
		t.Fatal("stale plan placed a file")
	}
}

func TestApplyPartialFailure(t *testing.T) {
	root := filepath.Join(t.TempDir(), "sif")
	src := newFake(t, "a:1", "b:1", "c:1")
	src.fail["b:1"] = true
	_, err := planAndApply(t, model(t, root, true, "a:1", "b:1", "c:1"), src)
	if err == nil || !strings.Contains(err.Error(), `cache.sif["b:1"]`) {
		t.Fatalf("want b:1 error, got %v", err)
	}
	for _, r := range []string{"a:1", "c:1"} {
		if _, err := os.Stat(filepath.Join(root, r)); err != nil {
			t.Errorf("%s not placed despite another failure: %v", r, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "b:1")); !os.IsNotExist(err) {
		t.Error("failed artifact left a file")
	}
}

func TestApplyDedupesPulls(t *testing.T) {
	dir := t.TempDir()
	src := newFake(t, "a:1")
	c1 := model(t, filepath.Join(dir, "one"), true, "a:1").Caches[0]
	c2 := model(t, filepath.Join(dir, "two"), true, "a:1").Caches[0]
	c2.Name = "two"
	for _, a := range c2.Artifacts {
		a.Cache = "two"
	}
	if _, err := planAndApply(t, &spec.Model{Caches: []*spec.Cache{c1, c2}}, src); err != nil {
		t.Fatal(err)
	}
	if n := src.fetches.Load(); n != 1 {
		t.Fatalf("fetched %d times, want 1", n)
	}
}

func TestPendingEntryRecovered(t *testing.T) {
	// A crash after the rename and before the index update: the index has
	// the artifact as pending; the next scan must adopt the file.
	root := filepath.Join(t.TempDir(), "sif")
	src := newFake(t, "a:1")
	m := model(t, root, true, "a:1")
	if _, err := planAndApply(t, m, src); err != nil {
		t.Fatal(err)
	}
	var e cacheroot.Entry
	if err := cacheroot.EditIndex(context.Background(), root, spec.RuntimeApptainer, func(ix *cacheroot.Index) error {
		ep, _ := ix.Lookup("a:1")
		e = *ep
		ix.SetPending(e)
		ix.Remove("a:1")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if p := replan(t, m, src); p.HasChanges() {
		t.Fatalf("pending entry not recovered: %+v", p.Changes)
	}
	// A pending entry whose file never arrived is dropped.
	os.Remove(filepath.Join(root, "a:1"))
	cacheroot.EditIndex(context.Background(), root, spec.RuntimeApptainer, func(ix *cacheroot.Index) error { ix.SetPending(e); return nil })
	p := replan(t, m, src)
	if p.Summary.Add != 1 {
		t.Fatalf("want a create, got %+v", p.Changes)
	}
}

func TestPruneRemovesOnlyDirsItCreated(t *testing.T) {
	root := filepath.Join(t.TempDir(), "sif")
	src := newFake(t, "team/a:1", "other/b:1")
	os.MkdirAll(filepath.Join(root, "other"), 0o755) // made by someone else
	if _, err := planAndApply(t, model(t, root, true, "team/a:1", "other/b:1"), src); err != nil {
		t.Fatal(err)
	}
	ix, _ := cacheroot.ReadIndexAt(root, spec.RuntimeApptainer)
	if ix.HasDir(".") || !ix.HasDir("team") || ix.HasDir("other") {
		t.Fatalf("recorded dirs %v", ix.Dirs)
	}
	if _, err := planAndApply(t, model(t, root, true), src); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "team")); !os.IsNotExist(err) {
		t.Errorf("emptied dir cachectl created is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "other")); err != nil {
		t.Errorf("dir cachectl did not create was removed: %v", err)
	}
}

// TestApplyStaleRootStopsWholePlan: a plan is one change set. When one of
// its roots changed since the plan was made, no root is changed.
func TestApplyStaleRootStopsWholePlan(t *testing.T) {
	dir := t.TempDir()
	src := newFake(t, "a:1", "b:1")
	one := model(t, filepath.Join(dir, "one"), true, "a:1").Caches[0]
	two := model(t, filepath.Join(dir, "two"), true, "a:1").Caches[0]
	two.Name = "two"
	for _, a := range two.Artifacts {
		a.Cache = "two"
	}
	if _, err := planAndApply(t, &spec.Model{Caches: []*spec.Cache{one, two}}, src); err != nil {
		t.Fatal(err)
	}
	// Both caches now want b:1 as well.
	one2 := model(t, filepath.Join(dir, "one"), true, "a:1", "b:1").Caches[0]
	two2 := model(t, filepath.Join(dir, "two"), true, "a:1", "b:1").Caches[0]
	two2.Name = "two"
	for _, a := range two2.Artifacts {
		a.Cache = "two"
	}
	m := &spec.Model{Caches: []*spec.Cache{one2, two2}}
	p := replan(t, m, src)
	os.Chmod(filepath.Join(dir, "two", "a:1"), 0o600) // "two" changes after the plan
	_, err := Run(context.Background(), p, Deps{Resolver: src, Fetcher: src, Builder: func(spec.Runtime) (providers.Builder, error) { return textBuilder{}, nil }}, Options{Spec: m, BuilderInfo: txtInfo})
	if err == nil || !strings.Contains(err.Error(), "plan is stale") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("want a stale-plan refusal, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "one", "b:1")); !os.IsNotExist(err) {
		t.Fatalf("the fresh root was changed although another root of the plan was stale: %v", err)
	}
}
