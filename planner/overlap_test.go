package planner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachectl/cachectl/spec"
)

// TestOverlappingRootsThroughSymlinks: two roots written apart but one
// inside the other through a symlinked directory are refused at plan time.
func TestOverlappingRootsThroughSymlinks(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "real", "area"), 0o755)
	os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "linked"))
	os.Symlink(filepath.Join(dir, "real", "area"), filepath.Join(dir, "linked2"))
	m := &spec.Model{Caches: []*spec.Cache{
		{Name: "e", Root: filepath.Join(dir, "linked", "area", "enroot")},
		{Name: "l", Root: filepath.Join(dir, "linked2")},
		{Name: "ok", Root: filepath.Join(dir, "other")},
	}}
	errs := overlappingRoots(m)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `caches "e"`) || !strings.Contains(errs[0].Error(), `"l"`) {
		t.Fatalf("want one overlap of e and l, got %v", errs)
	}
}
