package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// TestInterruptedStreamingApply: SIGINT while the SIF and .sqsh builds of
// an image stream its layers into mksquashfs, its oldest layer stalled half
// way: the apply exits 1, nothing is at a final path that is not complete,
// no staging file and no partial blob is left; once the layer flows again,
// the next apply converges.
func TestInterruptedStreamingApply(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	srv := startCrashRegistry(t)
	img := registrytest.Image(t, 3, 1<<20, 0) // crash/img0:1 (pushBig, seed 0)
	layers, _ := img.Layers()
	oldest, _ := layers[0].Digest()
	// The download of the layer stalls, not the plan's read of its tail
	// (a Range request).
	isOldest := registrytest.MatchBlobDigests(oldest.String())
	px := registrytest.StartSlowProxy(t, srv.URL, 0, func(r *http.Request) bool { return isOldest(r) && r.Header.Get("Range") == "" })
	px.SetStall(true)
	root := t.TempDir()
	r := newRunner(t, px.Addr, root)
	storeDir := ""
	for _, e := range r.env {
		if v, ok := strings.CutPrefix(e, "CACHECTL_STORE="); ok {
			storeDir = v
		}
	}
	if storeDir == "" {
		t.Fatal("the runner sets no CACHECTL_STORE: the leftover check below would look at nothing")
	}
	c := r.cmd("apply", "--auto-approve", "--progress", "none")
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	must(t, c.Start())
	exited := make(chan struct{})
	go func() { c.Wait(); close(exited) }()
	// Both streamed builds of img0 have begun writing while its oldest
	// layer is stalled.
	deadline := time.Now().Add(60 * time.Second) // not a timing bound: a loaded machine may be slow to start both
	for {
		sif, _ := filepath.Glob(filepath.Join(root, "sif", ".cachectl", "staging", "*", "artifact"))
		sqsh, _ := filepath.Glob(filepath.Join(root, "sqsh", ".cachectl", "staging", "*", "artifact"))
		if px.Stalled() > 0 && len(sif) > 0 && len(sqsh) > 0 {
			break
		}
		select {
		case <-exited:
			t.Fatalf("apply ended while a layer was stalled:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			var seen []string
			filepath.WalkDir(root, func(p string, _ os.DirEntry, _ error) error { seen = append(seen, p); return nil })
			c.Process.Signal(syscall.SIGQUIT)
			<-exited
			t.Fatalf("no streamed build began (%d stalled); %v:\n%s", px.Stalled(), seen, out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		c.Process.Kill()
		t.Fatalf("apply did not end after SIGINT:\n%s", out.String())
	}
	if code := c.ProcessState.ExitCode(); code != 1 || !strings.Contains(out.String(), "Apply interrupted.") {
		t.Fatalf("exit %d, want 1 with a cancellation message:\n%s", code, out.String())
	}
	checkFinalPaths(t, root)
	for _, cache := range []string{"sif", "sqsh", "oci"} {
		if ents, _ := os.ReadDir(filepath.Join(root, cache, ".cachectl", "staging")); len(ents) != 0 {
			t.Errorf("%s: %d leftovers in staging after the interrupt", cache, len(ents))
		}
	}
	if tmp, _ := os.ReadDir(filepath.Join(storeDir, "tmp")); len(tmp) != 0 {
		t.Errorf("store tmp/ holds %d leftovers after the interrupt", len(tmp))
	}
	px.SetStall(false)
	if o, code := r.run("apply", "--auto-approve", "--progress", "none"); code != 0 {
		t.Fatalf("apply after the interrupt failed (%d):\n%s", code, o)
	}
	if n := checkFinalPaths(t, root); n != 12 {
		t.Errorf("%d artifacts after the second apply, want 12", n)
	}
	if o, code := r.run("plan", "--detailed-exitcode"); code != 0 {
		t.Fatalf("not converged (%d):\n%s", code, o)
	}
}
