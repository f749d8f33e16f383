package bench

// TestNGC builds an NGC-shaped image (registrytest.NGC) with `cachectl
// apply` and with the runtimes' own tools, cold (empty blob store and
// caches), one after the other in interleaved order, and records for each
// run its wall time, its CPU time (the process and every descendant), the
// peak RSS of its own process and of every mksquashfs it ran, and the
// size of what it wrote. Opt-in:
//
//	CACHECTL_BENCH=1 go test -count=1 -run '^TestNGC$' -v -timeout 0 ./bench/
//
// Settings (environment):
//
//	CACHECTL_NGC_SCALE     size of the image against the full shape (250,000 files,
//	                       40 layers, 4.9 GB of gzip layers); default 0.1
//	CACHECTL_NGC_FILES     the number of small files instead (e.g. 500000 for the
//	                       memory goal), the large files as the scale says
//	CACHECTL_BENCH_DIR     keeps the generated layers and the registry's storage
//	                       between runs (default: temporary)
//	CACHECTL_BENCH_RATES   registry bandwidths in MB/s, comma-separated; 0 = no
//	                       proxy (default "0")
//	CACHECTL_BENCH_REPS    repetitions of the interleaved round (default 1)
//	CACHECTL_BENCH_ONLY    subjects to run, comma-separated (default all): download,
//	                       cachectl-sif, apptainer, cachectl-sqsh, enroot,
//	                       cachectl-oci, skopeo, cachectl-all
//	CACHECTL_BENCH_OUT     a Markdown file the result tables are appended to
//	CACHECTL_BIN           the cachectl binary (default: built from this tree)
//
// The peers come from /opt/peers/env.sh (../shared/peers); without it
// their runs are skipped with a message and cachectl's still run.
// mksquashfs is run through a wrapper on PATH (GNU time) so that every
// mksquashfs process, ours and the peers', reports its own CPU and peak
// RSS.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// peersEnv puts the reference runtimes on PATH (../shared/peers).
const peersEnv = "/opt/peers/env.sh"

// subjects in the order one round runs them: each cachectl build next to
// the peer it is compared with.
var allSubjects = []string{"download", "cachectl-sif", "apptainer", "cachectl-sqsh", "enroot", "cachectl-oci", "skopeo", "cachectl-all"}

// mksq is what one mksquashfs process used.
type mksq struct {
	Wall, User, Sys float64
	MaxRSSKiB       int64
}

// run is one measured run.
type run struct {
	Subject string
	Rate    int64 // MB/s, 0 = unlimited
	Wall    float64
	// User and Sys are the CPU seconds of the process and all its
	// descendants.
	User, Sys float64
	// SelfHWMKiB is the peak RSS of the main process itself (VmHWM,
	// sampled every 20 ms); TreeMaxRSSKiB the largest peak of any process
	// of the run (rusage).
	SelfHWMKiB, TreeMaxRSSKiB int64
	Mksquashfs                []mksq
	OutBytes                  int64
	Load                      string
	Skipped                   string
}

func (r run) cpu() float64 { return r.User + r.Sys }

func (r run) mksqCPU() float64 {
	var s float64
	for _, m := range r.Mksquashfs {
		s += m.User + m.Sys
	}
	return s
}

func envInt(t *testing.T, key string, def int) int {
	if v := os.Getenv(key); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", key, v, err)
		}
		return n
	}
	return def
}

