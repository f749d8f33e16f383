package rootfs

import (
	"archive/tar"
	"bytes"
	"hash/maphash"
	"math/bits"
	"slices"
	"time"
)

// The tree is stored without pointers, so that hundreds of thousands of
// paths cost the garbage collector nothing to scan and little memory:
// nodes (paths) and inodes (what paths name) live in chunked arrays and
// refer to each other by index; names are bytes in an append-only arena;
// the children of a directory form a doubly linked list, and one open
// addressing hash table (parent, name) → node finds a child. About 100
// bytes per path in all (BENCHMARKS.md), against 270 with a Go map per
// directory and a struct of pointers per path.

// nodeID names a path of the tree; 0 is none, rootID the root.
type nodeID uint32

// inodeID names an inode; 0 is none.
type inodeID uint32

const rootID nodeID = 1

// node is one path.
type node struct {
	// parent, first child, next and previous sibling.
	parent, child, next, prev nodeID
	nameOff                   uint32
	nameLen                   uint16
	// flags record what the layers read so far did at this path (see
	// stream.go); unused once the tree is built.
	flags uint8
	_     uint8
	// ino is the path's inode; 0 while the path is not (yet) in the tree:
	// Flatten first names every path of every layer, then builds the tree
	// on those nodes.
	ino inodeID
	// layer is the index of the layer that last created or updated the
	// path (whiteouts keep what the current layer touched).
	layer int32
}

func (n *node) name() nameRef { return nameRef{off: n.nameOff, n: n.nameLen} }

// nameRef is a name in the arena.
type nameRef struct {
	off uint32
	n   uint16
}

// inode flags.
const (
	flagHardlinked = 1 << iota
	// flagImplicit marks a directory no layer entry created, only implied
	// as the parent of other entries.
	flagImplicit
)

// inode is the metadata of a path (shared by hard-linked paths). Rarely
// used attributes (symlink targets, device numbers, extended attributes,
// ids beyond 32 bits) are in a side table.
type inode struct {
	mtimeSec  int64
	size      int64
	mtimeNsec int32
	// layer and ord locate a regular file's content: header number ord
	// (0-based) of layer layer; -1 when there is none.
	layer, ord int32
	uid, gid   uint32
	ext        uint32 // index+1 into the side table; 0: none
	mode       uint16
	typ        byte
	flags      byte
}

// inodeExt holds an inode's rare attributes.
type inodeExt struct {
	link         nameRef // symlink target
	major, minor int64
	xattrs       map[string]string
	uid, gid     int // when they do not fit in 32 bits
	bigIDs       bool
}

// attrs is the full metadata of one inode, as the writer and the API use
// it; overlay entries (TarOptions) are attrs themselves.
type attrs struct {
	typ          byte
	hardlinked   bool
	implicit     bool
	mode         int64
	uid, gid     int
	mtime        time.Time
	size         int64
	linkname     string
	major, minor int64
	xattrs       map[string]string
	layer, ord   int32
	content      []byte
}

func (a *attrs) isDir() bool { return a.typ == tar.TypeDir }

// chunked is a growable array of chunks of chunkLen elements: past the
// first chunk (which grows like a slice, so that small trees stay small)
// elements are never copied.
type chunked[T any] struct {
	chunks [][]T
	n      uint32
}

const (
	chunkBits = 13
	chunkLen  = 1 << chunkBits
	chunkMask = chunkLen - 1
)

func (c *chunked[T]) at(i uint32) *T { return &c.chunks[i>>chunkBits][i&chunkMask] }

func (c *chunked[T]) add(v T) uint32 {
	i := c.n
	switch k := int(i >> chunkBits); {
	case k == len(c.chunks) && k > 0:
		c.chunks = append(c.chunks, make([]T, 0, chunkLen))
	case k == len(c.chunks):
		c.chunks = append(c.chunks, make([]T, 0, 64))
	}
	last := &c.chunks[len(c.chunks)-1]
	*last = append(*last, v)
	c.n++
	return i
}

// index is the storage of a Tree.
type index struct {
	nodes  chunked[node]
	inodes chunked[inode]
	ext    []inodeExt
	names  [][]byte // arena chunks of nameChunk bytes
	// table maps (parent, name) to the child; open addressing, linear
	// probing, 0 = empty slot.
	table []nodeID
	used  int
	seed  maphash.Seed
	// free lists of removed nodes and inodes, reused first.
	freeNodes  []nodeID
	freeInodes []inodeID
}

const nameChunk = 1 << 20

func newIndex() *index {
	x := &index{seed: maphash.MakeSeed(), table: make([]nodeID, 64)}
	x.nodes.add(node{})   // 0: none
	x.inodes.add(inode{}) // 0: none
	ino := x.newInode(inode{typ: tar.TypeDir, mode: 0o755, layer: -1, mtimeSec: 0})
	x.nodes.add(node{ino: ino}) // rootID
	return x
}

