package conformance

import (
	"context"
	"debug/elf"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/conformance/corpus"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the runtimes (needs "+peersEnv+"; make conformance-goldens)")

// shapesEnv names the shapes to check (comma-separated globs, "*" any
// text); unset or empty means every shape. With -update only those
// shapes' goldens are rewritten (make conformance-goldens SHAPES=a,b).
const shapesEnv = "CACHECTL_CONFORMANCE_SHAPES"

// selectedShapes returns the corpus's shapes that shapesEnv selects; it
// fails when a glob selects none.
func selectedShapes(t *testing.T) []corpus.Shape {
	t.Helper()
	all := corpus.Shapes()
	sel := strings.TrimSpace(os.Getenv(shapesEnv))
	if sel == "" {
		return all
	}
	var out []corpus.Shape
	for _, g := range strings.Split(sel, ",") {
		g = strings.TrimSpace(g)
		if !slices.ContainsFunc(all, func(s corpus.Shape) bool { return glob(g, s.Name) }) {
			t.Fatalf("%s=%q: %q names no shape of the corpus", shapesEnv, sel, g)
		}
	}
	for _, s := range all {
		if slices.ContainsFunc(strings.Split(sel, ","), func(g string) bool { return glob(strings.TrimSpace(g), s.Name) }) {
			out = append(out, s)
		}
	}
	t.Logf("%s=%q: checking %d of %d shapes", shapesEnv, sel, len(out), len(all))
	return out
}

// shapeWorkers is how many shapes are checked at once.
const shapeWorkers = 4

// runtimes are the SIF and .sqsh runtimes compared file by file; podman is
// compared by behaviour (its archive holds the image's own blobs).
var runtimes = []string{"apptainer", "singularity", "enroot"}

func goldenPath(shape, runtime string) string {
	return filepath.Join("testdata", "golden", shape, runtime+".txt")
}

// TestConformance is the differential suite (see the package doc).
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite skipped with -short")
	}
	for _, tool := range []string{"mksquashfs", "unsquashfs", "sqfs2tar", "go"} {
		registrytest.RequireTool(t, tool)
	}
	ctx := registrytest.Context(t)
	p := loadPeers(t)
	if p == nil {
		if *update {
			t.Fatalf("-update needs the runtimes (%s): install them with ../shared/peers/install.sh", peersEnv)
		}
		t.Logf("%s is absent (or CACHECTL_CONFORMANCE_LIVE=0): checking cachectl's artifacts against the committed goldens only; the live part (building and running with Apptainer, SingularityCE, Enroot and podman) is skipped", peersEnv)
	} else if _, err := os.Lstat(corpus.HostGuard); err == nil {
		t.Fatalf("%s exists on this host: the suite's escaping-symlink shapes would let Apptainer write there; remove it first", corpus.HostGuard)
	}
	work := t.TempDir()
	start := time.Now()
	kit := buildKit(t, work, p != nil)
	t.Logf("kit: %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	srv := registrytest.StartDistribution(t)
	var aliases []string // other addresses of the registry, for the normalizer
	if p != nil {
		p.enrootRegistry = enrootProxy(t, srv.Addr)
		aliases = append(aliases, p.enrootRegistry)
	}
	shapes := selectedShapes(t)
	type pushed struct {
		shape corpus.Shape
		ref   string
		norm  normalizer
	}
	var all []pushed
	for _, s := range shapes {
		img, err := s.Image(kit)
		if err != nil {
			t.Fatal(err)
		}
		ref := srv.Addr + "/conf/" + s.Name + ":1"
		digest := registrytest.Push(t, img, ref)
		all = append(all, pushed{shape: s, ref: ref, norm: normalizerFor(t, srv.Addr, aliases, img, digest)})
	}

	t.Logf("registry and %d images: %s", len(all), time.Since(start).Round(time.Millisecond))
	start = time.Now()
	caches := applyCachectl(t, work, srv.Addr, shapes)
	t.Logf("cachectl apply: %s", time.Since(start).Round(time.Millisecond))
	l := newLedger(deviations)
	// The live part mostly waits for the runtimes' processes: shapes run
	// in workers of their own, independent of go test's -parallel.
	t.Run("shapes", func(t *testing.T) {
		work := make(chan pushed)
		var wg sync.WaitGroup
		for range shapeWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ps := range work {
					t.Run(ps.shape.Name, func(t *testing.T) {
						checkShape(t, ctx, p, l, ps.shape.Name, ps.ref, ps.norm, caches)
					})
				}
			}()
		}
		for _, ps := range all {
			work <- ps
		}
		close(work)
		wg.Wait()
	})
	if p != nil {
		if _, err := os.Lstat(corpus.HostGuard); err == nil {
			os.RemoveAll(corpus.HostGuard)
			t.Errorf("a runtime wrote %s on the host (followed an image's symlink out of its root); removed it", corpus.HostGuard)
		}
	}
	if !t.Failed() && !*update {
		l.checkStale(t)
	}
}

