package rootfs

import (
	"archive/tar"
	"errors"
	"fmt"
	"strings"
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
	// linkSteps counts the path components taken from symlink targets
	// while the current layer is replayed (maxLinkSteps bounds them).
	linkSteps int
	todo      []step // resolve's work stack, reused
}

// maxLinkSteps bounds the path components resolve takes from symlink
// targets in one layer. Each lookup follows at most maxSymlinks links,
// but a layer of many members below a chain of links with long targets
// would otherwise cost hours (measured: 95 ms a member with 39 chained
// links of 4,000 components); an image's merged-usr lib -> usr/lib costs
// two a member.
const maxLinkSteps = 1 << 24

// step is one path component resolve has still to take: a node of the
// path the layers named, or (node 0) a name from a link's target.
type step struct {
	name string
	node nodeID
}

func (r *replayer) present(n nodeID) bool { return n == rootID || r.x.node(n).ino != 0 }

func (r *replayer) applyLayer(i int) error {
	lg := &r.ix.logs[i]
	r.layer = int32(i)
	r.linkSteps = 0
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
		d, err := r.resolve(rc.node, true)
		if err != nil {
			return err
		}
		r.opaques = append(r.opaques, d)
		return nil
	}
	if rc.node == rootID {
		return r.place(rootID, rc.ino) // a directory over the root directory
	}
	n, err := r.resolveMember(rc.node, true)
	if err != nil {
		return err
	}
	if rc.kind == recLink {
		name := r.ix.linkName(i, rc)
		target, err := r.resolveMember(nodeID(rc.ino), false)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", name, err)
		}
		if target == 0 || !r.present(target) {
			return fmt.Errorf("%w: hard link target %q does not exist", ErrUnsafe, name)
		}
		if x.isDir(target) {
			return fmt.Errorf("%w: hard link target %q is a directory", ErrUnsafe, name)
		}
		ino := x.node(target).ino
		x.inode(ino).flags |= flagHardlinked
		return r.place(n, ino)
	}
	return r.place(n, rc.ino)
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

// resolveMember returns the node where the member named n lands: its
// parent directory resolved (resolve), then n's own name in it, which is
// not followed. With create, missing directories are created and the
// node is made when the index has none; without, 0 means missing.
func (r *replayer) resolveMember(n nodeID, create bool) (nodeID, error) {
	x := r.x
	p := x.node(n).parent
	dir, err := r.resolve(p, create)
	if err != nil || dir == 0 {
		return 0, err
	}
	if dir == p {
		return n, nil
	}
	name := x.nameStr(n)
	k := x.child(dir, name)
	if k == 0 && create {
		k = x.addChild(dir, name, 0, 0)
	}
	return k, nil
}

// resolve returns the directory d (a path the layers named) as the
// kernel resolves it with the tree as the root directory, the way umoci
// (Apptainer 1.5.3, SingularityCE 4.5.1), containerd, Docker and podman
// apply a layer: a symlink on the way is followed inside the tree (an
// absolute target starts at the root, ".." stops at the root, at most
// maxSymlinks links), so that a member below a lower layer's lib ->
// usr/lib lands in usr/lib. With create, missing directories, those a
// dangling link names too, are created (implicit, 0755 root:root) and
// the node is made when the index has none; without, 0 means missing. A
// non-directory on the way fails with ErrUnsafe.
func (r *replayer) resolve(d nodeID, create bool) (nodeID, error) {
	x := r.x
	// todo is a stack: the next component is last.
	chain := r.ancestors(d)
	todo := r.todo[:0]
	for i := len(chain) - 1; i >= 0; i-- {
		todo = append(todo, step{node: chain[i]}) // named by the node (no string made)
	}
	defer func() { r.todo = todo[:0] }()
	cur, links := rootID, 0
	for len(todo) > 0 {
		s := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		k := s.node
		if k == 0 || x.node(k).parent != cur {
			// Off the path the layers named (a link was followed): look
			// the name up where the walk is. Index names are never "",
			// "." or ".."; link targets' "" and "." were left out.
			if k != 0 {
				s.name = x.nameStr(k)
			}
			if s.name == ".." {
				if cur != rootID {
					cur = x.node(cur).parent
				}
				continue
			}
			k = x.child(cur, s.name)
		}
		switch {
		case (k == 0 || !r.present(k)) && !create:
			return 0, nil
		case k == 0 || !r.present(k):
			if k == 0 {
				k = x.addChild(cur, s.name, 0, 0)
			}
			n := x.node(k)
			n.ino = x.inodeOf(&attrs{typ: tar.TypeDir, mode: 0o755, mtime: epoch, layer: -1, implicit: true})
			n.layer = r.layer
			if err := r.counted(); err != nil {
				return 0, err
			}
		case x.isDir(k):
		case x.typ(k) == tar.TypeSymlink:
			if links++; links > maxSymlinks {
				return 0, fmt.Errorf("%w: too many levels of symlinks at %q", ErrUnsafe, x.path(k))
			}
			target := x.linkname(x.node(k).ino)
			if strings.HasPrefix(target, "/") {
				cur = rootID
			}
			// The target's components, pushed last first; empty and "."
			// ones are nothing to take.
			for rest := target; rest != ""; {
				i := strings.LastIndexByte(rest, '/')
				c := rest[i+1:]
				rest = rest[:max(i, 0)]
				if c == "" || c == "." {
					continue
				}
				if r.linkSteps++; r.linkSteps > maxLinkSteps {
					return 0, fmt.Errorf("%w: the layer's symlinked parents take more than %d steps to resolve (at %q)", ErrUnsafe, maxLinkSteps, x.path(k))
				}
				todo = append(todo, step{name: c})
			}
			continue
		default:
			return 0, &notDirError{path: x.path(k)}
		}
		cur = k
	}
	return cur, nil
}

// notDirError is resolve's error for a non-directory on the way.
type notDirError struct{ path string }

func (e *notDirError) Error() string {
	return fmt.Sprintf("%v: parent %q is not a directory", ErrUnsafe, e.path)
}

func (e *notDirError) Unwrap() error { return ErrUnsafe }

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
// layer itself added stays. Symlinks on a whiteout's parent path are
// followed (resolve).
func (r *replayer) applyWhiteouts() error {
	x := r.x
	for _, w := range r.whiteouts {
		n, err := r.resolveMember(w, false)
		var nd *notDirError
		if errors.As(err, &nd) {
			continue // nothing to delete below a non-directory
		}
		if err != nil {
			return fmt.Errorf("whiteout %q: %w", x.path(w), err)
		}
		if n == 0 || !r.present(n) {
			continue
		}
		r.prune(n)
		if x.node(n).layer < r.layer && !r.hasChildren(n) {
			r.remove(n)
		}
	}
	for _, d := range r.opaques {
		// The directory as it is now: one this layer replaced after its
		// marker holds only this layer's entries, which stay anyway.
		if p, err := r.resolve(d, false); err == nil && p != 0 && x.isDir(p) {
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
