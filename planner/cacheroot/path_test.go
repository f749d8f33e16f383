package cacheroot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestCheckPath: symbolic links and directories of other users, and
// directories others may write without the sticky bit, are refused
// wherever they sit on the path (through the links followed too); a
// sticky directory others may write, the given owners' directories and
// components that do not exist yet pass. Needs root (it chowns).
func TestCheckPath(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it gives directories and links to another user")
	}
	const other = 65534
	base := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(base, 0o755))
	sticky := filepath.Join(base, "scratch")
	must(os.Mkdir(sticky, 0o755))
	must(os.Chmod(sticky, 0o777|os.ModeSticky))
	open := filepath.Join(base, "open")
	must(os.Mkdir(open, 0o755))
	must(os.Chmod(open, 0o775))
	theirs := filepath.Join(sticky, "theirs")
	must(os.Mkdir(theirs, 0o755))
	must(os.Chown(theirs, other, other))
	link := filepath.Join(sticky, "link")
	must(os.Symlink(base, link))
	must(os.Lchown(link, other, other))
	ours := filepath.Join(base, "ours")
	must(os.Symlink(link, ours)) // root's link to the other user's link
	good := filepath.Join(base, "good")
	must(os.Symlink("scratch", good))

	for _, tc := range []struct {
		path   string
		owners []int
		unsafe string // the component refused; "" = passes
	}{
		{filepath.Join(sticky, "new", "root"), nil, ""},
		{filepath.Join(good, "new"), nil, ""},
		{filepath.Join(open, "x"), nil, open},
		{filepath.Join(theirs, "x"), nil, theirs},
		{filepath.Join(theirs, "x"), []int{other}, ""},
		{filepath.Join(link, "x"), nil, link},
		{filepath.Join(ours, "x"), nil, link},
		{filepath.Join(base, "..", filepath.Base(base), "open"), nil, open},
		{filepath.Join(theirs, "."), nil, theirs},
	} {
		err := CheckPlace("path", tc.path, PathCheck{Owners: tc.owners, Whole: true})
		var ue *UnsafePathError
		switch {
		case tc.unsafe == "" && err != nil:
			t.Errorf("CheckPlace(%s, %v, Whole) = %v, want nil", tc.path, tc.owners, err)
		case tc.unsafe != "" && (!errors.As(err, &ue) || ue.At != tc.unsafe):
			t.Errorf("CheckPlace(%s, %v, Whole) = %v, want it refused at %s", tc.path, tc.owners, err, tc.unsafe)
		}
	}
	// A root's own directory may be anyone's; what is above it may not,
	// nor another user's symlink on the way.
	for _, tc := range []struct{ path, unsafe string }{
		{theirs, ""},
		{filepath.Join(theirs, "root"), theirs},
		{link, link},
		{filepath.Join(good, "theirs"), ""},
	} {
		err := CheckPlace("cache root", tc.path, PathCheck{})
		var ue *UnsafePathError
		switch {
		case tc.unsafe == "" && err != nil:
			t.Errorf("CheckPlace(%s) of a root = %v, want nil", tc.path, err)
		case tc.unsafe != "" && (!errors.As(err, &ue) || ue.At != tc.unsafe):
			t.Errorf("CheckPlace(%s) of a root = %v, want it refused at %s", tc.path, err, tc.unsafe)
		}
	}
}
