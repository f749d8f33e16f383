package apply

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/bundle/bundletest"
	"github.com/cachectl/cachectl/providers/store"
	"github.com/cachectl/cachectl/spec"
)

// TestApplyFromBundle: images preloaded from a bundle (every blob verified
// before anything is built) apply, and the next plan has no changes.
func TestApplyFromBundle(t *testing.T) {
	refs := []string{"alpine:3.20", "example.com/tools:1"}
	f := bundletest.New(t, refs...)
	file := f.Write(t, "b.tar", nil, refs...)
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := planner.OpenBundleSource(st, file)
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
	if err := s.Preload(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	deps := Deps{Resolver: s, Fetcher: s, Builder: func(spec.Runtime) (providers.Builder, error) { return textBuilder{}, nil }}
	if _, err := Run(context.Background(), p, deps, Options{Spec: m, BuilderInfo: txtInfo}); err != nil {
		t.Fatal(err)
	}
	p, err = planner.MakePlan(context.Background(), m, s, opts)
	if err != nil || p.HasChanges() {
		t.Fatalf("plan after apply from the bundle: changes %v, %v", p.HasChanges(), err)
	}
}
