package cacheroot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cachectl/cachectl/spec"
)

var set = Settings{Runtime: spec.RuntimeApptainer, DirMode: 0o755, UID: -1, GID: -1}

func begin(t *testing.T, root string) *Session {
	t.Helper()
	s, err := Begin(context.Background(), root, set, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Release)
	return s
}

// place writes content as name through a work directory.
func place(t *testing.T, s *Session, name, content string) Entry {
	t.Helper()
	w, err := s.WorkDir()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Remove()
	if err := os.WriteFile(filepath.Join(w.Path(), "f"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	fin, err := w.Finish("f", 0o644, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	e := fin.Entry(Entry{Name: name, Ref: name})
	if err := s.Place(w, "f", e); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestPlaceRecordsInodeAndDirs(t *testing.T) {
	root := filepath.Join(t.TempDir(), "c")
	s := begin(t, root)
	e := place(t, s, "reg/team/app:1", "x")
	fi, err := os.Lstat(filepath.Join(root, "reg/team/app:1"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Inode == 0 || e.Inode != fi.Sys().(*syscall.Stat_t).Ino {
		t.Fatalf("inode not recorded: %d", e.Inode)
	}
	s.Release()
	ix, err := ReadIndexAt(root, spec.RuntimeApptainer)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{".", "reg", "reg/team"} {
		if !ix.HasDir(d) || ix.DirInodes[d] == 0 {
			t.Errorf("dir %q not recorded with its inode: %v %v", d, ix.Dirs, ix.DirInodes)
		}
	}
	st, err := os.Stat(filepath.Join(root, spec.IndexDir))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v, %v", st.Mode(), err)
	}
}

func TestSymlinkedParentRefused(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "c")
	victim := filepath.Join(dir, "victim")
	os.MkdirAll(filepath.Join(victim, "nested"), 0o755)
	s := begin(t, root)
	if err := os.Symlink(victim, filepath.Join(root, "reg")); err != nil {
		t.Fatal(err)
	}
	w, _ := s.WorkDir()
	os.WriteFile(filepath.Join(w.Path(), "f"), []byte("x"), 0o600)
	fin, _ := w.Finish("f", 0o644, -1, -1)
	err := s.Place(w, "f", fin.Entry(Entry{Name: "reg/nested/app:1"}))
	if !errors.Is(err, ErrSymlink) || !strings.Contains(err.Error(), filepath.Join(root, "reg")) {
		t.Fatalf("want a symlink error naming reg, got %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(victim, "nested")); len(ents) != 0 {
		t.Fatalf("file placed through the symlink: %v", ents)
	}
	fs, err := s.Root.Lstat("reg/nested/app:1")
	if err != nil || fs.Blocked != filepath.Join(root, "reg") {
		t.Fatalf("Lstat through a symlink: %+v %v", fs, err)
	}
}

func TestStateDirChecks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the state directory another owner")
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, meta string)
		want  string
	}{
		{"symlink", func(t *testing.T, meta string) {
			os.Rename(meta, meta+".real")
			os.Symlink(meta+".real", meta)
		}, "it is a symbolic link"},
		{"other owner", func(t *testing.T, meta string) { os.Chown(meta, 65534, 65534) }, "owned by"},
		{"group writable", func(t *testing.T, meta string) { os.Chmod(meta, 0o770) }, "writable by group"},
		{"lock symlink", func(t *testing.T, meta string) {
			os.Remove(filepath.Join(meta, lockFile))
			os.Symlink("/etc/hostname", filepath.Join(meta, lockFile))
		}, "lock: it is a symbolic link"},
		{"index of another user", func(t *testing.T, meta string) {
			os.WriteFile(filepath.Join(meta, indexFile), []byte(`{"version":1}`), 0o644)
			os.Chown(filepath.Join(meta, indexFile), 65534, 65534)
		}, "index.json: it is owned by"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "c")
			os.Mkdir(root, 0o755) // an existing root: Release keeps it
			s := begin(t, root)
			s.Release()
			tc.setup(t, filepath.Join(root, spec.IndexDir))
			_, err := Begin(context.Background(), root, set, 0)
			var se *StateError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a state error with %q, got %v", tc.want, err)
			}
		})
	}
}

