package apply

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/bundle"
	"github.com/cachectl/cachectl/providers/bundle/bundletest"
	"github.com/cachectl/cachectl/providers/store"
	"github.com/cachectl/cachectl/spec"
)

func textBuilders(spec.Runtime) (providers.Builder, error) { return textBuilder{}, nil }

// TestApplyFromBundle: images prefetched from a bundle (every blob verified
// before anything is built) apply, and the next plan has no changes.
func TestApplyFromBundle(t *testing.T) {
	refs := []string{"alpine:3.20", "example.com/tools:1"}
	f := bundletest.New(t, refs...)
	file := f.Write(t, "b.tar", nil, refs...)
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := bundle.OpenImageSource(st, file)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := model(t, filepath.Join(t.TempDir(), "sif"), false, refs...)
	opts := planner.Options{Refresh: true, Builder: txtInfo}
	p, err := planner.MakePlan(context.Background(), m, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	deps := Deps{Resolver: s, Fetcher: s, Builder: textBuilders}
	if _, err := Run(context.Background(), p, deps, Options{Spec: m, BuilderInfo: txtInfo, Prefetch: true}); err != nil {
		t.Fatal(err)
	}
	p, err = planner.MakePlan(context.Background(), m, s, opts)
	if err != nil || p.HasChanges() {
		t.Fatalf("plan after apply from the bundle: changes %v, %v", p.HasChanges(), err)
	}
}

// TestApplyTamperedBundle: a bundle with a flipped byte in the layer its
// images share is refused by the prefetch before anything is built: apply
// places nothing, the bad blob never reaches the store, and the error
// names each artifact.
func TestApplyTamperedBundle(t *testing.T) {
	refs := []string{"alpine:3.20", "example.com/tools:1"}
	f := bundletest.New(t, refs...)
	good := f.Write(t, "b.tar", nil, refs...)
	raw, _ := os.ReadFile(good)
	layers, _ := f.Images["alpine:3.20"].Layers()
	shared, _ := layers[0].Digest()
	content, _ := os.ReadFile(f.Src.Path(shared))
	at := bytes.Index(raw, content)
	raw[at+len(content)/2] ^= 1
	bad := filepath.Join(f.Dir, "bad.tar")
	os.WriteFile(bad, raw, 0o644)

	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := bundle.OpenImageSource(st, bad)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	root := filepath.Join(t.TempDir(), "sif")
	m := model(t, root, false, refs...)
	p, err := planner.MakePlan(context.Background(), m, s, planner.Options{Refresh: true, Builder: txtInfo})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), p, Deps{Resolver: s, Fetcher: s, Builder: textBuilders}, Options{Spec: m, BuilderInfo: txtInfo, Prefetch: true})
	if err == nil || !strings.Contains(err.Error(), "nothing was changed: the plan") || !strings.Contains(err.Error(), "does not match its digest") ||
		!strings.Contains(err.Error(), `cache.sif["alpine:3.20"]`) || !strings.Contains(err.Error(), `cache.sif["example.com/tools:1"]`) {
		t.Fatalf("apply of a tampered bundle: %v", err)
	}
	if !errors.Is(err, store.ErrDigestMismatch) {
		t.Fatalf("error does not wrap ErrDigestMismatch: %v", err)
	}
	if res.Added != 0 {
		t.Errorf("result %+v", res)
	}
	if st.Has(shared) {
		t.Fatal("the tampered blob reached the store")
	}
	for _, ref := range refs {
		if _, err := os.Lstat(filepath.Join(root, ref)); !os.IsNotExist(err) {
			t.Errorf("%s was placed: %v", ref, err)
		}
	}
}