// checkShape compares cachectl's artifacts of one shape with the goldens
// and, live, with the runtimes' own.
func checkShape(t *testing.T, ctx context.Context, p *peers, l *ledger, shape, ref string, norm normalizer, caches map[string]string) {
	dir := t.TempDir()
	for _, rt := range runtimes {
		art := artifactPath(caches[rt], rt, ref)
		var got doc
		if _, err := os.Stat(art); err != nil {
			got = doc{"build": "cachectl built nothing: " + err.Error()}
		} else if rt == "enroot" {
			got = sqshDoc(t, art, norm)
		} else {
			got = sifDoc(t, art, norm)
		}
		var want doc
		if p != nil {
			var out string
			want, out = p.runtimeBuild(t, ctx, rt, ref, dir, norm)
			if out != "" {
				for k, v := range p.behaviour(ctx, rt, out, norm) {
					want[k] = v
				}
			}
			if _, ok := got["build"]; ok && got["build"] == "ok" {
				for k, v := range p.behaviour(ctx, rt, art, norm) {
					got[k] = v
				}
			}
			checkGolden(t, shape, rt, want)
		} else {
			var err error
			if want, err = readDoc(goldenPath(shape, rt)); err != nil {
				t.Fatalf("%v (regenerate with make conformance-goldens on a machine with the runtimes)", err)
			}
			for k := range want {
				if kind(k) == "run" {
					delete(want, k)
				}
			}
		}
		l.compare(t, shape, rt, runtimeName[rt]+"'s", got, want)
	}
	if p != nil {
		art := artifactPath(caches["podman"], "podman", ref)
		want := p.podman(ctx, ref, "", norm)
		got := p.podman(ctx, ref, art, norm)
		checkGolden(t, shape, "podman", want)
		l.compare(t, shape, "podman", "podman's (pulled from the registry)", got, want)
	}
}

var runtimeName = map[string]string{"apptainer": "Apptainer 1.5.3", "singularity": "SingularityCE 4.5.1", "enroot": "Enroot 4.1.2", "podman": "podman"}

// checkGolden writes (-update) or checks the golden of the runtime's live
// output: a golden that no longer matches the installed runtime is stale.
func checkGolden(t *testing.T, shape, runtime string, live doc) {
	t.Helper()
	path := goldenPath(shape, runtime)
	if *update {
		if err := live.write(path); err != nil {
			t.Fatal(err)
		}
		return
	}
	old, err := readDoc(path)
	if err != nil {
		t.Errorf("%v: run make conformance-goldens", err)
		return
	}
	var diff []string
	for k, v := range live {
		if old[k] != v {
			diff = append(diff, k)
		}
	}
	for k := range old {
		if _, ok := live[k]; !ok {
			diff = append(diff, k)
		}
	}
	if len(diff) > 0 {
		if len(diff) > 10 {
			diff = diff[:10]
		}
		t.Errorf("%s: %s's output differs from the golden at %v: the golden is stale (make conformance-goldens) or the runtime changed", shape, runtimeName[runtime], diff)
	}
}

