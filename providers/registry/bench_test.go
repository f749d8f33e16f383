package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/registry"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/providers/store"
)

// childResult is what TestPullBenchChild prints.
type childResult struct {
	Seconds float64      `json:"seconds"`
	Stats   source.Stats `json:"stats"`
}

// TestPullBenchChild is the subprocess side of TestPullBench: it pulls one
// image into a store and prints the result as JSON, so that the parent can
// read its peak RSS from rusage.
func TestPullBenchChild(t *testing.T) {
	ref := os.Getenv("CACHECTL_PULLBENCH_REF")
	if ref == "" {
		t.Skip("subprocess of TestPullBench only")
	}
	st, err := store.Open(os.Getenv("CACHECTL_PULLBENCH_STORE"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx := context.Background()
	res, err := c.Resolve(ctx, ref, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	_, stats, err := c.Pull(ctx, ref, res.Manifest, st)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(childResult{Seconds: time.Since(start).Seconds(), Stats: stats})
	fmt.Printf("PULLBENCH %s\n", b)
}

// TestPullBench compares pulling a ~1 GiB, 8-layer image from the real
// loopback registry into an empty store with skopeo copy to an OCI layout.
// Opt-in: CACHECTL_BENCH=1. Results go to the test log and, when
// CACHECTL_BENCH_OUT names a file, as Markdown to that file.
func TestPullBench(t *testing.T) {
	if os.Getenv("CACHECTL_BENCH") == "" {
		t.Skip("benchmark; set CACHECTL_BENCH=1 to run")
	}
	layerSize := int64(128 << 20)
	if s := os.Getenv("CACHECTL_BENCH_LAYER_MIB"); s != "" {
		n, _ := strconv.Atoi(s)
		layerSize = int64(n) << 20
	}
	skopeo := registrytest.RequireTool(t, "skopeo")
	srv := registrytest.StartDistribution(t)
	ref := srv.Ref("bench/big:1")
	pushStart := time.Now()
	img := registrytest.Image(t, 8, layerSize, 99)
	registrytest.Push(t, img, ref)
	total := blobSizes(t, img)
	t.Logf("pushed %s (%d bytes of config+layers) in %s", ref, total, time.Since(pushStart).Round(time.Millisecond))

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	storeDir := filepath.Join(t.TempDir(), "store")
	child := func() (childResult, time.Duration, int64) {
		args := []string{"-test.run=^TestPullBenchChild$", "-test.count=1", "-test.timeout=20m"}
		// E.g. CACHECTL_PULLBENCH_CHILD_ARGS=-test.cpuprofile=/tmp/cpu.out
		args = append(args, strings.Fields(os.Getenv("CACHECTL_PULLBENCH_CHILD_ARGS"))...)
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), "CACHECTL_PULLBENCH_REF="+ref, "CACHECTL_PULLBENCH_STORE="+storeDir, "CACHECTL_BENCH=")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("pull subprocess: %v\n%s", err, out.String())
		}
		wall := time.Since(start)
		maxrss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
		var res childResult
		for _, line := range strings.Split(out.String(), "\n") {
			if rest, ok := strings.CutPrefix(line, "PULLBENCH "); ok {
				if err := json.Unmarshal([]byte(rest), &res); err != nil {
					t.Fatal(err)
				}
			}
		}
		return res, wall, maxrss
	}
	first, firstWall, rss := child()
	second, secondWall, rss2 := child()

	ociDir := filepath.Join(t.TempDir(), "oci")
	skopeoArgs := []string{"copy", "--src-tls-verify=false", "docker://" + ref, "oci:" + ociDir + ":bench"}
	start := time.Now()
	if out, err := exec.Command(skopeo, skopeoArgs...).CombinedOutput(); err != nil {
		t.Fatalf("skopeo: %v\n%s", err, out)
	}
	skopeoWall := time.Since(start)

	ratio := firstWall.Seconds() / skopeoWall.Seconds()
	report := fmt.Sprintf(`| what | result |
|---|---|
| image | 8 layers × %d MiB random data (gzip), %.2f GiB config+layers |
| cachectl pull into an empty store (subprocess wall time) | %.2f s (pull itself %.2f s), %.1f MiB/s |
| skopeo copy docker:// → oci: | %.2f s |
| ratio cachectl / skopeo | %.2f |
| peak RSS of the cachectl pull process | %.1f MiB |
| second pull into the same store | %.2f s, %d bytes downloaded, %d blobs downloaded, %d cached (peak RSS %.1f MiB) |
`, layerSize>>20, float64(total)/(1<<30),
		firstWall.Seconds(), first.Seconds, float64(first.Stats.BytesDownloaded)/(1<<20)/first.Seconds, skopeoWall.Seconds(), ratio,
		float64(rss)/1024, secondWall.Seconds(), second.Stats.BytesDownloaded, second.Stats.BlobsDownloaded, second.Stats.BlobsCached, float64(rss2)/1024)
	t.Logf("\n%s\nfirst pull stats: %+v\nskopeo %s", report, first.Stats, strings.Join(skopeoArgs, " "))
	if out := os.Getenv("CACHECTL_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if second.Stats.BytesDownloaded != 0 {
		t.Errorf("second pull downloaded %d bytes", second.Stats.BytesDownloaded)
	}
	if first.Stats.BytesDownloaded < total {
		t.Errorf("first pull downloaded %d bytes < %d", first.Stats.BytesDownloaded, total)
	}
}