func TestIndexValidated(t *testing.T) {
	for _, body := range []string{
		`{"version":1,"entries":[{"name":"a/../../x"}]}`,
		`{"version":1,"entries":[{"name":""}]}`,
		`{"version":1,"entries":[{"name":"/etc/passwd"}]}`,
		`{"version":1,"dirs":["../up"]}`,
		`{"version":1,"pending":[{"name":".cachectl/lock"}]}`,
		`{"version":1,"entries":[{"name":"secret-content-xyz` + "\x00" + `"}]}`,
		`{"version":1, secret-content-xyz}`,
	} {
		root := t.TempDir()
		meta := filepath.Join(root, spec.IndexDir)
		os.Mkdir(meta, 0o700)
		os.WriteFile(filepath.Join(meta, indexFile), []byte(body), 0o600)
		_, err := Scan(root, ScanOptions{Runtime: spec.RuntimeApptainer})
		if err == nil || !strings.Contains(err.Error(), "is corrupt") {
			t.Errorf("%s: want a corrupt-index error, got %v", body, err)
			continue
		}
		if strings.Contains(err.Error(), "secret-content") {
			t.Errorf("error quotes the file: %v", err)
		}
	}
}

func TestDeleteOnlyThePlacedFile(t *testing.T) {
	root := filepath.Join(t.TempDir(), "c")
	s := begin(t, root)
	place(t, s, "a:1", "mine")
	path := filepath.Join(root, "a:1")
	// Someone replaces the file with their own, same size and mtime.
	fi, _ := os.Stat(path)
	os.Remove(path)
	os.WriteFile(path, []byte("them"), 0o644)
	os.Chtimes(path, fi.ModTime(), fi.ModTime())
	err := s.Delete("a:1")
	if err == nil || !strings.Contains(err.Error(), "not the file cachectl placed") {
		t.Fatalf("want a refusal, got %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "them" {
		t.Fatalf("the other file was touched: %q", b)
	}
	if _, ok := s.Lookup("a:1"); !ok {
		t.Fatal("entry dropped although nothing was deleted")
	}
}

func TestUpdateActsOnHandle(t *testing.T) {
	root := filepath.Join(t.TempDir(), "c")
	s := begin(t, root)
	place(t, s, "a:1", "mine")
	if err := s.Update("a:1", 0o600, -1, -1); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(root, "a:1"))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	e, _ := s.Lookup("a:1")
	if e.Mode != 0o600 {
		t.Fatalf("index mode %q", e.Mode)
	}
	// A symlink in its place is never followed.
	target := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(target, []byte("v"), 0o644)
	os.Remove(filepath.Join(root, "a:1"))
	os.Symlink(target, filepath.Join(root, "a:1"))
	if err := s.Update("a:1", 0o666, -1, -1); !errors.Is(err, ErrSymlink) {
		t.Fatalf("want a symlink error, got %v", err)
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o644 {
		t.Fatalf("victim changed: %v", fi.Mode())
	}
}

func TestPlaceNeverOverwritesUnmanaged(t *testing.T) {
	root := filepath.Join(t.TempDir(), "c")
	s := begin(t, root)
	os.WriteFile(filepath.Join(root, "a:1"), []byte("hand made"), 0o644)
	w, _ := s.WorkDir()
	os.WriteFile(filepath.Join(w.Path(), "f"), []byte("x"), 0o600)
	fin, _ := w.Finish("f", 0o644, -1, -1)
	if err := s.Place(w, "f", fin.Entry(Entry{Name: "a:1"})); err == nil || !strings.Contains(err.Error(), "not placed by cachectl") {
		t.Fatalf("want a refusal, got %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "a:1")); string(b) != "hand made" {
		t.Fatal("overwritten")
	}
}

func TestLockHolderMessage(t *testing.T) {
	root := filepath.Join(t.TempDir(), "c")
	begin(t, root)
	_, err := Begin(context.Background(), root, set, 0)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("want lock error naming the holder, got %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Begin(ctx, root, set, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the context's error, got %v", err)
	}
}

func TestLeftoversCleaned(t *testing.T) {
	root := filepath.Join(t.TempDir(), "c")
	s := begin(t, root)
	w, _ := s.WorkDir()
	os.WriteFile(filepath.Join(w.Path(), "import-x"), []byte("half"), 0o600)
	meta := filepath.Join(root, spec.IndexDir)
	os.WriteFile(filepath.Join(meta, ".index.json.tmp-1"), nil, 0o600)
	// Simulate a killed process: the lock goes, the files stay.
	s.lock.Release()
	s.lock = nil
	s2 := begin(t, root)
	_ = s2
	ents, _ := os.ReadDir(meta)
	for _, e := range ents {
		if e.Name() == stagingDir || strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("leftover %s not removed", e.Name())
		}
	}
}

