package rootfs

import (
	"archive/tar"
	"fmt"
)

// replay is the second phase of flattening: it applies the logs of layers
// 0..n-1 in order to the indexed paths, following the OCI layer rules (see
// the package comment), and raises the first error in that order: the
// recorded error of a layer comes after its members before it. It then
// drops the paths that are not in the tree and computes the statistics.
//
// A path is in the tree while its node has an inode; every node's parent
// is indexed (the indexer named it), so nothing here allocates a node.
func (ix *indexer) replay(n, maxEntries int) error {
	r := &replayer{ix: ix, x: ix.t.x, maxEntries: maxEntries}
	for i := 0; i < n; i++ {
		if err := r.applyLayer(i); err != nil {
			return ix.t.layerError(i, err)
		}
	}
	ix.t.nodes = r.count
	ix.t.compact()
	ix.t.computeStats()
	return nil
}

type replayer struct {
	ix         *indexer
	x          *index
	maxEntries int
	count      int
	layer      int32
	whiteouts  []nodeID // paths whited out by the current layer
	opaques    []nodeID // directories made opaque by the current layer
	chain      []nodeID
}

func (r *replayer) present(n nodeID) bool { return n == rootID || r.x.node(n).ino != 0 }

func (r *replayer) applyLayer(i int) error {
	lg := &r.ix.logs[i]
	r.layer = int32(i)
	r.whiteouts, r.opaques = r.whiteouts[:0], r.opaques[:0]
	for _, rc := range lg.recs {
		if err := r.apply(i, rc); err != nil {
			return fmt.Errorf("member %q: %w", r.ix.memberName(i, rc), err)
		}
	}
	if lg.err != nil {
		return lg.err
	}
	err := r.applyWhiteouts()
	lg.recs, lg.raw = nil, nil
	return err
}

func (r *replayer) apply(i int, rc rec) error {
	x := r.x
	switch rc.kind {
	case recWhiteout:
		r.whiteouts = append(r.whiteouts, rc.node)
		return nil
	case recOpaque:
		if err := r.ensureDir(rc.node); err != nil {
			return err
		}
		r.opaques = append(r.opaques, rc.node)
		return nil
	}
	if err := r.ensureDir(x.node(rc.node).parent); err != nil {
		return err
	}
	if rc.kind == recLink {
		target, err := r.lookup(nodeID(rc.ino))
		name := r.ix.linkName(i, rc)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", name, err)
		}
		if target == 0 {
			return fmt.Errorf("%w: hard link target %q does not exist", ErrUnsafe, name)
		}
		if x.isDir(target) {
			return fmt.Errorf("%w: hard link target %q is a directory", ErrUnsafe, name)
		}
		ino := x.node(target).ino
		x.inode(ino).flags |= flagHardlinked
		return r.place(rc.node, ino)
	}
	return r.place(rc.node, rc.ino)
}

// ancestors sets r.chain to the ancestors of n below the root, top down,
// then n itself.
func (r *replayer) ancestors(n nodeID) []nodeID {
	r.chain = r.chain[:0]
	for ; n != rootID && n != 0; n = r.x.node(n).parent {
		r.chain = append(r.chain, n)
	}
	for i, j := 0, len(r.chain)-1; i < j; i, j = i+1, j-1 {
		r.chain[i], r.chain[j] = r.chain[j], r.chain[i]
	}
	return r.chain
}

// ensureDir makes the directory d and its parents exist, creating missing
// ones; a symlink or other non-directory on the way is refused.
func (r *replayer) ensureDir(d nodeID) error {
	x := r.x
	for _, a := range r.ancestors(d) {
		if !r.present(a) {
			n := x.node(a)
			n.ino = x.inodeOf(&attrs{typ: tar.TypeDir, mode: 0o755, mtime: epoch, layer: -1, implicit: true})
			n.layer = r.layer
			if err := r.counted(); err != nil {
				return err
			}
			continue
		}
		if err := r.ix.t.checkTraversable(a); err != nil {
			return err
		}
	}
	return nil
}

// lookup finds the path n in the tree without following symlinks; 0 when
// missing. A symlink on the way is an error; another non-directory means
// missing.
func (r *replayer) lookup(n nodeID) (nodeID, error) {
	x := r.x
	cur := rootID
	for _, a := range r.ancestors(n) {
		if !x.isDir(cur) {
			if x.typ(cur) == tar.TypeSymlink {
				return 0, r.ix.t.checkTraversable(cur)
			}
			return 0, nil
		}
		if !r.present(a) {
			return 0, nil
		}
		cur = a
	}
	return cur, nil
}

