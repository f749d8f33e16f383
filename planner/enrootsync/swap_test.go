package enrootsync

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The image Plan checked is swapped, before Run, for a file of another
// user (what a member of a group-writable root can do while Plan hashes
// other images): Run checks the file it opens and refuses it; enroot is
// never run on it. As root (real owners).
func TestRunRefusesImageSwappedAfterPlan(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the swapped file another owner")
	}
	dir := t.TempDir()
	root, data := filepath.Join(dir, "root"), filepath.Join(dir, "data")
	os.Mkdir(root, 0o755)
	if err := os.WriteFile(filepath.Join(root, "app.sqsh"), []byte("the cache's image"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "enroot.log")
	enroot := filepath.Join(dir, "enroot")
	os.WriteFile(enroot, []byte("#!/bin/sh\necho \"$@\" >> "+log+"\n"), 0o755)
	opts := Options{Root: root, DataPath: data, Enroot: enroot}
	steps, err := Plan(context.Background(), opts)
	if err != nil || len(steps) != 1 || steps[0].Action != Create {
		t.Fatalf("plan: %+v %v", steps, err)
	}
	squat := filepath.Join(root, ".squat")
	os.WriteFile(squat, []byte("a member's image"), 0o644)
	if err := os.Chown(squat, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(squat, filepath.Join(root, "app.sqsh")); err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), opts, steps)
	if err == nil || !strings.Contains(err.Error(), "changed since the plan") {
		t.Fatalf("Run on a swapped image: %v", err)
	}
	if b, _ := os.ReadFile(log); len(b) > 0 {
		t.Errorf("enroot ran: %s", b)
	}
}
