package bundle

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestRemoveAbandoned: the temporary files of killed writes go; a write
// still running (its file locked), a symlink and a file of another user
// stay.
func TestRemoveAbandoned(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour)
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, old, old)
		return p
	}
	dead := mk(".images.tar.111.partial")
	live := mk(".images.tar.222.partial")
	lf, _ := os.Open(live)
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	other := mk(".other.tar.444.partial")
	victim := mk("victim")
	link := filepath.Join(dir, ".images.tar.555.partial")
	os.Symlink(victim, link)
	var foreign string
	if os.Geteuid() == 0 {
		foreign = mk(".images.tar.666.partial")
		os.Chown(foreign, 65534, 65534)
	}
	removeAbandoned(dir, "images.tar")
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("abandoned partial not removed: %v", err)
	}
	for _, p := range []string{live, other, victim, link, foreign} {
		if p == "" {
			continue
		}
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s removed: %v", filepath.Base(p), err)
		}
	}
}

// TestCreateLockedSurvivesRemoval: a temporary file removed before its
// writer locked it is replaced by a new one that stays.
func TestCreateLockedSurvivesRemoval(t *testing.T) {
	dir := t.TempDir()
	f, err := createLocked(dir, ".x.tar.*.partial")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	removeAbandoned(dir, "x.tar") // locked: stays
	if _, err := os.Stat(f.Name()); err != nil {
		t.Fatalf("a locked partial was removed: %v", err)
	}
}
