package rootfs

import (
	"sort"
	"strings"
)

// Lookup returns the entry at path p of the flattened tree ("etc/hosts";
// leading "/" and "./" ignored) without following symlinks, like lstat,
// and whether it exists. A path below a symlink or a non-directory does
// not exist here. It costs O(depth): builders that place their own files
// into the tree use it to see what the image already has there.
func (t *Tree) Lookup(p string) (Entry, bool) {
	comps, err := cleanPath(p)
	if err != nil || len(comps) == 0 {
		return Entry{}, false
	}
	n, err := t.lookup(comps)
	if err != nil || n == nil {
		return Entry{}, false
	}
	return item{path: strings.Join(comps, "/"), ino: n.ino}.entry(false), true
}

// Children returns the names in the directory at p ("" for the root),
// sorted; nil when p is not a directory of the tree.
func (t *Tree) Children(p string) []string {
	comps, err := cleanPath(p)
	if err != nil {
		return nil
	}
	n, err := t.lookup(comps)
	if err != nil || n == nil || !n.ino.isDir() {
		return nil
	}
	names := make([]string, 0, len(n.kids))
	for k := range n.kids {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
