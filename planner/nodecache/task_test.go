package nodecache

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/spec"
)

// These run the stage task directly (no Slurm): what each node's task does.

func placeShared(t *testing.T, root, name, content string) {
	t.Helper()
	s, err := cacheroot.Begin(context.Background(), root, cacheroot.Settings{Runtime: spec.RuntimeEnroot, DirMode: 0o755, UID: -1, GID: -1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	w, err := s.WorkDir()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Remove()
	os.WriteFile(filepath.Join(w.Path(), "f"), []byte(content), 0o600)
	fin, err := w.Finish("f", 0o644, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Place(w, "f", fin.Entry(cacheroot.Entry{Name: name, Ref: strings.TrimSuffix(name, ".sqsh") + ":1", Placed: time.Now().UTC()})); err != nil {
		t.Fatal(err)
	}
}

func stageFile(t *testing.T, dir string, sf StageFile) string {
	t.Helper()
	sf.Version, sf.Runtime, sf.FileMode, sf.DirMode, sf.UID, sf.GID = StageFileVersion, "enroot", "0644", "0755", -1, -1
	data, _ := json.Marshal(sf)
	p := filepath.Join(dir, "stage.json")
	os.Remove(p)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func want(names ...string) []Want {
	var w []Want
	for _, n := range names {
		w = append(w, Want{Name: n, Ref: strings.TrimSuffix(n, ".sqsh") + ":1"})
	}
	return w
}

func TestStageTask(t *testing.T) {
	dir := t.TempDir()
	shared, local := filepath.Join(dir, "shared"), filepath.Join(dir, "local", "%n")
	for _, n := range []string{"a", "b", "c"} {
		placeShared(t, shared, n+".sqsh", strings.Repeat(n, 100))
	}
	ctx := context.Background()
	sf := StageFile{NodeCache: "local", SharedRoot: shared, Root: local, Wanted: want("a.sqsh", "b.sqsh")}
	if err := RunTask(ctx, stageFile(t, dir, sf), "n1", io.Discard); err != nil {
		t.Fatal(err)
	}
	n1 := filepath.Join(dir, "local", "n1")
	if b, err := os.ReadFile(filepath.Join(n1, "a.sqsh")); err != nil || string(b) != strings.Repeat("a", 100) {
		t.Fatalf("a.sqsh: %q %v", b, err)
	}
	states, err := ReadStates(shared, "local")
	if err != nil || states["n1"] == nil || len(states["n1"].Held) != 2 || len(states["n1"].Copied) != 2 {
		t.Fatalf("state: %+v %v", states["n1"], err)
	}

	// a is rebuilt in the shared cache: stale on n1, copied again; b is
	// used recently; now only c is wanted and max_size holds two: a (the
	// least recently used unwanted copy) is evicted.
	placeShared(t, shared, "a.sqsh", strings.Repeat("A", 100))
	m := &spec.Model{Caches: []*spec.Cache{{Name: "sqsh", Runtime: spec.RuntimeEnroot, Root: shared, Artifacts: []*spec.Artifact{
		{Ref: "a:1", Name: "a.sqsh"}, {Ref: "b:1", Name: "b.sqsh"}, {Ref: "c:1", Name: "c.sqsh"}}}},
		NodeCaches: []*spec.NodeCache{{Name: "local", From: "sqsh", Root: local, Images: []string{"a:1", "b:1"}}}}
	covs, err := Coverages(m, "")
	if err != nil || len(covs) != 1 || len(covs[0].Stale) != 1 || covs[0].String() != "n1: 1 stale" {
		t.Fatalf("coverage after the rebuild: %+v %v", covs, err)
	}
	os.Chtimes(filepath.Join(n1, "b.sqsh"), time.Now().Add(time.Hour), mtime(t, filepath.Join(n1, "b.sqsh")))
	sf.Wanted, sf.MaxSize = want("c.sqsh"), 200
	if err := RunTask(ctx, stageFile(t, dir, sf), "n1", io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(n1, "a.sqsh")); err == nil {
		t.Error("a.sqsh (least recently used) was not evicted")
	}
	if _, err := os.Stat(filepath.Join(n1, "b.sqsh")); err != nil {
		t.Error("b.sqsh (used recently) was evicted")
	}
	if b, _ := os.ReadFile(filepath.Join(n1, "c.sqsh")); string(b) != strings.Repeat("c", 100) {
		t.Errorf("c.sqsh: %q", b)
	}

	// A shared artifact whose bytes no longer match its index is not copied.
	os.WriteFile(filepath.Join(shared, "a.sqsh"), []byte(strings.Repeat("X", 100)), 0o644)
	sf.Wanted, sf.MaxSize = want("a.sqsh", "c.sqsh"), 0
	err = RunTask(ctx, stageFile(t, dir, sf), "n1", io.Discard)
	if err == nil || !strings.Contains(err.Error(), "the shared index says") {
		t.Fatalf("a corrupted shared artifact: %v", err)
	}
	if _, err := os.Stat(filepath.Join(n1, "a.sqsh")); err == nil {
		t.Error("the corrupted artifact was placed")
	}
	if states, _ := ReadStates(shared, "local"); len(states["n1"].Errors) != 1 {
		t.Errorf("the node state does not record the error: %+v", states["n1"])
	}
	if err := RunTask(ctx, stageFile(t, dir, sf), "../n1", io.Discard); err == nil {
		t.Error("a node name with a slash was accepted")
	}
}

func mtime(t *testing.T, p string) time.Time {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

// A node-local copy whose bytes changed in place, its size and mtime kept
// (only the change time tells), is not counted as held: it is copied again.
func TestStageTaskRecopiesChangedContent(t *testing.T) {
	dir := t.TempDir()
	shared, local := filepath.Join(dir, "shared"), filepath.Join(dir, "local", "%n")
	placeShared(t, shared, "a.sqsh", strings.Repeat("a", 100))
	ctx := context.Background()
	sf := StageFile{NodeCache: "local", SharedRoot: shared, Root: local, Wanted: want("a.sqsh")}
	if err := RunTask(ctx, stageFile(t, dir, sf), "n1", io.Discard); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "local", "n1", "a.sqsh")
	mt := mtime(t, p)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("XXXX"), 10)
	f.Close()
	os.Chtimes(p, mt, mt)
	if err := RunTask(ctx, stageFile(t, dir, sf), "n1", io.Discard); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != strings.Repeat("a", 100) {
		t.Fatalf("the changed copy was kept: %q %v", b, err)
	}
}
