package cacheroot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A build task elsewhere reaches the apply's work directory by name,
// through handles, and writes its result there; what the coordinator
// reads back through its own handle is the same.
func TestOpenWorkDir(t *testing.T) {
	root := t.TempDir()
	s := begin(t, root)
	w, err := s.WorkDir()
	if err != nil {
		t.Fatal(err)
	}
	r2, w2, err := OpenWorkDir(root, w.Name())
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.WriteFile("result.json", []byte(`{"ok":true}`)); err != nil {
		t.Fatal(err)
	}
	f, err := w2.Create("artifact")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("built")
	f.Close()
	size, sum, err := w2.Hash("artifact")
	if err != nil || size != 5 || !strings.HasPrefix(sum, "sha256:") {
		t.Fatalf("Hash = %d %q %v", size, sum, err)
	}
	w2.Close()
	r2.Close()
	data, err := w.ReadFile("result.json", 100)
	if err != nil || string(data) != `{"ok":true}` {
		t.Fatalf("ReadFile = %q, %v", data, err)
	}
	if b, err := os.ReadFile(filepath.Join(w.Path(), "artifact")); err != nil || string(b) != "built" {
		t.Fatalf("artifact through the engine's handle: %q %v", b, err)
	}
	if _, err := w.ReadFile("result.json", 3); err == nil {
		t.Errorf("ReadFile ignored its bound")
	}
}

func TestOpenWorkDirRefuses(t *testing.T) {
	root := t.TempDir()
	s := begin(t, root)
	w, err := s.WorkDir()
	if err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(root, ".cachectl", "staging")
	for _, name := range []string{"../../x", "ABC", "", w.Name() + "/.."} {
		if _, _, err := OpenWorkDir(root, name); err == nil {
			t.Errorf("OpenWorkDir(%q) accepted", name)
		}
	}
	// a symlink in place of a work directory is not followed
	other := t.TempDir()
	if err := os.Symlink(other, filepath.Join(staging, "0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenWorkDir(root, "0123456789abcdef"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlinked work dir: %v", err)
	}
	// a work directory others can write is refused
	if err := os.Chmod(filepath.Join(staging, w.Name()), 0o777); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenWorkDir(root, w.Name()); err == nil || !strings.Contains(err.Error(), "writable by") {
		t.Errorf("world-writable work dir: %v", err)
	}
}

func TestNodeStates(t *testing.T) {
	root := t.TempDir()
	s := begin(t, root)
	s.Release()
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sd, err := r.OpenState(false)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	got, err := sd.NodeStates("local", 1<<20)
	if err != nil || len(got) != 0 {
		t.Fatalf("no states yet: %v %v", got, err)
	}
	for _, n := range []string{"n1", "gpu-07.cluster"} {
		if err := sd.WriteNodeState("local", n, []byte(`{"node":"`+n+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sd.WriteNodeState("local", "../evil", nil); err == nil {
		t.Errorf("a node name with a slash was accepted")
	}
	got, err = sd.NodeStates("local", 1<<20)
	if err != nil || len(got) != 2 || string(got["n1"]) != `{"node":"n1"}` {
		t.Fatalf("NodeStates = %q, %v", got, err)
	}
	fi, err := os.Stat(filepath.Join(root, ".cachectl", "nodes", "local"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("nodes directory: %v %v", fi.Mode(), err)
	}
}