func (x *index) node(n nodeID) *node     { return x.nodes.at(uint32(n)) }
func (x *index) inode(i inodeID) *inode  { return x.inodes.at(uint32(i)) }
func (x *index) typ(n nodeID) byte       { return x.inode(x.node(n).ino).typ }
func (x *index) isDir(n nodeID) bool     { return x.typ(n) == tar.TypeDir }
func (x *index) nameOf(n nodeID) []byte  { return x.bytes(x.node(n).name()) }
func (x *index) str(r nameRef) string    { return string(x.bytes(r)) }
func (x *index) nameStr(n nodeID) string { return string(x.nameOf(n)) }

func (x *index) bytes(r nameRef) []byte {
	c := x.names[r.off/nameChunk]
	o := r.off % nameChunk
	return c[o : o+uint32(r.n)]
}

// intern stores s in the arena (s is at most maxPathLen bytes).
func (x *index) intern(s string) nameRef {
	if len(x.names) == 0 || len(x.names[len(x.names)-1])+len(s) > nameChunk {
		size := nameChunk
		if len(x.names) == 0 {
			size = 4096 // the first chunk grows as needed
		}
		x.names = append(x.names, make([]byte, 0, size))
	}
	last := len(x.names) - 1
	off := uint32(last)*nameChunk + uint32(len(x.names[last]))
	x.names[last] = append(x.names[last], s...)
	return nameRef{off: off, n: uint16(len(s))}
}

func (x *index) newInode(i inode) inodeID {
	if n := len(x.freeInodes); n > 0 {
		id := x.freeInodes[n-1]
		x.freeInodes = x.freeInodes[:n-1]
		*x.inode(id) = i
		return id
	}
	return inodeID(x.inodes.add(i))
}

// inodeOf converts a to a stored inode.
func (x *index) inodeOf(a *attrs) inodeID {
	i := inode{
		typ: a.typ, mode: uint16(a.mode & 0o7777), size: a.size, layer: a.layer, ord: a.ord,
		mtimeSec: a.mtime.Unix(), mtimeNsec: int32(a.mtime.Nanosecond()),
	}
	if a.implicit {
		i.flags |= flagImplicit
	}
	var e inodeExt
	need := false
	if a.uid > 1<<32-1 || a.gid > 1<<32-1 {
		e.uid, e.gid, e.bigIDs, need = a.uid, a.gid, true, true
	} else {
		i.uid, i.gid = uint32(a.uid), uint32(a.gid)
	}
	if a.linkname != "" {
		e.link, need = x.intern(a.linkname), true
	}
	if a.major != 0 || a.minor != 0 {
		e.major, e.minor, need = a.major, a.minor, true
	}
	if len(a.xattrs) > 0 {
		e.xattrs, need = a.xattrs, true
	}
	if need {
		x.ext = append(x.ext, e)
		i.ext = uint32(len(x.ext))
	}
	return x.newInode(i)
}

// attrsOf returns the full metadata of inode id.
func (x *index) attrsOf(id inodeID) attrs {
	i := x.inode(id)
	a := attrs{
		typ: i.typ, mode: int64(i.mode), uid: int(i.uid), gid: int(i.gid), size: i.size,
		mtime: time.Unix(i.mtimeSec, int64(i.mtimeNsec)).UTC(), layer: i.layer, ord: i.ord,
		hardlinked: i.flags&flagHardlinked != 0, implicit: i.flags&flagImplicit != 0,
	}
	if i.mtimeSec == 0 && i.mtimeNsec == 0 {
		a.mtime = epoch
	}
	if i.ext != 0 {
		e := &x.ext[i.ext-1]
		if e.link.n > 0 {
			a.linkname = x.str(e.link)
		}
		a.major, a.minor, a.xattrs = e.major, e.minor, e.xattrs
		if e.bigIDs {
			a.uid, a.gid = e.uid, e.gid
		}
	}
	return a
}

// linkname returns the symlink target of inode id.
func (x *index) linkname(id inodeID) string {
	i := x.inode(id)
	if i.ext == 0 {
		return ""
	}
	e := &x.ext[i.ext-1]
	if e.link.n == 0 {
		return ""
	}
	return x.str(e.link)
}

func (x *index) hash(parent nodeID, name string) uint64 {
	h := maphash.String(x.seed, name)
	return bits.RotateLeft64(h, 17) ^ uint64(parent)*0x9e3779b97f4a7c15
}

func (x *index) slot(h uint64) int { return int(h & uint64(len(x.table)-1)) }

// child returns the child name of dir parent, or 0.
func (x *index) child(parent nodeID, name string) nodeID {
	for i := x.slot(x.hash(parent, name)); ; i = (i + 1) & (len(x.table) - 1) {
		id := x.table[i]
		if id == 0 {
			return 0
		}
		n := x.node(id)
		if n.parent == parent && int(n.nameLen) == len(name) && string(x.bytes(n.name())) == name {
			return id
		}
	}
}