// artifactPath is where cachectl places ref in a cache root (README "Where
// an image lands").
func artifactPath(root, runtime, ref string) string {
	switch runtime {
	case "enroot":
		return filepath.Join(root, strings.NewReplacer("/", "+", ":", "+").Replace(ref)+".sqsh")
	case "podman":
		return filepath.Join(root, strings.NewReplacer("/", "+", ":", "+").Replace(ref))
	}
	return filepath.Join(root, ref)
}

// normalizerFor replaces the registry address (and its aliases: the
// proxy Enroot pulls through) and the image's digests.
func normalizerFor(t *testing.T, addr string, aliases []string, img v1.Image, digest v1.Hash) normalizer {
	t.Helper()
	pairs := []string{addr, "REGISTRY", digest.String(), "MANIFEST-DIGEST", digest.Hex, "MANIFEST-DIGEST"}
	for _, a := range aliases {
		pairs = append(pairs, a, "REGISTRY")
	}
	if cd, err := img.ConfigName(); err == nil {
		pairs = append(pairs, cd.String(), "CONFIG-DIGEST", cd.Hex, "CONFIG-DIGEST")
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		d, _ := l.Digest()
		id, _ := l.DiffID()
		pairs = append(pairs, d.String(), fmt.Sprintf("LAYER-%d-DIGEST", i), id.String(), fmt.Sprintf("LAYER-%d-DIFFID", i))
	}
	return normalizer{pairs: pairs}
}

// buildKit returns the kit layer's programs: live, a static busybox from
// the host and the probe built for the containers; otherwise placeholders
// (the suite describes kit files by path only, and runs nothing).
func buildKit(t *testing.T, dir string, live bool) corpus.Kit {
	t.Helper()
	if !live {
		return corpus.Kit{Busybox: []byte("kit placeholder: busybox\n"), Probe: []byte("kit placeholder: probe\n")}
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox (static) is needed for the live suite: %v (../shared/peers/install.sh installs busybox-static)", err)
	}
	if f, err := elf.Open(bb); err != nil {
		t.Fatalf("%s: %v", bb, err)
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Fatalf("%s is dynamically linked: install busybox-static", bb)
			}
		}
		f.Close()
	}
	probe := filepath.Join(dir, "probe")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", probe, "github.com/cachectl/cachectl/conformance/probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the probe: %v\n%s", err, out)
	}
	bbBytes, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	probeBytes, err := os.ReadFile(probe)
	if err != nil {
		t.Fatal(err)
	}
	return corpus.Kit{Busybox: bbBytes, Probe: probeBytes}
}

// applyCachectl builds the real cachectl and applies a spec with one cache
// per runtime holding every shape; it returns the cache roots by runtime.
func applyCachectl(t *testing.T, dir, addr string, shapes []corpus.Shape) map[string]string {
	t.Helper()
	bin := filepath.Join(dir, "cachectl")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/cachectl/cachectl/cmd/cachectl").CombinedOutput(); err != nil {
		t.Fatalf("building cachectl: %v\n%s", err, out)
	}
	var imgs []string
	for _, s := range shapes {
		imgs = append(imgs, fmt.Sprintf("%q", addr+"/conf/"+s.Name+":1"))
	}
	roots := map[string]string{}
	var spec strings.Builder
	fmt.Fprintf(&spec, "registry %q {\n  insecure = true\n}\n\nlocals {\n  shapes = [%s]\n}\n", addr, strings.Join(imgs, ", "))
	for _, rt := range append(runtimes, "podman") {
		roots[rt] = filepath.Join(dir, "caches", rt)
		fmt.Fprintf(&spec, "\ncache %q {\n  runtime = %q\n  root    = %q\n  images  = local.shapes\n}\n", rt, rt, roots[rt])
	}
	specFile := filepath.Join(dir, "conformance.hcl")
	if err := os.WriteFile(specFile, []byte(spec.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "apply", "--auto-approve", "--progress", "none", "--no-color", "-f", specFile, "--store", filepath.Join(dir, "store"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		// Artifacts that failed show up as "cachectl built nothing".
		t.Logf("cachectl apply: %v\n%s", err, lastLines(string(out), 40))
	}
	return roots
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