func TestNGC(t *testing.T) {
	if os.Getenv("CACHECTL_BENCH") == "" {
		t.Skip("benchmark; set CACHECTL_BENCH=1 to run (see BENCHMARKS.md)")
	}
	registrytest.RequireTool(t, "mksquashfs")
	registrytest.RequireTool(t, "/usr/bin/time")
	scale := 0.1
	if v := os.Getenv("CACHECTL_NGC_SCALE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("CACHECTL_NGC_SCALE=%q: %v", v, err)
		}
		scale = f
	}
	var rates []int64
	for _, s := range strings.Split(cmpOr(os.Getenv("CACHECTL_BENCH_RATES"), "0"), ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			t.Fatalf("CACHECTL_BENCH_RATES: %v", err)
		}
		rates = append(rates, n)
	}
	reps := envInt(t, "CACHECTL_BENCH_REPS", 1)
	subjects := allSubjects
	if v := os.Getenv("CACHECTL_BENCH_ONLY"); v != "" {
		subjects = strings.Split(v, ",")
	}
	dir := os.Getenv("CACHECTL_BENCH_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	work := t.TempDir()

	shape := registrytest.NGCFull().Scale(scale)
	name := fmt.Sprintf("%g", scale)
	if v := os.Getenv("CACHECTL_NGC_FILES"); v != "" {
		shape.Files = envInt(t, "CACHECTL_NGC_FILES", 0)
		name += "-" + v
	}
	start := time.Now()
	img, stats, err := registrytest.NGC(filepath.Join(dir, "ngc-"+name), shape)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image: %+v (%s)", stats, time.Since(start).Round(time.Second))

	srv := registrytest.StartDistribution(t, registrytest.WithStorage(filepath.Join(dir, "registry")))
	repo := "ngc/pytorch:" + name
	pushIfMissing(t, img, srv.Ref(repo))
	blobs := blobList(t, img)

	bin := cachectlBinary(t, work)
	wrap := mksquashfsWrapper(t, work)
	peers := loadPeers(t, wrap)

	var runs []run
	for _, rate := range rates {
		host := srv.Addr
		if rate > 0 {
			px := registrytest.StartThrottleProxy(t, srv.URL, rate*1_000_000)
			host = px.Addr
		}
		ref := host + "/" + repo
		for rep := 0; rep < reps; rep++ {
			for _, s := range allSubjects {
				if !contains(subjects, s) {
					continue
				}
				r := runSubject(t, s, ref, host, repo, blobs, bin, wrap, peers, work)
				r.Rate = rate
				t.Logf("%s", formatRun(r))
				runs = append(runs, r)
			}
		}
	}
	report := renderReport(shape, stats, runs)
	t.Logf("\n%s", report)
	if out := os.Getenv("CACHECTL_BENCH_OUT"); out != "" {
		f, err := os.OpenFile(out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fmt.Fprintln(f, report)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if strings.TrimSpace(v) == x {
			return true
		}
	}
	return false
}

// pushIfMissing pushes img to ref unless the registry has it already (a
// kept CACHECTL_BENCH_DIR).
func pushIfMissing(t *testing.T, img v1.Image, ref string) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := remote.Head(r); err == nil && d.Digest == want {
		return
	}
	start := time.Now()
	registrytest.Push(t, img, ref)
	t.Logf("pushed %s in %s", ref, time.Since(start).Round(time.Second))
}

// blobList returns the image's layer and config digests and sizes.
func blobList(t *testing.T, img v1.Image) []v1.Descriptor {
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return append([]v1.Descriptor{m.Config}, m.Layers...)
}

// cachectlBinary returns CACHECTL_BIN or builds cachectl from this tree.
func cachectlBinary(t *testing.T, work string) string {
	if b := os.Getenv("CACHECTL_BIN"); b != "" {
		abs, err := filepath.Abs(b)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	bin := filepath.Join(work, "cachectl")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/cachectl/cachectl/cmd/cachectl").CombinedOutput(); err != nil {
		t.Fatalf("building cachectl: %v\n%s", err, out)
	}
	return bin
}

// mksquashfsWrapper writes a directory holding a `mksquashfs` that runs
// the real one under GNU time, which writes "wall user sys maxrss" to a
// file of its own in work/mksq (enroot runs mksquashfs with a clean
// environment: the place is in the script). Runs are sequential, so the
// files a run leaves there are its mksquashfs processes.
func mksquashfsWrapper(t *testing.T, work string) string {
	real, err := exec.LookPath("mksquashfs")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(work, "wrap")
	for _, d := range []string{dir, filepath.Join(work, "mksq")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf("#!/bin/sh\nexec /usr/bin/time -o %s/$$.log -f '%%e %%U %%S %%M' %s \"$@\"\n", filepath.Join(work, "mksq"), real)
	if err := os.WriteFile(filepath.Join(dir, "mksquashfs"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// loadPeers returns the runtimes' environment (env.sh sourced into a
// clean environment, the mksquashfs wrapper first on PATH), or nil.
func loadPeers(t *testing.T, wrap string) []string {
	if _, err := os.Stat(peersEnv); err != nil {
		t.Logf("%s is absent: the runtimes' builds (apptainer, enroot) are skipped", peersEnv)
		return nil
	}
	scratch := t.TempDir()
	cmd := exec.Command("bash", "-c", ". "+peersEnv+" && env -0")
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8", "PEERS_CACHE=" + scratch}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sourcing %s: %v", peersEnv, err)
	}
	var env []string
	for _, kv := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "PWD" || k == "OLDPWD" || k == "SHLVL" || k == "_" || k == "PEERS_CACHE":
			continue
		case k == "PATH":
			kv = "PATH=" + wrap + ":" + v
		case strings.Contains(v, scratch):
			continue // cache directories: set per run
		}
		env = append(env, kv)
	}
	return env
}

