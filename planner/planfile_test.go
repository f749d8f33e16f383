package planner

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlanFileTrust: a plan file is written through a new file (a symlink
// at its path is replaced, not followed), and one that another user owns
// or that group or others can write is refused.
func TestPlanFileTrust(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep"), 0o644)
	path := filepath.Join(dir, "x.plan")
	os.Symlink(victim, path)
	p := &Plan{FormatVersion: FormatVersion}
	if err := p.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Fatalf("plan written through a symlink: %q", b)
	}
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("plan file %v, %v", fi.Mode(), err)
	}
	if _, err := ReadPlanFile(path); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o664)
	if _, err := ReadPlanFile(path); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("group-writable plan: %v", err)
	}
	// show reads it anyway, and says why apply would not.
	if p, warning, err := ShowPlanFile(path); err != nil || p == nil || !errors.Is(warning, ErrUntrustedPlan) {
		t.Fatalf("show of a group-writable plan: %v, %v", warning, err)
	}
	os.Chmod(path, 0o600)
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the plan file another owner")
	}
	os.Chown(path, 65534, 65534)
	if _, err := ReadPlanFile(path); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Fatalf("plan of another user: %v", err)
	}
}
