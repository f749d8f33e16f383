package rootfs

import (
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
	if err != nil || n == 0 {
		return Entry{}, false
	}
	a := t.x.attrsOf(t.x.node(n).ino)
	return entryOf(strings.Join(comps, "/"), &a, "", false), true
}

// Children returns the names in the directory at p ("" for the root),
// sorted; nil when p is not a directory of the tree.
func (t *Tree) Children(p string) []string {
	comps, err := cleanPath(p)
	if err != nil {
		return nil
	}
	n, err := t.lookup(comps)
	if err != nil || n == 0 || !t.x.isDir(n) {
		return nil
	}
	var names []string
	for _, k := range t.x.children(n) {
		names = append(names, t.x.nameStr(k))
	}
	return names
}
