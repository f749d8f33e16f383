package rootfs

import (
	"archive/tar"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestSymlinkChainBudget: a small layer naming many members below a chain
// of 39 symlinks whose targets are long runs of "a/.." would keep the
// replay busy for hours (each lookup takes every component of every
// link); the layer fails with ErrUnsafe once it has taken maxLinkSteps
// components from link targets. A merged-usr image is far below it.
func TestSymlinkChainBudget(t *testing.T) {
	const links = 39
	detour := strings.Repeat("a/../", 800) // 1,600 components a link
	lower := []te{{name: "a", typ: tar.TypeDir}, {name: fmt.Sprintf("l%d", links), typ: tar.TypeDir}}
	for i := 0; i < links; i++ {
		lower = append(lower, te{name: fmt.Sprintf("l%d", i), typ: tar.TypeSymlink, link: detour + fmt.Sprintf("l%d", i+1)})
	}
	var upper []te
	for i := 0; i < 400; i++ { // 400 × 39 × 1,600 = 25M components
		upper = append(upper, reg(fmt.Sprintf("l0/f%d", i), "x"))
	}
	_, err := flattenErr(t, lower, upper)
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "steps to resolve") {
		t.Fatalf("err = %v, want the symlink step budget", err)
	}

	// Merged-usr: lib -> usr/lib, and many files written through it.
	var files []te
	for i := 0; i < 2000; i++ {
		files = append(files, reg(fmt.Sprintf("lib/x86_64-linux-gnu/f%d.so", i), "x"))
	}
	tree := flatten(t, L(te{name: "usr/lib/x86_64-linux-gnu", typ: tar.TypeDir}, te{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"}), files)
	if e := entriesByPath(tree.Entries())["usr/lib/x86_64-linux-gnu/f1999.so"]; e.Type != tar.TypeReg {
		t.Fatalf("a file written through lib -> usr/lib is not in usr/lib: %+v", e)
	}
}
