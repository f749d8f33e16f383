package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlanFailsWithoutSpace: on a root that lacks the space for what the
// plan writes, plan fails before anything is pulled or written, naming the
// root and both amounts. Uses a real 256 KiB tmpfs (needs root).
func TestPlanFailsWithoutSpace(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	srv := startCrashRegistry(t)
	r := newRunner(t, srv.Addr, dir)
	out, code := r.run("plan")
	if code != 1 || !strings.Contains(out, "free but the plan may write up to") || !strings.Contains(out, filepath.Join(dir, "sif")) {
		t.Fatalf("want a space error (exit 1), got %d:\n%s", code, out)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("plan wrote to the root: %v", ents)
	}
}
