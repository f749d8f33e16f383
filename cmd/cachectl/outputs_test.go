package main

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/planner/history"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/spec"
)

// TestApplyRecordsChangeTime: after an admin's chmod -R to the same modes
// (the change times of every cached file move, nothing else), every scan
// must hash each file to know it is still the one placed. The next apply,
// even one with nothing to change, records the new change times, so that
// later plans are back to stat-only scans (a root of NGC images would
// otherwise be read in full by every hourly drift check).
func TestApplyRecordsChangeTime(t *testing.T) {
	e := newPlainEnv(t)
	registrytest.RequireTool(t, "mksquashfs")
	srv := registrytest.StartDistribution(t)
	ref := srv.Ref("rehash/app:1")
	pushSmall(t, ref, 5)
	root := e.path("cache")
	e.writeSpec(`cache "sif" {
  runtime = "apptainer"
  root    = "` + root + `"
  images  = ["` + ref + `"]
}
`)
	e.mustApply()
	name := filepath.Join(srv.Addr, "rehash", "app:1")
	file := filepath.Join(root, name)
	recorded := func() time.Time {
		t.Helper()
		en := indexEntry(t, root, name)
		if en == nil {
			t.Fatalf("%s not in the index", name)
		}
		ct, err := time.Parse(time.RFC3339Nano, en["ctime"].(string))
		must(t, err)
		return ct
	}
	ctimeOf := func() time.Time {
		var st syscall.Stat_t
		must(t, syscall.Lstat(file, &st))
		return time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	}
	if !recorded().Equal(ctimeOf()) {
		t.Fatalf("after apply the index records ctime %v, the file has %v", recorded(), ctimeOf())
	}
	time.Sleep(20 * time.Millisecond)
	must(t, os.Chmod(file, 0o644)) // the mode it has: only the change time moves
	if recorded().Equal(ctimeOf()) {
		t.Fatal("chmod did not move the change time; the test means nothing here")
	}
	time.Sleep(2100 * time.Millisecond) // cacheroot's racyWindow: a change time must be that old to be recorded
	if r := e.cachectl("plan", "--detailed-exitcode"); r.code != 0 {
		t.Fatalf("plan after chmod to the same mode should show no changes:\n%s", r)
	}
	if r := e.cachectl(applyArgs...); r.code != 0 {
		t.Fatalf("apply:\n%s", r)
	}
	if got, want := recorded(), ctimeOf(); !got.Equal(want) {
		t.Errorf("apply with nothing to change left the old change time in the index (%v; the file's is %v): every plan hashes the file again", got, want)
	}
}

// TestReportOutputMode: report -o replaces what is at the path with a
// 0644 file, whatever the mode of the file it replaces (renameio.WriteFile
// would copy a 0666 one's).
func TestReportOutputMode(t *testing.T) {
	e := newPlainEnv(t)
	e.writeSpec(`cache "sif" {
  runtime = "apptainer"
  root    = "` + e.path("cache") + `"
}
`)
	out := e.path("drift.prom")
	must(t, os.WriteFile(out, []byte("old"), 0o644))
	must(t, os.Chmod(out, 0o666))
	if r := e.cachectl("report", "--format", "prometheus", "-o", out); r.code != 0 {
		t.Fatalf("report:\n%s", r)
	}
	fi, err := os.Stat(out)
	must(t, err)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("report -o over a 0666 file left mode %v, want 0644", fi.Mode().Perm())
	}
}

// TestHistoryNotWrittenThroughUnsafePath: a root below a directory others
// may write is refused by apply (Begin); its history is not appended
// either, since whoever can write that directory could have pointed the
// root at another .cachectl. Once the directory is safe, it is.
func TestHistoryNotWrittenThroughUnsafePath(t *testing.T) {
	base := t.TempDir()
	shared := filepath.Join(base, "shared")
	must(t, os.Mkdir(shared, 0o755))
	must(t, os.Chmod(shared, 0o775))
	root := filepath.Join(shared, "sif")
	must(t, os.MkdirAll(filepath.Join(root, spec.IndexDir), 0o700))
	rec := history.Record{Command: "apply", Cache: "sif", Root: root, Result: history.ResultSuccess}
	var ue *cacheroot.UnsafePathError
	if err := appendRecord(root, -1, rec); !errors.As(err, &ue) {
		t.Fatalf("appendRecord below a group-writable directory: %v, want the unsafe path refused", err)
	}
	hist := filepath.Join(root, spec.IndexDir, history.FileName)
	if _, err := os.Lstat(hist); !os.IsNotExist(err) {
		t.Fatalf("history written through an unsafe path: %v", err)
	}
	must(t, os.Chmod(shared, 0o755))
	if err := appendRecord(root, -1, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(hist); err != nil {
		t.Fatalf("history not written once the path is safe: %v", err)
	}
}
