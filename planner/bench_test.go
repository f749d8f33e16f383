package planner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/providers/registry"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/providers/store"
	"github.com/cachectl/cachectl/spec"
)

// BenchmarkPlanOffline10k measures `plan -refresh=false` over a root with
// 10,000 managed artifacts (generated spec, index and files): spec loading,
// scanning (stat of every file, walk for unmanaged files) and the diff.
func BenchmarkPlanOffline10k(b *testing.B) {
	const n = 10000
	dir := b.TempDir()
	root := filepath.Join(dir, "sif")
	var sb strings.Builder
	sb.WriteString("cache \"sif\" {\n  runtime = \"apptainer\"\n  root = \"" + root + "\"\n  images = [\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "    \"registry.example.com/team%d/image%d:v%d\",\n", i%50, i, i%7)
	}
	sb.WriteString("  ]\n}\n")
	specFile := filepath.Join(dir, "cachectl.hcl")
	if err := os.WriteFile(specFile, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	m, diags := spec.Load(specFile, spec.Options{})
	if diags.HasErrors() {
		b.Fatal(diags.Error())
	}
	ix := &cacheroot.Index{Version: cacheroot.IndexVersion}
	for _, a := range m.Caches[0].Artifacts {
		p := filepath.Join(root, a.Name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(a.Ref), 0o644); err != nil {
			b.Fatal(err)
		}
		fi, _ := os.Stat(p)
		ix.Entries = append(ix.Entries, cacheroot.Entry{Name: a.Name, Ref: a.Ref, Digest: "sha256:00", Manifest: "sha256:00", Platform: "linux/amd64",
			Size: fi.Size(), ModTime: fi.ModTime(), Mode: 0o644, UID: os.Getuid(), GID: os.Getgid(), Builder: "sif", BuilderVersion: "1", Placed: time.Now()})
	}
	if err := cacheroot.EditIndex(context.Background(), root, spec.RuntimeApptainer, func(x *cacheroot.Index) error { *x = *ix; return nil }); err != nil {
		b.Fatal(err)
	}
	builder := func(spec.Runtime) BuilderInfo { return BuilderInfo{"sif", "1"} }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, diags := spec.Load(specFile, spec.Options{})
		if diags.HasErrors() {
			b.Fatal(diags.Error())
		}
		p, err := MakePlan(context.Background(), m, nil, Options{Builder: builder})
		if err != nil {
			b.Fatal(err)
		}
		if p.HasChanges() || len(p.Changes) != n {
			b.Fatalf("unexpected plan: %+v", p.Summary)
		}
	}
}

// BenchmarkRefresh500 resolves 500 distinct references (500 tags of small
// images) against the real registry on loopback, cold (empty blob store:
// HEAD + manifest + config each) and warm (manifests and configs in the
// store: one HEAD each).
func BenchmarkRefresh500(b *testing.B) {
	srv := registrytest.StartDistribution(b)
	img := registrytest.Image(b, 1, 1024, 1)
	var reqs []source.ResolveRequest
	for i := 0; i < 500; i++ {
		ref := fmt.Sprintf("%s/refresh/img%d:v1", srv.Addr, i%20)
		if i >= 20 {
			ref = fmt.Sprintf("%s/refresh/img%d:t%d", srv.Addr, i%20, i)
		}
		registrytest.Push(b, img, ref)
		reqs = append(reqs, source.ResolveRequest{Ref: ref, Platform: spec.DefaultPlatform})
	}
	run := func(b *testing.B, warm bool) {
		dir := b.TempDir()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			st, err := store.Open(filepath.Join(dir, fmt.Sprint(i)))
			if err != nil {
				b.Fatal(err)
			}
			c, err := registry.New(registry.Options{Cache: st})
			if err != nil {
				b.Fatal(err)
			}
			src := &registry.ImageSource{Client: c, Store: st}
			if warm {
				if _, err := src.ResolveAll(context.Background(), reqs); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			res, err := src.ResolveAll(context.Background(), reqs)
			if err != nil || len(res) != 500 {
				b.Fatalf("%d resolved: %v", len(res), err)
			}
		}
	}
	b.Run("cold", func(b *testing.B) { run(b, false) })
	b.Run("warm", func(b *testing.B) { run(b, true) })
}
