package rootfs

import (
	"archive/tar"
	"slices"
	"testing"
)

func TestLookupAndChildren(t *testing.T) {
	tree := flatten(t, []te{dir("etc/"), reg("etc/hosts", "h"), sym("etc/resolv.conf", "../run/r"), sym("lib", "usr/lib"), dir("usr/"), dir("usr/lib/"), reg("usr/lib/x", "x")},
		[]te{wh("etc/.wh.hosts")})
	if e, ok := tree.Lookup("/etc/resolv.conf"); !ok || e.Type != tar.TypeSymlink || e.Linkname != "../run/r" || e.Path != "etc/resolv.conf" {
		t.Errorf("symlink: %+v %v", e, ok)
	}
	if e, ok := tree.Lookup("./usr/lib/x"); !ok || e.Type != tar.TypeReg || e.Size != 1 {
		t.Errorf("file: %+v %v", e, ok)
	}
	for _, p := range []string{"etc/hosts", "lib/x", "usr/lib/x/y", "nope", "", "/", "a/../etc"} {
		if e, ok := tree.Lookup(p); ok {
			t.Errorf("Lookup(%q) = %+v, want missing", p, e)
		}
	}
	if got := tree.Children(""); !slices.Equal(got, []string{"etc", "lib", "usr"}) {
		t.Errorf("Children(root) = %v", got)
	}
	if got := tree.Children("etc"); !slices.Equal(got, []string{"resolv.conf"}) {
		t.Errorf("Children(etc) = %v", got)
	}
	if got := tree.Children("lib"); got != nil {
		t.Errorf("Children through a symlink = %v", got)
	}
}