// place puts inode ino at n, following the replacement rules.
func (r *replayer) place(n nodeID, ino inodeID) error {
	x := r.x
	dir := x.inode(ino).typ == tar.TypeDir
	if r.present(n) {
		if dir && x.isDir(n) {
			x.setInode(n, ino)
			x.node(n).layer = r.layer
			return nil
		}
		r.remove(n)
	}
	nd := x.node(n)
	nd.ino, nd.layer = ino, r.layer
	return r.counted()
}

func (r *replayer) counted() error {
	r.count++
	if r.count > r.maxEntries {
		return fmt.Errorf("more than %d paths in the tree", r.maxEntries)
	}
	return nil
}

// remove takes n and what is below it out of the tree.
func (r *replayer) remove(n nodeID) {
	x := r.x
	for k := x.node(n).child; k != 0; k = x.node(k).next {
		if x.node(k).ino != 0 {
			r.remove(k)
		}
	}
	x.setInode(n, 0)
	r.count--
}

// hasChildren reports whether n has a child in the tree.
func (r *replayer) hasChildren(n nodeID) bool {
	for k := r.x.node(n).child; k != 0; k = r.x.node(k).next {
		if r.x.node(k).ino != 0 {
			return true
		}
	}
	return false
}

// applyWhiteouts removes the lower-layer content named by the current
// layer's whiteouts and hidden by its opaque directories; what the current
// layer itself added stays.
func (r *replayer) applyWhiteouts() error {
	x := r.x
	for _, w := range r.whiteouts {
		parent, err := r.lookup(x.node(w).parent)
		if err != nil {
			return fmt.Errorf("whiteout %q: %w", x.path(w), err)
		}
		if parent != 0 && x.typ(parent) == tar.TypeSymlink {
			return fmt.Errorf("whiteout %q: %w", x.path(w), r.ix.t.checkTraversable(parent))
		}
		if parent == 0 || !x.isDir(parent) || !r.present(w) {
			continue
		}
		r.prune(w)
		if x.node(w).layer < r.layer && !r.hasChildren(w) {
			r.remove(w)
		}
	}
	for _, d := range r.opaques {
		// The directory as it is now: one this layer replaced after its
		// marker holds only this layer's entries, which stay anyway.
		if p, err := r.lookup(d); err == nil && p != 0 && x.isDir(p) {
			r.prune(p)
		}
	}
	return nil
}

// prune removes every descendant of n that the current layer did not create
// or update and that has no such descendant itself.
func (r *replayer) prune(n nodeID) {
	x := r.x
	for k := x.node(n).child; k != 0; k = x.node(k).next {
		if x.node(k).ino == 0 {
			continue
		}
		r.prune(k)
		if x.node(k).layer < r.layer && !r.hasChildren(k) {
			r.remove(k)
		}
	}
}

// compact drops the indexed paths that are not in the tree.
func (t *Tree) compact() {
	x := t.x
	var walk func(n nodeID)
	walk = func(n nodeID) {
		for k := x.node(n).child; k != 0; {
			next := x.node(k).next
			if x.node(k).ino == 0 {
				x.remove(k)
			} else {
				walk(k)
			}
			k = next
		}
	}
	walk(rootID)
}

// checkTraversable refuses to go below n unless it is a directory.
func (t *Tree) checkTraversable(n nodeID) error {
	switch t.x.typ(n) {
	case tar.TypeDir:
		return nil
	case tar.TypeSymlink:
		return fmt.Errorf("%w: parent %q is a symlink (to %q); refusing to write through it",
			ErrUnsafe, t.x.path(n), t.x.linkname(t.x.node(n).ino))
	default:
		return fmt.Errorf("%w: parent %q is not a directory", ErrUnsafe, t.x.path(n))
	}
}

// lookup finds the node at comps in a built tree without following
// symlinks; 0 when missing. A symlink on the way is an error; another
// non-directory means missing.
func (t *Tree) lookup(comps []string) (nodeID, error) {
	cur := rootID
	for _, c := range comps {
		if !t.x.isDir(cur) {
			if t.x.typ(cur) == tar.TypeSymlink {
				return 0, t.checkTraversable(cur)
			}
			return 0, nil
		}
		cur = t.x.child(cur, c)
		if cur == 0 {
			return 0, nil
		}
	}
	return cur, nil
}
