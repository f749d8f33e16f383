package apptainer

import (
	"context"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/buildtest"
	"github.com/cachectl/cachectl/providers/rootfs"
)

// TestResolveInsideRoot: the runtimes' paths are followed through the
// image's links, never out of the root.
func TestResolveInsideRoot(t *testing.T) {
	img := buildtest.Image(t, v1.Config{}, buildtest.Layer(t,
		buildtest.Dir("usr/", 0o755), buildtest.Dir("usr/etc/", 0o755), buildtest.Symlink("etc", "usr/etc"),
		buildtest.Symlink("usr/etc/resolv.conf", "../../run/x"), buildtest.Symlink("abs", "/usr/etc"),
		buildtest.Symlink("up", "../../../../usr"), buildtest.Symlink("l1", "l2"), buildtest.Symlink("l2", "l1"),
		buildtest.Reg("file", 0o644, "x"), buildtest.Symlink("host", "/etc/passwd"),
	))
	tree, err := rootfs.Flatten(context.Background(), img, rootfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ix := treeIndex{tree}
	for _, c := range []struct {
		path, want string
		followLast bool
		ok         bool
	}{
		{"etc/hosts", "usr/etc/hosts", true, true},
		{"etc/resolv.conf", "run/x", true, true},
		{"etc/resolv.conf", "usr/etc/resolv.conf", false, true},
		{"abs/hosts", "usr/etc/hosts", true, true},
		{"up/etc", "usr/etc", true, true},
		{"host", "usr/etc/passwd", true, true}, // the image's /etc, not the host's
		{"var/tmp", "var/tmp", true, true},
		{"l1", "", true, false},
		{"file/x", "", true, false},
		{"etc", "etc", false, true},
	} {
		got, ok := ix.resolve(c.path, c.followLast)
		if got != c.want || ok != c.ok {
			t.Errorf("resolve(%q, %v) = %q, %v; want %q, %v", c.path, c.followLast, got, ok, c.want, c.ok)
		}
	}
	if ix.exists("l1") || !ix.exists("abs") || ix.exists("etc/resolv.conf") {
		t.Error("exists")
	}
}