// TestUnusedRootRemoved: a root a session created is removed again when
// the session is abandoned with nothing placed in it (a declined apply
// leaves nothing behind); a root that existed before, or got an artifact,
// or whose session was released normally, stays.
func TestUnusedRootRemoved(t *testing.T) {
	root := filepath.Join(t.TempDir(), "c")
	s, err := Begin(context.Background(), root, set, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.Abandon()
	if _, err := os.Lstat(root); !os.IsNotExist(err) {
		t.Fatalf("unused root left behind: %v", err)
	}
	begin(t, root).Release() // kept: an apply that ran makes the root
	if _, err := os.Stat(root); err != nil {
		t.Fatalf("released root removed: %v", err)
	}
	os.RemoveAll(root)
	s = begin(t, root)
	place(t, s, "a:1", "x")
	s.Abandon()
	if _, err := os.Stat(filepath.Join(root, "a:1")); err != nil {
		t.Fatalf("root with an artifact removed: %v", err)
	}
	existing := filepath.Join(t.TempDir(), "e")
	os.Mkdir(existing, 0o755)
	begin(t, existing).Abandon()
	if _, err := os.Stat(existing); err != nil {
		t.Fatalf("existing root removed: %v", err)
	}
}

// TestLockNotTakenOnARemovedRoot: a run waiting for the lock of a root that
// the lock's holder then removes (it created the root and put nothing in
// it: Abandon) must not go on holding the removed lock file, which the next
// run, creating the root afresh, cannot see.
func TestLockNotTakenOnARemovedRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "c")
	a, err := Begin(context.Background(), root, set, 0)
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		s   *Session
		err error
	}
	waiting := make(chan res, 1)
	go func() {
		s, err := Begin(context.Background(), root, set, 30*time.Second)
		waiting <- res{s, err}
	}()
	// Wait until the second run holds the lock file open (it then waits
	// on its flock): two descriptors of this process name it.
	lockPath := filepath.Join(root, spec.IndexDir, lockFile)
	for deadline := time.Now().Add(30 * time.Second); openCount(t, lockPath) < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second run never opened the lock file")
		}
	}
	a.Abandon()
	if _, err := os.Lstat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Abandon left the root it created: %v", err)
	}
	b := <-waiting
	if b.err == nil {
		defer b.s.Release()
		c, err := Begin(context.Background(), root, set, 0)
		if err == nil {
			c.Release()
			t.Fatal("two runs held the root's lock at once: the waiting one locked the removed lock file, the next one a new one")
		}
		return
	}
	if !strings.Contains(b.err.Error(), "removed while this run waited") {
		t.Fatalf("the waiting run's error should say the root went away and to run again: %v", b.err)
	}
}