// addChild makes a new node name (interned) below parent, with inode ino
// and layer; name must not exist there.
func (x *index) addChild(parent nodeID, name string, ino inodeID, layer int32) nodeID {
	r := x.intern(name)
	n := node{parent: parent, nameOff: r.off, nameLen: r.n, ino: ino, layer: layer}
	p := x.node(parent)
	n.next = p.child
	var id nodeID
	if k := len(x.freeNodes); k > 0 {
		id = x.freeNodes[k-1]
		x.freeNodes = x.freeNodes[:k-1]
		*x.node(id) = n
	} else {
		id = nodeID(x.nodes.add(n))
	}
	p = x.node(parent)
	if p.child != 0 {
		x.node(p.child).prev = id
	}
	p.child = id
	x.insert(id, name)
	return id
}

func (x *index) insert(id nodeID, name string) {
	if (x.used+1)*2 > len(x.table) {
		x.grow()
	}
	i := x.slot(x.hash(x.node(id).parent, name))
	for x.table[i] != 0 {
		i = (i + 1) & (len(x.table) - 1)
	}
	x.table[i] = id
	x.used++
}

func (x *index) grow() {
	old := x.table
	x.table = make([]nodeID, len(old)*2)
	for _, id := range old {
		if id == 0 {
			continue
		}
		i := x.slot(x.hash(x.node(id).parent, string(x.nameOf(id))))
		for x.table[i] != 0 {
			i = (i + 1) & (len(x.table) - 1)
		}
		x.table[i] = id
	}
}

// unhash removes id from the table (backward-shift deletion).
func (x *index) unhash(id nodeID) {
	mask := len(x.table) - 1
	n := x.node(id)
	i := x.slot(x.hash(n.parent, string(x.bytes(n.name()))))
	for x.table[i] != id {
		i = (i + 1) & mask
	}
	x.table[i] = 0
	x.used--
	for j := (i + 1) & mask; x.table[j] != 0; j = (j + 1) & mask {
		m := x.node(x.table[j])
		home := x.slot(x.hash(m.parent, string(x.bytes(m.name()))))
		// Move the entry at j back to i unless its home lies in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			x.table[i], x.table[j] = x.table[j], 0
			i = j
		}
	}
}

// remove deletes node id and its subtree, and returns the number of paths
// removed. Inodes no other path names are freed.
func (x *index) remove(id nodeID) int {
	n := x.node(id)
	if n.prev != 0 {
		x.node(n.prev).next = n.next
	} else {
		x.node(n.parent).child = n.next
	}
	if n.next != 0 {
		x.node(n.next).prev = n.prev
	}
	return x.drop(id)
}

// drop frees id and its subtree (already unlinked from its parent).
func (x *index) drop(id nodeID) int {
	count := 1
	for c := x.node(id).child; c != 0; {
		next := x.node(c).next
		count += x.drop(c)
		c = next
	}
	x.unhash(id)
	n := x.node(id)
	if n.ino != 0 && x.inode(n.ino).flags&flagHardlinked == 0 {
		x.freeInodes = append(x.freeInodes, n.ino)
	}
	*n = node{}
	x.freeNodes = append(x.freeNodes, id)
	return count
}

// setInode points node id at a new inode, freeing its old one unless
// hard-linked.
func (x *index) setInode(id nodeID, ino inodeID) {
	n := x.node(id)
	if n.ino != 0 && n.ino != ino && x.inode(n.ino).flags&flagHardlinked == 0 {
		x.freeInodes = append(x.freeInodes, n.ino)
	}
	n.ino = ino
}

// children returns the children of dir in name order.
func (x *index) children(dir nodeID) []nodeID {
	var out []nodeID
	for c := x.node(dir).child; c != 0; c = x.node(c).next {
		out = append(out, c)
	}
	x.sortByName(out)
	return out
}

func (x *index) sortByName(ids []nodeID) {
	slices.SortFunc(ids, func(a, b nodeID) int { return bytes.Compare(x.nameOf(a), x.nameOf(b)) })
}

// path returns the path of node id ("usr/lib/x").
func (x *index) path(id nodeID) string {
	var comps [][]byte
	size := 0
	for ; id != rootID && id != 0; id = x.node(id).parent {
		b := x.nameOf(id)
		comps = append(comps, b)
		size += len(b) + 1
	}
	buf := make([]byte, 0, size)
	for i := len(comps) - 1; i >= 0; i-- {
		buf = append(buf, comps[i]...)
		if i > 0 {
			buf = append(buf, '/')
		}
	}
	return string(buf)
}

// bitset is a set of small integers (node IDs); a nil *bitset is empty.
type bitset struct{ w []uint64 }

func (b *bitset) has(i uint32) bool {
	return b != nil && int(i/64) < len(b.w) && b.w[i/64]&(1<<(i%64)) != 0
}

func (b *bitset) add(i uint32) {
	for int(i/64) >= len(b.w) {
		b.w = append(b.w, 0)
	}
	b.w[i/64] |= 1 << (i % 64)
}
