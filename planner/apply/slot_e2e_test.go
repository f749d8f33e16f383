package apply

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/providers/registry"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// TestBuildSlotNotHeldWhileDownloading: a builder that reads each blob
// whole (the OCI archive) takes a build slot only once its image is in
// the store. With one build slot, image A's oldest layer stalled by a
// proxy and A's OCI archive planned beside image B's SIF, B's SIF is
// built and placed while A still downloads, and A's archive build starts
// only after A's last layer arrived.
func TestBuildSlotNotHeldWhileDownloading(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped with -short")
	}
	registrytest.RequireTool(t, "mksquashfs")
	srv := registrytest.StartDistribution(t)
	imgA := registrytest.Image(t, 3, 64<<10, 201)
	imgB := registrytest.Image(t, 2, 64<<10, 202)
	registrytest.Push(t, imgA, srv.Ref("slot/a:1"))
	registrytest.Push(t, imgB, srv.Ref("slot/b:1"))
	layers, _ := imgA.Layers()
	oldest, _ := layers[0].Digest()
	px := registrytest.StartSlowProxy(t, srv.URL, 0, registrytest.MatchBlobDigests(oldest.String()))
	refA, refB := px.Addr+"/slot/a:1", px.Addr+"/slot/b:1"

	dir := t.TempDir()
	m, st, src := loadWithRegistry(t, dir, `
cache "oci" {
  runtime = "podman"
  root    = "`+filepath.Join(dir, "oci")+`"
  images  = ["`+refA+`"]
}
cache "sif" {
  runtime = "apptainer"
  root    = "`+filepath.Join(dir, "sif")+`"
  images  = ["`+refB+`"]
}
`, registry.Options{RequestTimeout: time.Second, TotalRetryTime: 5 * time.Minute}) // outlasts the wait below: the stall never gives up first
	ctx := context.Background()
	p, err := planner.MakePlan(ctx, m, src, planner.Options{Refresh: true, Builder: realBuilderInfo})
	if err != nil {
		t.Fatal(err)
	}
	px.SetStall(true) // after the plan, which reads each layer's tail

	var mu sync.Mutex
	var early []string // archive builds started with A's oldest layer missing
	placedB := make(chan struct{})
	events := func(e Event) {
		switch {
		case e.Phase == PhaseBuild && e.Message == "oci" && !st.Has(oldest):
			mu.Lock()
			early = append(early, e.Address)
			mu.Unlock()
		case e.Phase == PhasePlace && e.Address == `cache.sif["`+refB+`"]`:
			close(placedB)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, p, Deps{Resolver: src, Fetcher: src, Builder: realBuilder, Events: events},
			Options{Spec: m, BuilderInfo: realBuilderInfo, BuildParallelism: 1})
		done <- err
	}()
	select {
	case <-placedB:
	case err := <-done:
		t.Fatalf("apply ended while A's oldest layer was stalled: %v", err)
	case <-time.After(2 * time.Minute):
		// Not a timing bound: with the slot held by A's archive, B's SIF
		// waits for as long as the layer is stalled.
		t.Fatal("B's SIF was not placed while A's oldest layer was stalled")
	}
	px.SetStall(false)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(early) > 0 {
		t.Errorf("archive builds started before their image was in the store: %v", early)
	}
}