// TestChangeTimeRecordedAfterRehash: chmod to the same mode moves only a
// file's change time, so the next scan hashes it to be sure it is still
// the file placed. A locked session's scan records the new change time
// when the content matched, so that later scans need not hash again; a
// file whose content changed (mtime put back) is never recorded so.
func TestChangeTimeRecordedAfterRehash(t *testing.T) {
	root := filepath.Join(t.TempDir(), "c")
	s := begin(t, root)
	place(t, s, "same:1", "placed content")
	place(t, s, "edited:1", "placed content")
	s.Release()
	opts := ScanOptions{Runtime: spec.RuntimeApptainer, SkipUnmanaged: true, Owner: -1}

	same, edited := filepath.Join(root, "same:1"), filepath.Join(root, "edited:1")
	fi, err := os.Stat(edited)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // change times have the clock's tick
	if err := os.Chmod(same, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(edited, []byte("member content"), 0o644); err != nil { // same size
		t.Fatal(err)
	}
	if err := os.Chtimes(edited, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}

	st, err := Scan(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files["same:1"].SHA256 == "" || st.Files["edited:1"].SHA256 == "" {
		t.Fatalf("files whose change time moved were not hashed: %+v", st.Files)
	}
	if len(st.Rehashed) != 0 {
		t.Fatalf("change times younger than racyWindow listed for recording: %v", st.Rehashed)
	}
	time.Sleep(racyWindow + 100*time.Millisecond)
	if st, err = Scan(root, opts); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Rehashed["same:1"]; !ok {
		t.Fatal("the chmodded file is not listed for recording")
	}
	if _, ok := st.Rehashed["edited:1"]; ok {
		t.Fatal("a file with other content is listed as rehashed and intact")
	}
	before := st.Fingerprint

	// A locked session (apply, import, adopt) records the new change time.
	s = begin(t, root)
	if _, err := s.Scan(opts); err != nil {
		t.Fatal(err)
	}
	s.Release()

	st, err = Scan(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files["same:1"].SHA256 != "" {
		t.Error("the chmodded file is hashed again after a session recorded its change time")
	}
	e, _ := st.Index.Lookup("edited:1")
	if st.Files["edited:1"].SHA256 == "" || Intact(st.Files["edited:1"], e) {
		t.Error("the edited file is no longer hashed, or counts as intact")
	}
	if st.Fingerprint != before {
		t.Error("recording a change time changed the root's fingerprint: saved plans would go stale")
	}
}

// TestRecordChangeTimes: what apply does when it planned under the lock
// (with a read-only scan) and has nothing to change: the change times the
// scan found are recorded, and the next scan hashes nothing.
func TestRecordChangeTimes(t *testing.T) {
	root := filepath.Join(t.TempDir(), "c")
	s := begin(t, root)
	place(t, s, "a:1", "placed content")
	s.Release()
	time.Sleep(20 * time.Millisecond)
	if err := os.Chown(filepath.Join(root, "a:1"), os.Getuid(), os.Getgid()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(racyWindow + 100*time.Millisecond)
	opts := ScanOptions{Runtime: spec.RuntimeApptainer, SkipUnmanaged: true, Owner: -1}
	s = begin(t, root)
	st, err := Scan(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Rehashed) != 1 {
		t.Fatalf("Rehashed = %v, want a:1", st.Rehashed)
	}
	if err := s.RecordChangeTimes(st.Rehashed); err != nil {
		t.Fatal(err)
	}
	s.Release()
	st2, err := Scan(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	if st2.Files["a:1"].SHA256 != "" || len(st2.Rehashed) != 0 || st2.Fingerprint != st.Fingerprint {
		t.Errorf("after RecordChangeTimes: hashed %q, rehashed %v, fingerprint kept %v", st2.Files["a:1"].SHA256, st2.Rehashed, st2.Fingerprint == st.Fingerprint)
	}
}

// rchar is the number of bytes this process has read (/proc/self/io).
func rchar(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no rchar in /proc/self/io")
	return 0
}

// TestDeleteHashesOnlyChangedFiles: deleting (prune) a file unchanged since
// it was placed reads none of it, though the move aside moves its change
// time; a file whose change time had moved before is hashed, and deleted
// only when its content is still what was placed.
func TestDeleteHashesOnlyChangedFiles(t *testing.T) {
	root := filepath.Join(t.TempDir(), "c")
	s := begin(t, root)
	big := strings.Repeat("x", 8<<20)
	place(t, s, "unchanged:1", big)
	place(t, s, "chmodded:1", big)
	s.Release()
	time.Sleep(20 * time.Millisecond)
	if err := os.Chmod(filepath.Join(root, "chmodded:1"), 0o644); err != nil {
		t.Fatal(err)
	}

	s = begin(t, root)
	before := rchar(t)
	if err := s.Delete("unchanged:1"); err != nil {
		t.Fatal(err)
	}
	if read := rchar(t) - before; read >= int64(len(big)) {
		t.Errorf("deleting an unchanged file read %d bytes: it was hashed", read)
	}
	before = rchar(t)
	if err := s.Delete("chmodded:1"); err != nil {
		t.Fatal(err)
	}
	if read := rchar(t) - before; read < int64(len(big)) {
		t.Errorf("deleting a file whose change time had moved read %d bytes: its content was not checked", read)
	}
	for _, n := range []string{"unchanged:1", "chmodded:1"} {
		if _, err := os.Lstat(filepath.Join(root, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s not deleted: %v", n, err)
		}
	}
}

// TestDeleteNamesWhatBlocks: a parent directory that another user took
// over blocks a delete, and the error says that (not "a symbolic link").
func TestDeleteNamesWhatBlocks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another user")
	}
	root := filepath.Join(t.TempDir(), "c")
	s := begin(t, root)
	place(t, s, "x/a:1", "placed")
	s.Release()
	if err := os.Chown(filepath.Join(root, "x"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	s = begin(t, root)
	err := s.Delete("x/a:1")
	if !errors.Is(err, ErrUntrusted) || errors.Is(err, ErrSymlink) || !strings.Contains(err.Error(), "chown it to root") {
		t.Fatalf("delete below a directory of uid 65534: got %v, want the untrusted-owner error", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "x", "a:1")); err != nil {
		t.Fatalf("the file was touched: %v", err)
	}
}

// TestScanUnderSwapAlwaysHashes: a member swaps a placed file whose change
// time moved with a decoy in a loop (RENAME_EXCHANGE), so that the file
// the scan looks at and the file it opens to hash can differ. A state that
// claims the placed inode must then carry the hash of that very file:
// one without a hash reads as "not hashed, unchanged".
func TestScanUnderSwapAlwaysHashes(t *testing.T) {
	root := filepath.Join(t.TempDir(), "c")
	s := begin(t, root)
	e := place(t, s, "a:1", "placed content")
	s.Release()
	time.Sleep(20 * time.Millisecond)
	if err := os.Chmod(filepath.Join(root, "a:1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "decoy"), []byte("decoy content!"), 0o644); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			unix.Renameat2(unix.AT_FDCWD, filepath.Join(root, "a:1"), unix.AT_FDCWD, filepath.Join(root, "decoy"), unix.RENAME_EXCHANGE)
		}
	}()
	defer func() { close(stop); <-done }()
	opts := ScanOptions{Runtime: spec.RuntimeApptainer, SkipUnmanaged: true, Owner: -1}
	for i := 0; i < 2000; i++ {
		st, err := Scan(root, opts)
		if err != nil {
			t.Fatal(err)
		}
		if f := st.Files["a:1"]; f.Inode == e.Inode && f.SHA256 == "" {
			t.Fatalf("scan %d: the placed inode, change time moved, reported without its hash", i)
		}
	}
}

// TestCheckExistingAndResolvesTo: once a caller has made what is at a
// path, a missing component is an error (someone removed it, perhaps a
// link that led elsewhere), and a root handle must still be what its path
// leads to (Begin's second check; before, a missing part passed).
func TestCheckExistingAndResolvesTo(t *testing.T) {
	base := t.TempDir()
	missing := filepath.Join(base, "gone", "root")
	if err := CheckPlace("local root", missing, PathCheck{Whole: true}); err != nil {
		t.Errorf("CheckPlace of a path still to make: %v", err)
	}
	if err := CheckPlace("local root", missing, PathCheck{Whole: true, Existing: true}); err == nil {
		t.Error("CheckPlace (Existing) of a missing path passed")
	}
	if err := CheckPlace("cache root", missing, PathCheck{Existing: true}); err == nil {
		t.Error("CheckPlace (Existing) of a missing root passed")
	}
	dir := filepath.Join(base, "root")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.resolvesTo(dir); err != nil {
		t.Fatalf("resolvesTo its own path: %v", err)
	}
	if err := os.Rename(dir, dir+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.resolvesTo(dir); err == nil || !strings.Contains(err.Error(), "changed while it was being opened") {
		t.Errorf("resolvesTo after the path was pointed at another directory: %v", err)
	}
}

// TestChmoddedFileHashedOncePerRun: a file chmodded away from its placed
// mode is hashed by the plan's scan (its change time moved); the apply
// that fixes its mode, in the same run, neither scans nor chmods it by
// reading it again (it read the file three times before).
func TestChmoddedFileHashedOncePerRun(t *testing.T) {
	root := filepath.Join(t.TempDir(), "c")
	s := begin(t, root)
	big := strings.Repeat("y", 8<<20)
	place(t, s, "a:1", big)
	s.Release()
	if err := os.Chmod(filepath.Join(root, "a:1"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(racyWindow + 100*time.Millisecond)
	opts := ScanOptions{Runtime: spec.RuntimeApptainer, SkipUnmanaged: true, Owner: -1}

	s = begin(t, root)
	planned, err := Scan(root, opts) // the plan, under the apply's lock
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := planned.Rehashed["a:1"]; !ok {
		t.Fatalf("the plan's scan did not list the chmodded file as verified: %v", planned.Rehashed)
	}
	before := rchar(t)
	if err := s.RecordChangeTimes(planned.Rehashed); err != nil {
		t.Fatal(err)
	}
	st, err := s.Scan(opts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files["a:1"].SHA256 == "" {
		t.Error("the session's scan reports the chmodded file without a hash")
	}
	if err := s.Update("a:1", 0o644, -1, -1); err != nil {
		t.Fatal(err)
	}
	if read := rchar(t) - before; read >= int64(len(big)) {
		t.Errorf("the apply's scan and chmod read %d bytes: the file was hashed again", read)
	}
	s.Release()
	st, err = Scan(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	if f := st.Files["a:1"]; f.Mode != 0o644 || f.SHA256 != "" {
		t.Errorf("after the fix: mode %v, hashed %q; want 0644 and no hash needed", f.Mode, f.SHA256)
	}
}

// openCount counts this process's descriptors open on path.
func openCount(t *testing.T, path string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		if p, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && p == path {
			n++
		}
	}
	return n
}