// peerCacheEnv gives a run of the peers fresh, empty caches under dir.
func peerCacheEnv(dir string) []string {
	var env []string
	for _, kv := range []string{
		"APPTAINER_CACHEDIR=apptainer", "APPTAINER_TMPDIR=apptainer-tmp", "SINGULARITY_CACHEDIR=singularity", "SINGULARITY_TMPDIR=singularity-tmp",
		"ENROOT_CACHE_PATH=enroot/cache", "ENROOT_DATA_PATH=enroot/data", "ENROOT_RUNTIME_PATH=enroot/runtime", "ENROOT_TEMP_PATH=enroot/tmp", "ENROOT_CONFIG_PATH=enroot/config",
	} {
		k, v, _ := strings.Cut(kv, "=")
		p := filepath.Join(dir, v)
		os.MkdirAll(p, 0o755)
		env = append(env, k+"="+p)
	}
	return env
}

// runSubject runs one subject cold in a fresh directory and measures it.
func runSubject(t *testing.T, subject, ref, host, repo string, blobs []v1.Descriptor, bin, wrap string, peers []string, work string) run {
	t.Helper()
	dir, err := os.MkdirTemp(work, subject+"-")
	if err != nil {
		t.Fatal(err)
	}
	defer removeAll(dir)
	r := run{Subject: subject, Load: loadavg()}
	base := []string{"PATH=" + wrap + ":" + os.Getenv("PATH"), "HOME=" + dir}
	var cmd *exec.Cmd
	var outs []string
	switch subject {
	case "download":
		start := time.Now()
		n := download(t, host, repo, blobs)
		r.Wall = time.Since(start).Seconds()
		r.OutBytes = n
		return r
	case "cachectl-sif", "cachectl-sqsh", "cachectl-oci", "cachectl-all":
		spec := filepath.Join(dir, "cachectl.hcl")
		var b strings.Builder
		for _, c := range []struct{ name, runtime string }{{"sif", "apptainer"}, {"sqsh", "enroot"}, {"oci", "podman"}} {
			if subject == "cachectl-all" || subject == "cachectl-"+c.name {
				fmt.Fprintf(&b, "cache %q {\n  runtime = %q\n  root = %q\n  images = [%q]\n}\n", c.name, c.runtime, filepath.Join(dir, c.name), ref)
				outs = append(outs, filepath.Join(dir, c.name))
			}
		}
		if err := os.WriteFile(spec, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(bin, "-f", spec, "--store", filepath.Join(dir, "store"), "apply", "--auto-approve", "--progress", "none")
		cmd.Env = base
	case "apptainer", "enroot":
		if peers == nil {
			r.Skipped = "no " + peersEnv
			return r
		}
		env := append(append([]string(nil), peers...), peerCacheEnv(filepath.Join(dir, "peers"))...)
		if subject == "apptainer" {
			out := filepath.Join(dir, "out.sif")
			cmd = exec.Command(lookPath(env, "apptainer"), "build", "--disable-cache", "--no-https", out, "docker://"+ref)
			outs = append(outs, out)
		} else {
			out := filepath.Join(dir, "out.sqsh")
			cmd = exec.Command(lookPath(env, "enroot"), "import", "-o", out, "docker://"+host+"#"+repo)
			outs = append(outs, out)
		}
		cmd.Env = env
	case "skopeo":
		out := filepath.Join(dir, "out.tar")
		cmd = exec.Command("skopeo", "copy", "--src-tls-verify=false", "docker://"+ref, "oci-archive:"+out+":"+ref)
		cmd.Env = base
		outs = append(outs, out)
	default:
		t.Fatalf("unknown subject %q", subject)
	}
	cmd.Dir = dir
	measure(t, cmd, &r)
	r.Mksquashfs = readMksqLogs(t, filepath.Join(work, "mksq"))
	for _, o := range outs {
		r.OutBytes += treeBytes(o)
	}
	return r
}

func lookPath(env []string, prog string) string {
	for _, kv := range env {
		if dirs, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, d := range filepath.SplitList(dirs) {
				if fi, err := os.Stat(filepath.Join(d, prog)); err == nil && fi.Mode()&0o111 != 0 {
					return filepath.Join(d, prog)
				}
			}
		}
	}
	return prog
}

