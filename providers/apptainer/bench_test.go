package apptainer

// Opt-in benchmark of the SIF and .sqsh builders against the pipeline the
// runtimes use (umoci unpack of an OCI layout, then mksquashfs of the rootfs
// directory with the same flags). Run:
//
//	CACHECTL_BENCH=1 go test -run TestBenchBuilders -v -timeout 60m ./providers/apptainer/
//
// CACHECTL_BENCH_MB (default 1024) sets the uncompressed image size,
// CACHECTL_BENCH_DIR (default a temp dir) keeps the generated layout between
// runs (CACHECTL_BENCH_GENONLY=1 only generates it). Each measured step runs in a child process (this test binary) so that
// its peak RSS is its own.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachectl/cachectl/providers/buildtest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/enroot"
	"github.com/cachectl/cachectl/providers/rootfs"
	"github.com/cachectl/cachectl/providers/squashfs"
)

const benchLayers = 8

// stepResult is what a child step reports.
type stepResult struct {
	Step        string
	WallSeconds float64
	SelfMaxRSS  int64 // KiB, the Go process
	Mksquashfs  []squashfs.ProcessStats
	OutBytes    int64
}

var words = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his from at which
but have an they you were her she there been one all we their has would when if so no what up out said about into than
them can only other new some could time these two may then do first any my now such like our over man me even most made
after also did many before must through back years where much your way well down should because each just those people
config value error return func package import struct type string int byte var const range select case default defer`)

// genLayer writes one gzip layer of about size bytes to path.
func genLayer(path string, idx int, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	rng := rand.New(rand.NewSource(int64(idx)))
	mt := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var written int64
	for d := 0; written < size; d++ {
		dir := fmt.Sprintf("layer%d/dir%03d/", idx, d)
		if err := tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt}); err != nil {
			return err
		}
		for i := 0; i < 40 && written < size; i++ {
			n := int64(1024 + rng.Intn(64<<10))
			if rng.Intn(20) == 0 {
				n = int64(1<<20 + rng.Intn(4<<20))
			}
			var buf bytes.Buffer
			switch k := rng.Intn(4); {
			case k < 2: // text-like
				for int64(buf.Len()) < n {
					buf.WriteString(words[rng.Intn(len(words))])
					if rng.Intn(12) == 0 {
						buf.WriteByte('\n')
					} else {
						buf.WriteByte(' ')
					}
				}
			case k == 2: // incompressible
				b := make([]byte, n)
				rng.Read(b)
				buf.Write(b)
			default: // structured binary with noise
				rec := make([]byte, 64)
				rng.Read(rec)
				for int64(buf.Len()) < n {
					rec[rng.Intn(64)] = byte(rng.Intn(256))
					buf.Write(rec)
				}
			}
			data := buf.Bytes()[:n]
			name := fmt.Sprintf("%sfile%03d", dir, i)
			if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: n, ModTime: mt, Uid: 1000, Gid: 1000}); err != nil {
				return err
			}
			if _, err := tw.Write(data); err != nil {
				return err
			}
			written += n
			if i%10 == 0 {
				if err := tw.WriteHeader(&tar.Header{Name: name + ".lnk", Typeflag: tar.TypeSymlink, Linkname: filepath.Base(name), ModTime: mt}); err != nil {
					return err
				}
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// benchLayout generates (once) the OCI layout with the benchmark image.
func benchLayout(t *testing.T, dir string, totalMB int) {
	if _, err := os.Stat(filepath.Join(dir, "layout", "index.json")); err == nil {
		return
	}
	t.Logf("generating %d MiB, %d-layer image in %s", totalMB, benchLayers, dir)
	var layers []v1.Layer
	for i := 0; i < benchLayers; i++ {
		p := filepath.Join(dir, fmt.Sprintf("layer%d.tar.gz", i))
		if err := genLayer(p, i, int64(totalMB)<<20/benchLayers); err != nil {
			t.Fatal(err)
		}
		l, err := tarball.LayerFromFile(p, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Config = v1.Config{Env: []string{"PATH=/usr/bin:/bin"}, Cmd: []string{"/bin/sh"}}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	lp, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "bench"})); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < benchLayers; i++ {
		os.Remove(filepath.Join(dir, fmt.Sprintf("layer%d.tar.gz", i)))
	}
}

func loadBenchImage(dir string) (v1.Image, error) {
	idx, err := layout.ImageIndexFromPath(filepath.Join(dir, "layout"))
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	return idx.Image(m.Manifests[0].Digest)
}

// TestBenchChild runs one measured step in a child process.
func TestBenchChild(t *testing.T) {
	step := os.Getenv("CACHECTL_BENCH_STEP")
	if step == "" {
		t.Skip("benchmark child step")
	}
	dir, out := os.Getenv("CACHECTL_BENCH_DIR"), os.Getenv("CACHECTL_BENCH_OUT")
	img, err := loadBenchImage(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := providers.BuildRequest{Ref: "bench:latest", NormalizedName: "docker.io/library/bench:latest", Processors: 2}
	var res stepResult
	res.Step = step
	var st1, st2 squashfs.ProcessStats
	sifB := New(Apptainer, squashfs.WithStats(&st1))
	sqB := enroot.New(squashfs.WithStats(&st2))
	start := time.Now()
	switch step {
	case "sif":
		err = sifB.Build(ctx, img, req, out+".sif")
		res.Mksquashfs = []squashfs.ProcessStats{st1}
	case "sqsh":
		err = sqB.Build(ctx, img, req, out+".sqsh")
		res.Mksquashfs = []squashfs.ProcessStats{st2}
	case "both-one-flatten":
		var tree *rootfs.Tree
		if tree, err = rootfs.Flatten(ctx, img, rootfs.Options{}); err == nil {
			if err = sifB.BuildTree(ctx, tree, img, req, out+".sif"); err == nil {
				err = sqB.BuildTree(ctx, tree, img, req, out+".sqsh")
			}
		}
		res.Mksquashfs = []squashfs.ProcessStats{st1, st2}
	case "both-two-flattens":
		if err = sifB.Build(ctx, img, req, out+".sif"); err == nil {
			err = sqB.Build(ctx, img, req, out+".sqsh")
		}
		res.Mksquashfs = []squashfs.ProcessStats{st1, st2}
	case "flatten", "tar", "tar-filter", "tar-edit":
		// Breakdown: Flatten alone, plus WriteTar to io.Discard, plus a
		// squashfs.Filter (the old enroot path: tar decode and re-encode),
		// or plus TarOptions.EditHeader (enroot's path now).
		var tree *rootfs.Tree
		if tree, err = rootfs.Flatten(ctx, img, rootfs.Options{}); err == nil && step != "flatten" {
			topts := rootfs.TarOptions{}
			if step == "tar-edit" {
				topts.EditHeader = func(h *tar.Header) { h.Mode |= 0o400 }
			}
			w := func(ctx context.Context, w io.Writer) error { return tree.WriteTar(ctx, w, topts) }
			if step == "tar-filter" {
				w = squashfs.Pipe(&squashfs.Filter{Edit: func(*tar.Header) bool { return true }}, w)
			}
			err = w(ctx, io.Discard)
		}
		res.Mksquashfs = []squashfs.ProcessStats{{}}
	default:
		t.Fatalf("unknown step %s", step)
	}
	if err != nil {
		t.Fatal(err)
	}
	res.WallSeconds = time.Since(start).Seconds()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	res.SelfMaxRSS = ru.Maxrss
	for _, ext := range []string{".sif", ".sqsh"} {
		if fi, err := os.Stat(out + ext); err == nil {
			res.OutBytes += fi.Size()
		}
	}
	b, _ := json.Marshal(res)
	fmt.Printf("BENCHRESULT %s\n", b)
}

type timed struct {
	wall   float64
	maxRSS int64
	user   float64
	sys    float64
}

func runTimed(t *testing.T, name string, args ...string) timed {
	t.Helper()
	start := time.Now()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return timed{time.Since(start).Seconds(), ru.Maxrss, cmd.ProcessState.UserTime().Seconds(), cmd.ProcessState.SystemTime().Seconds()}
}

func runStep(t *testing.T, dir, work, step string) stepResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchChild$", "-test.v")
	cmd.Env = append(os.Environ(), "CACHECTL_BENCH_STEP="+step, "CACHECTL_BENCH_DIR="+dir, "CACHECTL_BENCH_OUT="+filepath.Join(work, step))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("step %s: %v\n%s", step, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "BENCHRESULT "); ok {
			var r stepResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				t.Fatal(err)
			}
			for _, ext := range []string{".sif", ".sqsh"} {
				os.Remove(filepath.Join(work, step) + ext)
			}
			return r
		}
	}
	t.Fatalf("step %s printed no result:\n%s", step, out)
	return stepResult{}
}

func TestBenchBuilders(t *testing.T) {
	if os.Getenv("CACHECTL_BENCH") == "" {
		t.Skip("set CACHECTL_BENCH=1 to run the builder benchmark")
	}
	buildtest.RequireTools(t, "mksquashfs", "umoci")
	totalMB := 1024
	if v := os.Getenv("CACHECTL_BENCH_MB"); v != "" {
		totalMB, _ = strconv.Atoi(v)
	}
	dir := os.Getenv("CACHECTL_BENCH_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	benchLayout(t, dir, totalMB)
	if os.Getenv("CACHECTL_BENCH_GENONLY") != "" {
		return
	}
	work := t.TempDir()
	loadavg := func() string { b, _ := os.ReadFile("/proc/loadavg"); return strings.TrimSpace(string(b)) }
	t.Logf("load average before: %s", loadavg())
	defer func() { t.Logf("load average after: %s", loadavg()) }()

	// Baseline: umoci unpack, then mksquashfs of the rootfs with the same flags.
	bundle := filepath.Join(work, "bundle")
	unpack := runTimed(t, "umoci", "unpack", "--rootless", "--image", filepath.Join(dir, "layout")+":bench", bundle)
	rootfsDir := filepath.Join(bundle, "rootfs")
	baseSIF := runTimed(t, "mksquashfs", rootfsDir, filepath.Join(work, "base.sqfs"), "-noappend", "-comp", "gzip", "-processors", "2", "-quiet", "-no-progress")
	os.Remove(filepath.Join(work, "base.sqfs"))
	baseSqsh := runTimed(t, "mksquashfs", rootfsDir, filepath.Join(work, "base.sqsh"), "-noappend", "-all-root", "-comp", "lzo", "-noD", "-processors", "2", "-quiet", "-no-progress")
	os.Remove(filepath.Join(work, "base.sqsh"))
	exec.Command("chmod", "-R", "u+rwX", bundle).Run()
	os.RemoveAll(bundle)

	sif := runStep(t, dir, work, "sif")
	sqsh := runStep(t, dir, work, "sqsh")
	one := runStep(t, dir, work, "both-one-flatten")
	two := runStep(t, dir, work, "both-two-flattens")

	report := func(name string, ours stepResult, base timed, mk timed) {
		total := base.wall + mk.wall
		t.Logf("%-5s ours %.1fs (cachectl RSS %d MiB, mksquashfs RSS %d MiB, out %d MiB) | baseline %.1fs (umoci %.1fs RSS %d MiB + mksquashfs %.1fs RSS %d MiB) | ratio %.2f",
			name, ours.WallSeconds, ours.SelfMaxRSS>>10, ours.Mksquashfs[0].MaxRSSKiB>>10, ours.OutBytes>>20,
			total, base.wall, base.maxRSS>>10, mk.wall, mk.maxRSS>>10, ours.WallSeconds/total)
	}
	report("SIF", sif, unpack, baseSIF)
	report("sqsh", sqsh, unpack, baseSqsh)
	t.Logf("SIF+sqsh: one Flatten %.1fs (RSS %d MiB), two Flattens %.1fs (RSS %d MiB)", one.WallSeconds, one.SelfMaxRSS>>10, two.WallSeconds, two.SelfMaxRSS>>10)
}
