package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// TestBundleSizeMeasure measures the bundle's dedupe: N images on a shared
// base pushed to the real registry; one bundle of all of them versus the
// per-image archives (the Podman OCI archives apply builds from that
// bundle, one self-contained file per image). Opt-in: CACHECTL_BENCH=1.
//
//	CACHECTL_BENCH=1 go test ./cmd/cachectl -run TestBundleSizeMeasure -v
func TestBundleSizeMeasure(t *testing.T) {
	if os.Getenv("CACHECTL_BENCH") == "" {
		t.Skip("measurement; set CACHECTL_BENCH=1")
	}
	registrytest.RequireTool(t, "mksquashfs")
	srv := registrytest.StartDistribution(t)
	const (
		images    = 6
		baseLays  = 2
		baseSize  = 16 << 20
		extraSize = 4 << 20
	)
	plat := v1.Platform{OS: "linux", Architecture: "amd64"}
	base := registrytest.Image(t, baseLays, baseSize, 1)
	var refs []string
	for i := 0; i < images; i++ {
		ref := fmt.Sprintf("%s/bench/img%d:1", srv.Addr, i)
		registrytest.Push(t, registrytest.ImageOn(t, base, plat, 1, extraSize, int64(100+i)), ref)
		refs = append(refs, ref)
	}
	dir := t.TempDir()
	specFile := func(n int) string {
		var q []string
		for _, r := range refs[:n] {
			q = append(q, fmt.Sprintf("%q", r))
		}
		p := filepath.Join(dir, fmt.Sprintf("spec%d.hcl", n))
		os.WriteFile(p, []byte(fmt.Sprintf("cache \"oci\" {\n  runtime = \"podman\"\n  root = %q\n  images = [%s]\n}\n", filepath.Join(dir, "oci"), strings.Join(q, ", "))), 0o644)
		return p
	}
	run := func(args ...string) (string, time.Duration) {
		t.Helper()
		var out, errb bytes.Buffer
		start := time.Now()
		if code := Run(context.Background(), append([]string{"--store", filepath.Join(dir, "store")}, args...), strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("cachectl %v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
		return out.String(), time.Since(start)
	}
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	first := filepath.Join(dir, "first.tar")
	_, tFirst := run("-f", specFile(images-1), "bundle", "-o", first, "--progress", "none")
	full := filepath.Join(dir, "full.tar")
	_, tBundle := run("-f", specFile(images), "bundle", "-o", full, "--progress", "none")
	inc := filepath.Join(dir, "inc.tar")
	run("-f", specFile(images), "bundle", "-o", inc, "--since", first, "--progress", "none")
	_, tVerify := run("bundle", "verify", full)

	// the cluster side: an empty store, apply from the bundle
	os.RemoveAll(filepath.Join(dir, "store"))
	_, tApply := run("-f", specFile(images), "apply", "--auto-approve", "--progress", "none", "--source", full)
	entries, err := os.ReadDir(filepath.Join(dir, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	var perImage int64
	n := 0
	for _, e := range entries {
		if e.Type().IsRegular() {
			perImage += size(filepath.Join(dir, "oci", e.Name()))
			n++
		}
	}
	if n != images {
		t.Fatalf("%d archives, want %d", n, images)
	}
	fullSize, incSize := size(full), size(inc)
	t.Logf("\n| what | bytes | MiB |\n|---|---:|---:|\n"+
		"| sum of %d per-image Podman OCI archives | %d | %.1f |\n"+
		"| one bundle of the %d images | %d | %.1f |\n"+
		"| ratio bundle / per-image sum | %.3f | |\n"+
		"| incremental bundle (6th image, -since a bundle of 5) | %d | %.1f |\n"+
		"\ntimes: bundle of 5 (pull+write) %s; bundle of 6 (1 image to pull) %s; verify %s; apply from bundle into an empty store (6 OCI archives) %s",
		images, perImage, float64(perImage)/(1<<20), images, fullSize, float64(fullSize)/(1<<20),
		float64(fullSize)/float64(perImage), incSize, float64(incSize)/(1<<20),
		tFirst.Round(time.Millisecond), tBundle.Round(time.Millisecond), tVerify.Round(time.Millisecond), tApply.Round(time.Millisecond))
	if fullSize >= perImage/2 {
		t.Errorf("bundle %d bytes is not much smaller than the per-image archives (%d)", fullSize, perImage)
	}
}
