package apply

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apptainer/sif/v2/pkg/sif"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/providers/registry"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/providers/squashfs"
	"github.com/cachectl/cachectl/providers/store"
	"github.com/cachectl/cachectl/spec"
)

// TestBuildWhileDownloading: with the real registry, builders and
// mksquashfs, the SIF and the .sqsh of one image are written while its
// oldest layer is still downloading (stalled halfway by a proxy): both
// builds stream the newer layers' files into mksquashfs before that layer
// arrives; once it does, both artifacts are complete.
func TestBuildWhileDownloading(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped with -short")
	}
	registrytest.RequireTool(t, "mksquashfs")
	registrytest.RequireTool(t, "unsquashfs")
	srv := registrytest.StartDistribution(t)
	const layerSize = 256 << 10
	img := registrytest.Image(t, 3, layerSize, 95)
	registrytest.Push(t, img, srv.Ref("stream/app:1"))
	layers, _ := img.Layers()
	oldest, _ := layers[0].Digest()
	px := registrytest.StartSlowProxy(t, srv.URL, 0, registrytest.MatchBlobDigests(oldest.String()))
	px.SetStall(true)
	ref := px.Addr + "/stream/app:1"

	dir := t.TempDir()
	m, st, src := loadWithRegistry(t, dir, `
cache "sif" {
  runtime = "apptainer"
  root    = "`+filepath.Join(dir, "sif")+`"
  images  = ["`+ref+`"]
}
cache "sqsh" {
  runtime = "enroot"
  root    = "`+filepath.Join(dir, "sqsh")+`"
  images  = ["`+ref+`"]
}
`, registry.Options{RequestTimeout: time.Second, TotalRetryTime: 5 * time.Minute}) // outlasts the wait below: the stall never gives up first
	ctx := context.Background()
	p, err := planner.MakePlan(ctx, m, src, planner.Options{Refresh: true, Builder: realBuilderInfo})
	if err != nil {
		t.Fatal(err)
	}
	// Both builds have written the two newer layers' files (and their
	// headers) before the oldest layer arrived.
	var mu sync.Mutex
	written := map[string]int64{}
	streamed := make(chan struct{})
	var once sync.Once
	progress := func(addr string) func(int64, int64) {
		return func(n, _ int64) {
			mu.Lock()
			defer mu.Unlock()
			written[addr] = n
			if len(written) == 2 && min(written[`cache.sif["`+ref+`"]`], written[`cache.sqsh["`+ref+`"]`]) >= 2*layerSize {
				once.Do(func() { close(streamed) })
			}
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, p, Deps{Resolver: src, Fetcher: src, Builder: realBuilder, BuildProgress: progress},
			Options{Spec: m, BuilderInfo: realBuilderInfo, BuildParallelism: 1})
		done <- err
	}()
	select {
	case <-streamed:
	case err := <-done:
		t.Fatalf("apply ended before the oldest layer arrived: %v", err)
	case <-time.After(2 * time.Minute):
		// Not a timing bound: without streaming nothing is ever written
		// while the layer is stalled.
		t.Fatalf("the builds wrote %v while the oldest layer was stalled", written)
	}
	if st.Has(oldest) {
		t.Fatal("the oldest layer is complete")
	}
	px.SetStall(false)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sifPath := filepath.Join(dir, "sif", ref)
	sqshPath := filepath.Join(dir, "sqsh", strings.NewReplacer("/", "+", ":", "+").Replace(ref)+".sqsh")
	f, err := sif.LoadContainerFromPath(sifPath, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	f.UnloadContainer()
	if err != nil {
		t.Fatal(err)
	}
	for path, off := range map[string]int64{sifPath: d.Offset(), sqshPath: 0} {
		entries, err := squashfs.List(ctx, path, off)
		if err != nil {
			t.Fatal(err)
		}
		files := 0
		for _, e := range entries {
			if strings.HasPrefix(e.Path, "/data/") && strings.HasSuffix(e.Path, ".bin") && e.Size == layerSize {
				files++
			}
		}
		if files != 3 {
			t.Errorf("%s holds %d of the 3 layers' files", path, files)
		}
	}
}

// loadWithRegistry loads the spec hcl (as dir/c.hcl) and opens a blob
// store in dir/store and a registry source over it with the client's opts.
func loadWithRegistry(t *testing.T, dir, hcl string, opts registry.Options) (*spec.Model, *store.Store, *registry.ImageSource) {
	t.Helper()
	m, diags := spec.LoadSources([]spec.Source{{Filename: filepath.Join(dir, "c.hcl"), Bytes: []byte(hcl)}}, spec.Options{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	st, err := store.Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := registry.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m, st, &registry.ImageSource{Client: c, Store: st}
}
