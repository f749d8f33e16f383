package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/spec"
)

const crashSpec = `
variable "registry" {}
variable "root" {}
flavor "all" {
  images = [for i in range(4) : "${var.registry}/crash/img${i}:1"]
}
cache "sif" {
  runtime = "apptainer"
  root    = "${var.root}/sif"
  flavors = ["all"]
  prune   = true
}
cache "sqsh" {
  runtime = "enroot"
  root    = "${var.root}/sqsh"
  flavors = ["all"]
  prune   = true
}
cache "oci" {
  runtime = "podman"
  root    = "${var.root}/oci"
  flavors = ["all"]
  prune   = true
}
`

type cliRunner struct {
	t    *testing.T
	bin  string
	env  []string
	spec string
}

func newRunner(t *testing.T, registryAddr, root string) *cliRunner {
	bin, err := exec.LookPath("cachectl")
	if err != nil {
		t.Fatalf("cachectl test binary not on PATH: %v", err)
	}
	specFile := filepath.Join(t.TempDir(), "crash.hcl")
	if err := os.WriteFile(specFile, []byte(crashSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "CACHECTL_VAR_registry="+registryAddr, "CACHECTL_VAR_root="+root, "CACHECTL_STORE="+filepath.Join(t.TempDir(), "store"))
	return &cliRunner{t: t, bin: bin, env: env, spec: specFile}
}

func (r *cliRunner) cmd(args ...string) *exec.Cmd {
	c := exec.Command(r.bin, append([]string{"-f", r.spec}, args...)...)
	c.Env = r.env
	return c
}

func (r *cliRunner) run(args ...string) (string, int) {
	var out bytes.Buffer
	c := r.cmd(args...)
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatal(err)
	}
	return out.String(), code
}

// checkFinalPaths asserts that every file at a final path under the roots
// is a complete, valid artifact of its cache's format, and that every index
// parses.
func checkFinalPaths(t *testing.T, root string) int {
	t.Helper()
	n := 0
	for _, c := range []struct {
		dir string
		rt  spec.Runtime
	}{{"sif", spec.RuntimeApptainer}, {"sqsh", spec.RuntimeEnroot}, {"oci", spec.RuntimePodman}} {
		dir := filepath.Join(root, c.dir)
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			continue
		}
		if _, err := cacheroot.ReadIndexAt(dir, c.rt); err != nil {
			t.Fatalf("index of %s unreadable after a crash: %v", dir, err)
		}
		b, _ := builderFor(c.rt)
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if d.IsDir() {
				if d.Name() == spec.IndexDir {
					return filepath.SkipDir
				}
				return nil
			}
			n++
			if err := b.Verify(context.Background(), p); err != nil {
				t.Fatalf("broken file at a final path after a crash: %s: %v", p, err)
			}
			return nil
		})
	}
	return n
}

// TestCrashSafety kills cachectl apply with SIGKILL at random moments (at
// least 20 times) over a 12-artifact spec, and checks after each kill that
// every file at a final path is complete and valid; a final apply converges
// to "No changes".
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	srv := startCrashRegistry(t)
	root := t.TempDir()
	r := newRunner(t, srv.Addr, root)
	// Measure a full apply into a scratch root to spread the kills over it.
	scratch := newRunner(t, srv.Addr, t.TempDir())
	start := time.Now()
	if out, code := scratch.run("apply", "--auto-approve", "--progress", "none"); code != 0 {
		t.Fatalf("apply failed (%d):\n%s", code, out)
	}
	full := time.Since(start)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("full apply takes %v; kill seed %d", full, seed)
	// Only kills that hit a running apply count: a process that already
	// exited is a zombie until waited for, and signalling it "succeeds".
	kills, midway, tries := 0, 0, 0
	placed := 0
	for ; (kills < 20 || midway < 5) && tries < 200; tries++ {
		c := r.cmd("apply", "--auto-approve", "--progress", "none")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int63n(int64(full))))
		c.Process.Signal(syscall.SIGKILL)
		c.Wait()
		before := placed
		placed = checkFinalPaths(t, root)
		if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			kills++
			if placed > before {
				midway++ // killed after it had placed some artifacts
			}
		} else {
			// The apply ended before the kill (it had less to do than the
			// measured one, or the machine got faster): aim earlier.
			full = max(full*4/5, 100*time.Millisecond)
		}
		// Keep work to do: remove placed files, move a tag now and then.
		for n := 2 + rng.Intn(5); n > 0 && placed > 0; n-- {
			removeRandomArtifact(t, root, rng)
			placed--
		}
		if rng.Intn(4) == 0 {
			pushBig(t, fmt.Sprintf("%s/crash/img%d:1", srv.Addr, rng.Intn(4)), 10+tries)
		}
	}
	t.Logf("%d kills landed mid-apply (%d after some artifacts were placed) in %d tries", kills, midway, tries)
	if midway < 5 {
		t.Fatalf("only %d kills landed after placement had started", midway)
	}
	if kills < 20 {
		t.Fatalf("only %d kills landed", kills)
	}
	if out, code := r.run("apply", "--auto-approve", "--progress", "none"); code != 0 {
		t.Fatalf("final apply failed (%d):\n%s", code, out)
	}
	if n := checkFinalPaths(t, root); n != 12 {
		t.Fatalf("%d artifacts after the final apply, want 12", n)
	}
	out, code := r.run("plan", "--detailed-exitcode")
	if code != 0 || !strings.Contains(out, "No changes") {
		t.Fatalf("not converged (exit %d):\n%s", code, out)
	}
	for _, d := range []string{"sif", "sqsh", "oci"} {
		ents, _ := os.ReadDir(filepath.Join(root, d, spec.IndexDir, "staging"))
		if len(ents) != 0 {
			t.Errorf("%s: staging not cleaned: %v", d, ents)
		}
		if tmps, _ := filepath.Glob(filepath.Join(root, d, spec.IndexDir, ".index.json.tmp-*")); len(tmps) != 0 {
			t.Errorf("%s: temporary index files left: %v", d, tmps)
		}
	}
}