// removeAll removes a run's directory, also what an unprivileged unpack
// left without write permission.
func removeAll(dir string) {
	if os.RemoveAll(dir) != nil {
		exec.Command("chmod", "-R", "u+rwX", dir).Run()
		os.RemoveAll(dir)
	}
}

// measure runs cmd to its end, sampling its own VmHWM, and fills r.
func measure(t *testing.T, cmd *exec.Cmd, r *run) {
	t.Helper()
	var out tail
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	var hwm int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if v := readHWM(status); v > hwm {
				hwm = v
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	wg.Wait()
	r.Wall = time.Since(start).Seconds()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", r.Subject, strings.Join(cmd.Args, " "), err, out.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	r.User, r.Sys = cmd.ProcessState.UserTime().Seconds(), cmd.ProcessState.SystemTime().Seconds()
	r.TreeMaxRSSKiB = ru.Maxrss
	r.SelfHWMKiB = hwm
}

func readHWM(status string) int64 {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// tail keeps the last 16 KiB written to it (a failed run's output).
type tail struct {
	mu sync.Mutex
	b  []byte
}

func (w *tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > 16<<10 {
		w.b = w.b[len(w.b)-16<<10:]
	}
	return len(p), nil
}

func (w *tail) String() string { w.mu.Lock(); defer w.mu.Unlock(); return string(w.b) }

// readMksqLogs reads and removes what the wrapper wrote in dir; runs
// shorter than a second (`mksquashfs -version`) are left out.
func readMksqLogs(t *testing.T, dir string) []mksq {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var out []mksq
	for _, p := range files {
		b, err := os.ReadFile(p)
		os.Remove(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			var m mksq
			if n, _ := fmt.Sscanf(line, "%f %f %f %d", &m.Wall, &m.User, &m.Sys, &m.MaxRSSKiB); n == 4 && m.Wall >= 1 {
				out = append(out, m)
			}
		}
	}
	return out
}

// treeBytes is the size of the regular files at p (a file or a
// directory, without cachectl's .cachectl directory).
func treeBytes(p string) int64 {
	var n int64
	filepath.Walk(p, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if fi.IsDir() && fi.Name() == ".cachectl" {
			return filepath.SkipDir
		}
		if fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// download GETs every blob through host, four at a time (cachectl's
// default per registry), to nowhere: the pure download time.
func download(t *testing.T, host, repo string, blobs []v1.Descriptor) int64 {
	t.Helper()
	repoName, _, _ := strings.Cut(repo, ":")
	ctx := context.Background()
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total int64
	var firstErr error
	for _, d := range blobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/v2/%s/blobs/%s", host, repoName, d.Digest), nil)
			resp, err := http.DefaultClient.Do(req)
			var n int64
			if err == nil {
				n, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && n != d.Size {
					err = fmt.Errorf("blob %s: %d bytes, want %d", d.Digest, n, d.Size)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			total += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	return total
}

func mib(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }

func formatRun(r run) string {
	if r.Skipped != "" {
		return fmt.Sprintf("%s: skipped (%s)", r.Subject, r.Skipped)
	}
	s := fmt.Sprintf("%s @%d MB/s: %.1f s wall, %.1f s CPU, own peak RSS %s, largest process %s, out %.2f GB, load %s",
		r.Subject, r.Rate, r.Wall, r.cpu(), mib(r.SelfHWMKiB), mib(r.TreeMaxRSSKiB), float64(r.OutBytes)/1e9, r.Load)
	for _, m := range r.Mksquashfs {
		s += fmt.Sprintf("; mksquashfs %.1f s wall %.1f s CPU %s", m.Wall, m.User+m.Sys, mib(m.MaxRSSKiB))
	}
	return s
}

// renderReport is the Markdown of the runs: one row per run, then the
// goals' ratios per rate from the medians.
func renderReport(shape registrytest.NGCShape, st registrytest.NGCStats, runs []run) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Image: registrytest.NGC %d small + %d big files in %d layers (%d regular-file entries, %d symlinks, %d hard links, %d whiteouts, %d opaque dirs); %.2f GB of content, %.2f GB of gzip layers; %s, 2 CPUs.\n\n",
		shape.Files, shape.BigFiles, shape.Layers, st.Regular, st.Symlinks, st.HardLinks, st.Whiteouts, st.Opaques, float64(st.Content)/1e9, float64(st.Compressed)/1e9, time.Now().Format("2006-01-02"))
	b.WriteString("| run | registry | wall | CPU (all processes) | own peak RSS | largest process | mksquashfs: wall / CPU / peak RSS | output | load |\n|---|---|--:|--:|--:|--:|---|--:|---|\n")
	for _, r := range runs {
		rate := "loopback"
		if r.Rate > 0 {
			rate = fmt.Sprintf("%d MB/s", r.Rate)
		}
		if r.Skipped != "" {
			fmt.Fprintf(&b, "| %s | %s | skipped: %s | | | | | | |\n", r.Subject, rate, r.Skipped)
			continue
		}
		var ms []string
		for _, m := range r.Mksquashfs {
			ms = append(ms, fmt.Sprintf("%.1f s / %.1f s / %s", m.Wall, m.User+m.Sys, mib(m.MaxRSSKiB)))
		}
		own, largest := mib(r.SelfHWMKiB), mib(r.TreeMaxRSSKiB)
		if r.Subject == "download" {
			own, largest = "–", "–"
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f s | %.1f s | %s | %s | %s | %.2f GB | %s |\n", r.Subject, rate, r.Wall, r.cpu(), own, largest, strings.Join(ms, "; "), float64(r.OutBytes)/1e9, r.Load)
	}
	// Ratios from the medians.
	type key struct {
		s    string
		rate int64
	}
	by := map[key][]run{}
	var rates []int64
	for _, r := range runs {
		if r.Skipped != "" {
			continue
		}
		k := key{r.Subject, r.Rate}
		if len(by[k]) == 0 && !containsRate(rates, r.Rate) {
			rates = append(rates, r.Rate)
		}
		by[k] = append(by[k], r)
	}
	med := func(k key, f func(run) float64) (float64, bool) {
		rs := by[k]
		if len(rs) == 0 {
			return 0, false
		}
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2], true
	}
	wall := func(r run) float64 { return r.Wall }
	floor := func(r run) float64 { return r.mksqCPU() / 2 }
	b.WriteString("\n| registry | artifact | cachectl wall | floor (mksquashfs CPU / 2) | wall / floor | pure download | wall / download | peer | peer wall | cachectl / peer |\n|---|---|--:|--:|--:|--:|--:|---|--:|--:|\n")
	for _, rate := range rates {
		dl, hasDL := med(key{"download", rate}, wall)
		for _, p := range [][2]string{{"cachectl-sif", "apptainer"}, {"cachectl-sqsh", "enroot"}, {"cachectl-oci", "skopeo"}, {"cachectl-all", ""}} {
			w, ok := med(key{p[0], rate}, wall)
			if !ok {
				continue
			}
			fl, _ := med(key{p[0], rate}, floor)
			row := fmt.Sprintf("| %s | %s | %.1f s | ", rateName(rate), strings.TrimPrefix(p[0], "cachectl-"), w)
			if fl > 0 {
				row += fmt.Sprintf("%.1f s | %.2f | ", fl, w/fl)
			} else {
				row += "– | – | "
			}
			if hasDL {
				row += fmt.Sprintf("%.1f s | %.2f | ", dl, w/dl)
			} else {
				row += "– | – | "
			}
			peer, pw := p[1], 0.0
			if peer == "" {
				var sum float64
				all := true
				for _, q := range []string{"apptainer", "enroot", "skopeo"} {
					v, ok := med(key{q, rate}, wall)
					all = all && ok
					sum += v
				}
				if all {
					peer, pw = "sum of the three", sum
				}
			} else if v, ok := med(key{peer, rate}, wall); ok {
				pw = v
			}
			if pw > 0 {
				row += fmt.Sprintf("%s | %.1f s | %.2f |", peer, pw, w/pw)
			} else {
				row += "– | – | – |"
			}
			b.WriteString(row + "\n")
		}
	}
	return b.String()
}

func containsRate(xs []int64, x int64) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func rateName(r int64) string {
	if r == 0 {
		return "loopback"
	}
	return fmt.Sprintf("%d MB/s", r)
}
