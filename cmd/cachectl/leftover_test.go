package main

// The "also seen" leftovers of issue 9: a command killed while it writes a
// temporary file leaves it behind; the next run of a command that owns
// such files must remove them. These tests fail on the code they were
// written against (by design).

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// killWhenSeen starts cmd and SIGKILLs it as soon as glob matches a file;
// it reports whether the kill landed while the file existed (the command
// was still running and had created it).
func killWhenSeen(t *testing.T, cmd *exec.Cmd, glob string) bool {
	t.Helper()
	must(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if m, _ := filepath.Glob(glob); len(m) > 0 {
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
			return ok && ws.Signaled()
		}
		time.Sleep(100 * time.Microsecond)
	}
	cmd.Process.Kill()
	<-exited
	return false
}

// bigSquashfs writes a squashfs image holding size random bytes
// (uncompressed, so that copying it takes a while).
func bigSquashfs(t *testing.T, path string, size int64) {
	t.Helper()
	mksquashfs := registrytest.RequireTool(t, "mksquashfs")
	src := t.TempDir()
	f, err := os.Create(filepath.Join(src, "data.bin"))
	must(t, err)
	_, err = io.CopyN(f, rand.Reader, size)
	must(t, err)
	must(t, f.Close())
	if out, err := exec.Command(mksquashfs, src, path, "-noappend", "-noI", "-noD", "-noF", "-noX", "-quiet", "-no-progress").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
}

// TestLeftoverKilledImport: "cachectl import" killed while it copies the
// file into the root's staging area leaves staging/*/import; the next
// import (which owns such files) must remove it.
func TestLeftoverKilledImport(t *testing.T) {
	e := newPlainEnv(t)
	root := e.path("cache", "sqsh")
	e.writeSpec(`
cache "sqsh" {
  runtime = "enroot"
  root    = "` + root + `"
  images  = ["big:1", "small:1"]
}
`)
	big := e.path("big.sqsh")
	bigSquashfs(t, big, 96<<20)
	small := e.path("small.sqsh")
	bigSquashfs(t, small, 4<<10)
	staging := filepath.Join(root, ".cachectl", "staging")
	killed := 0
	for try := 0; try < 5 && killed == 0; try++ {
		cmd, _ := e.cachectlCmd(context.Background(), "import", "sqsh", big, "big:1")
		if killWhenSeen(t, cmd, filepath.Join(staging, "*", "import")) {
			killed++
		}
	}
	left, _ := filepath.Glob(filepath.Join(staging, "*", "import"))
	if killed == 0 || len(left) == 0 {
		t.Fatalf("could not kill an import while it copied (killed %d, left %v)", killed, left)
	}
	t.Logf("a killed import left %v", left)
	r := e.cachectl("import", "sqsh", small, "small:1")
	checkClean(t, r, 0)
	if left, _ := filepath.Glob(filepath.Join(staging, "*", "import")); len(left) > 0 {
		t.Errorf("the next import left the killed import's temporary files in place: %v\n%s", left, r)
	}
}

// TestLeftoverKilledBundle: "cachectl bundle -o F.tar" killed while it
// writes leaves .F.tar.*.partial beside the output; the next bundle to the
// same output must remove it.
func TestLeftoverKilledBundle(t *testing.T) {
	e := newPlainEnv(t)
	srv := registrytest.StartDistribution(t)
	ref := srv.Ref("leftover/big:1")
	registrytest.Push(t, registrytest.Image(t, 1, 48<<20, 70), ref)
	e.writeSpec(`
cache "sqsh" {
  runtime = "enroot"
  root    = "` + e.path("cache", "sqsh") + `"
  images  = ["` + ref + `"]
}
`)
	out := e.path("out")
	must(t, os.Mkdir(out, 0o755))
	tar := filepath.Join(out, "images.tar")
	partials := filepath.Join(out, ".images.tar.*.partial")
	killed := 0
	for try := 0; try < 5 && killed == 0; try++ {
		cmd, _ := e.cachectlCmd(context.Background(), "bundle", "-o", tar, "--progress", "none")
		if killWhenSeen(t, cmd, partials) {
			killed++
		}
	}
	left, _ := filepath.Glob(partials)
	if killed == 0 || len(left) == 0 {
		t.Fatalf("could not kill a bundle while it wrote (killed %d, left %v)", killed, left)
	}
	t.Logf("a killed bundle left %v", left)
	r := e.cachectl("bundle", "-o", tar, "--progress", "none")
	checkClean(t, r, 0)
	if left, _ := filepath.Glob(partials); len(left) > 0 {
		var names []string
		for _, l := range left {
			names = append(names, filepath.Base(l))
		}
		t.Errorf("the next bundle -o %s left the killed one's partial files in place: %s\n%s", filepath.Base(tar), strings.Join(names, " "), r)
	}
}
