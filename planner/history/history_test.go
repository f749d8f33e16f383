package history

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func rec(cache string, i int) Record {
	t := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	return Record{Command: "apply", Cache: cache, Root: "/r", Start: t, End: t.Add(time.Second), DurationSeconds: 1,
		User: "root", Host: "h", CachectlVersion: "test", Result: ResultSuccess, Plan: Summary{Add: i}}
}

func metaDir(t *testing.T) (string, *os.File) {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, ".cachectl"), 0o700); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return root, d
}

func TestAppendRead(t *testing.T) {
	root, d := metaDir(t)
	for i := range 3 {
		if err := Append(d, rec("sif", i)); err != nil {
			t.Fatal(err)
		}
	}
	recs, skipped, err := ReadRoot(root)
	if err != nil || skipped != 0 || len(recs) != 3 {
		t.Fatalf("ReadRoot = %d records, %d skipped, %v", len(recs), skipped, err)
	}
	for i, r := range recs {
		if r.Plan.Add != i || r.Version != FormatVersion {
			t.Errorf("record %d = %+v", i, r)
		}
	}
	if l := Last(recs, "apply"); l == nil || l.Plan.Add != 2 {
		t.Errorf("Last = %+v", l)
	}
	fi, err := os.Stat(filepath.Join(root, ".cachectl", FileName))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("history file: %v %v", fi, err)
	}
	left, _ := filepath.Glob(filepath.Join(root, ".cachectl", ".*tmp*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestBounded(t *testing.T) {
	maxRecords, maxBytes = 5, 1<<20
	defer func() { maxRecords, maxBytes = MaxRecords, MaxBytes }()
	root, d := metaDir(t)
	for i := range 12 {
		if err := Append(d, rec("sif", i)); err != nil {
			t.Fatal(err)
		}
	}
	recs, _, _ := ReadRoot(root)
	if len(recs) != 5 || recs[0].Plan.Add != 7 || recs[4].Plan.Add != 11 {
		t.Fatalf("kept %d records: %+v", len(recs), recs)
	}
	// A byte cap keeps the newest that fit.
	maxRecords, maxBytes = 100, 700
	if err := Append(d, rec("sif", 12)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(root, ".cachectl", FileName))
	recs, _, _ = ReadRoot(root)
	if len(b) > 700 || len(recs) == 0 || recs[len(recs)-1].Plan.Add != 12 {
		t.Fatalf("%d bytes, records %+v", len(b), recs)
	}
}

func TestConcurrentAppends(t *testing.T) {
	root, _ := metaDir(t)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d, err := OpenDir(root)
			if err != nil {
				t.Error(err)
				return
			}
			defer d.Close()
			if err := Append(d, rec(fmt.Sprintf("c%d", i), i)); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	recs, skipped, err := ReadRoot(root)
	if err != nil || skipped != 0 || len(recs) != 16 {
		t.Fatalf("%d records, %d skipped, %v: an append was lost", len(recs), skipped, err)
	}
}

// The history is input: garbage lines and a torn last line are skipped,
// symlinks are refused, and a missing root has no history.
func TestUntrustedFile(t *testing.T) {
	root, d := metaDir(t)
	path := filepath.Join(root, ".cachectl", FileName)
	good := `{"version":1,"command":"apply","cache":"sif","start":"2026-01-01T00:00:00Z","result":"success"}`
	os.WriteFile(path, []byte("not json\n{\"version\":1}\n"+good+"\n{\"version\":1,\"comm"), 0o644)
	recs, skipped, err := Read(d)
	if err != nil || len(recs) != 1 || skipped != 3 {
		t.Fatalf("Read = %+v, %d skipped, %v", recs, skipped, err)
	}
	if err := Append(d, rec("sif", 1)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), `"comm`+"\n") || strings.Count(string(b), "\n") != 4 {
		t.Errorf("torn line kept or records lost:\n%s", b)
	}

	target := filepath.Join(t.TempDir(), "elsewhere")
	os.WriteFile(target, []byte("x\n"), 0o600)
	os.Remove(path)
	os.Symlink(target, path)
	if err := Append(d, rec("sif", 2)); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("Append through a symlink: %v", err)
	}
	if _, _, err := Read(d); err == nil {
		t.Error("Read followed a symlink")
	}
	if b, _ := os.ReadFile(target); string(b) != "x\n" {
		t.Errorf("symlink target changed: %q", b)
	}

	root2 := t.TempDir()
	os.Symlink(filepath.Join(root, ".cachectl"), filepath.Join(root2, ".cachectl"))
	if _, err := OpenDir(root2); err == nil {
		t.Error("OpenDir followed a symlinked .cachectl")
	}
	if recs, _, err := ReadRoot(filepath.Join(root2, "missing")); err != nil || recs != nil {
		t.Errorf("missing root: %v %v", recs, err)
	}
}