func removeRandomArtifact(t *testing.T, root string, rng *rand.Rand) {
	var files []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == spec.IndexDir {
			return filepath.SkipDir
		}
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) > 0 {
		os.Remove(files[rng.Intn(len(files))])
	}
}

// startCrashRegistry starts the real registry with the four images of
// crashSpec.
func startCrashRegistry(t *testing.T) *registrytest.Server {
	t.Helper()
	registrytest.RequireTool(t, "mksquashfs")
	srv := registrytest.StartDistribution(t)
	for i := 0; i < 4; i++ {
		pushBig(t, fmt.Sprintf("%s/crash/img%d:1", srv.Addr, i), i)
	}
	return srv
}

// pushBig pushes an image with a few MiB of content so that builds take long
// enough for kills to land mid-way.
func pushBig(t *testing.T, ref string, seed int) {
	t.Helper()
	img := registrytest.Image(t, 3, 1<<20, int64(seed))
	registrytest.Push(t, img, ref)
}

// TestLockContention: an apply waits for or fails on another holder of a
// root's lock, naming it; two applies at once both end correct.
func TestLockContention(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	srv := startCrashRegistry(t)
	root := t.TempDir()
	r := newRunner(t, srv.Addr, root)
	sif := filepath.Join(root, "sif")
	l, err := cacheroot.Begin(context.Background(), sif, cacheroot.Settings{Runtime: spec.RuntimeApptainer, DirMode: 0o755, UID: -1, GID: -1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, code := r.run("apply", "--auto-approve", "--progress", "none")
	if code != 1 || !strings.Contains(out, "is held by") || !strings.Contains(out, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("want a lock error naming this process, got exit %d:\n%s", code, out)
	}
	// With a timeout, apply waits for the holder.
	go func() { time.Sleep(500 * time.Millisecond); l.Release() }()
	if out, code := r.run("apply", "--auto-approve", "--progress", "none", "--lock-timeout", "30s"); code != 0 {
		t.Fatalf("apply with -lock-timeout failed (%d):\n%s", code, out)
	}
	// Two applies at once, after the cache was emptied: both succeed, one
	// waiting for the other, and the result is complete.
	for _, d := range []string{"sif", "sqsh", "oci"} {
		os.RemoveAll(filepath.Join(root, d))
	}
	a, b := r.cmd("apply", "--auto-approve", "--progress", "none", "--lock-timeout", "2m"), r.cmd("apply", "--auto-approve", "--progress", "none", "--lock-timeout", "2m")
	var oa, ob bytes.Buffer
	a.Stdout, a.Stderr, b.Stdout, b.Stderr = &oa, &oa, &ob, &ob
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	ea, eb := a.Wait(), b.Wait()
	if ea != nil || eb != nil {
		t.Fatalf("concurrent applies: %v / %v\n--- a:\n%s\n--- b:\n%s", ea, eb, oa.String(), ob.String())
	}
	if n := checkFinalPaths(t, root); n != 12 {
		t.Fatalf("%d artifacts, want 12", n)
	}
	if out, code := r.run("plan", "--detailed-exitcode"); code != 0 {
		t.Fatalf("not converged (%d):\n%s", code, out)
	}
}
