package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// iref is an inode as a view sees it: one of the tree's, or the attributes
// of an entry the TarOptions add.
type iref struct {
	id inodeID
	x  *attrs
}

// vnode is a path of a view that the TarOptions changed, or a directory
// on the way to one. Its tree node's children show through unless hidden;
// kids replace (or add) children by name.
type vnode struct {
	base nodeID // the tree's node at this path (0: none)
	ino  iref
	kids map[string]*vnode
	hide bool // base's children are not shown (emptied or replaced)
}

// vref is a path of a view: an overlay node, or an unchanged tree node
// (with its whole subtree); the zero value is a missing path.
type vref struct {
	v *vnode
	n nodeID
}

func (r vref) missing() bool { return r.v == nil && r.n == 0 }

// view is the tree as one WriteTar call writes it: EmptyDirs, Extra and
// IfMissing are applied in an overlay, so the Tree itself never changes.
type view struct {
	t           *Tree
	root        *vnode
	extraLinked map[iref]bool
}

func (t *Tree) newView(opts TarOptions) (*view, error) {
	v := &view{t: t, root: &vnode{base: rootID, ino: iref{id: t.x.node(rootID).ino}}, extraLinked: map[iref]bool{}}
	for _, d := range opts.EmptyDirs {
		comps, err := cleanPath(d)
		if err != nil {
			return nil, fmt.Errorf("empty dir %q: %w", d, err)
		}
		if len(comps) == 0 {
			return nil, fmt.Errorf("empty dir %q: cannot empty the root", d)
		}
		parent, err := v.ownDir(comps[:len(comps)-1])
		if err != nil {
			return nil, fmt.Errorf("empty dir %q: %w", d, err)
		}
		base := comps[len(comps)-1]
		ino := iref{x: implicitDir()}
		if old := v.child(vref{v: parent}, base); !old.missing() && v.isDir(old) {
			ino = v.ino(old)
		}
		v.set(parent, base, &vnode{ino: ino, hide: true})
	}
	for i := range opts.Extra {
		e := &opts.Extra[i]
		if err := v.addExtra(e, opts.ParentSymlinks); err != nil {
			return nil, fmt.Errorf("adding %q: %w", e.Path, err)
		}
	}
	for i := range opts.IfMissing {
		e := &opts.IfMissing[i]
		if err := v.addIfMissing(e, opts.DropDevices); err != nil {
			return nil, fmt.Errorf("if-missing entry %q: %w", e.Path, err)
		}
	}
	return v, nil
}

func implicitDir() *attrs {
	return &attrs{typ: tar.TypeDir, mode: 0o755, mtime: epoch, layer: -1}
}

// attrs returns the metadata of inode i.
func (v *view) attrs(i iref) attrs {
	if i.x != nil {
		return *i.x
	}
	return v.t.x.attrsOf(i.id)
}

func (v *view) ino(r vref) iref {
	if r.v != nil {
		return r.v.ino
	}
	return iref{id: v.t.x.node(r.n).ino}
}

func (v *view) typ(r vref) byte {
	i := v.ino(r)
	if i.x != nil {
		return i.x.typ
	}
	return v.t.x.inode(i.id).typ
}

func (v *view) isDir(r vref) bool { return v.typ(r) == tar.TypeDir }

func (v *view) linkname(r vref) string {
	i := v.ino(r)
	if i.x != nil {
		return i.x.linkname
	}
	return v.t.x.linkname(i.id)
}

// child returns the child name of the directory r (missing when r is not
// a directory or has no such child).
func (v *view) child(r vref, name string) vref {
	if r.missing() || !v.isDir(r) {
		return vref{}
	}
	base := r.n
	if r.v != nil {
		if k, ok := r.v.kids[name]; ok {
			return vref{v: k}
		}
		if r.v.hide {
			return vref{}
		}
		base = r.v.base
	}
	if base == 0 {
		return vref{}
	}
	return vref{n: v.t.x.child(base, name)}
}

// set puts k at parent/name.
func (v *view) set(parent *vnode, name string, k *vnode) {
	if parent.kids == nil {
		parent.kids = map[string]*vnode{}
	}
	parent.kids[name] = k
}

// own returns the overlay node of the existing path r, the child name of
// parent, making one that shows r's tree node through.
func (v *view) own(parent *vnode, name string, r vref) *vnode {
	if r.v != nil {
		return r.v
	}
	k := &vnode{base: r.n, ino: v.ino(r)}
	v.set(parent, name, k)
	return k
}

// ownDir returns the overlay node of the directory at comps, creating
// missing directories 0755 root:root and refusing symlinks and
// non-directories (ErrExtraParent).
func (v *view) ownDir(comps []string) (*vnode, error) {
	cur := v.root
	for i, c := range comps {
		k := v.child(vref{v: cur}, c)
		switch {
		case k.missing():
			nk := &vnode{ino: iref{x: implicitDir()}, hide: true}
			v.set(cur, c, nk)
			cur = nk
		case !v.isDir(k):
			return nil, v.extraParentError(k, comps[:i+1])
		default:
			cur = v.own(cur, c, k)
		}
	}
	return cur, nil
}

// lookup finds comps without following symlinks (missing: the zero vref);
// a symlink on the way is an error.
func (v *view) lookup(comps []string) (vref, error) {
	cur := vref{v: v.root}
	for i, c := range comps {
		if !v.isDir(cur) {
			if v.typ(cur) == tar.TypeSymlink {
				return vref{}, fmt.Errorf("%w: parent %q is a symlink (to %q); refusing to write through it",
					ErrUnsafe, strings.Join(comps[:i], "/"), v.linkname(cur))
			}
			return vref{}, nil
		}
		cur = v.child(cur, c)
		if cur.missing() {
			return vref{}, nil
		}
	}
	return cur, nil
}

// extraParentError explains why nothing can be written below the image's
// path comps, which holds r.
func (v *view) extraParentError(r vref, comps []string) error {
	p := strings.Join(comps, "/")
	if v.typ(r) == tar.TypeSymlink {
		return fmt.Errorf("%w: %q is a symlink (to %q) in the image", ErrExtraParent, p, v.linkname(r))
	}
	return fmt.Errorf("%w: %q is not a directory in the image", ErrExtraParent, p)
}

// addIfMissing adds the directory or symlink e unless its path exists or a
// parent is not a directory; missing parents are created.
func (v *view) addIfMissing(e *Entry, dropDevices bool) error {
	if e.Type != tar.TypeDir && e.Type != tar.TypeSymlink {
		return fmt.Errorf("only directories and symlinks can be added if missing")
	}
	if e.Type == tar.TypeSymlink && e.Linkname == "" {
		return fmt.Errorf("symlink with an empty target")
	}
	if e.Uid < 0 || e.Gid < 0 {
		return fmt.Errorf("negative uid or gid")
	}
	comps, err := cleanPath(e.Path)
	if err != nil {
		return err
	}
	if len(comps) == 0 {
		return fmt.Errorf("cannot add the root")
	}
	mtime := e.ModTime
	if mtime.IsZero() {
		mtime = epoch
	}
	absent := func(r vref) bool { return r.missing() || dropDevices && isDevice(v.typ(r)) }
	// Check first, without changing the view: the path must be absent and
	// every existing parent a directory.
	cur := vref{v: v.root}
	for i, c := range comps {
		k := v.child(cur, c)
		if absent(k) {
			break
		}
		if i == len(comps)-1 || !v.isDir(k) {
			return nil // exists, or a parent is not a directory
		}
		cur = k
	}
	p := v.root
	for _, c := range comps[:len(comps)-1] {
		k := v.child(vref{v: p}, c)
		if absent(k) {
			nk := &vnode{ino: iref{x: &attrs{typ: tar.TypeDir, mode: 0o755, mtime: mtime, layer: -1}}, hide: true}
			v.set(p, c, nk)
			p = nk
		} else {
			p = v.own(p, c, k)
		}
	}
	a := &attrs{typ: e.Type, mode: e.Mode & 0o7777, uid: e.Uid, gid: e.Gid, mtime: mtime, layer: -1, xattrs: e.Xattrs}
	if e.Type == tar.TypeSymlink {
		a.linkname = e.Linkname
	}
	v.set(p, comps[len(comps)-1], &vnode{ino: iref{x: a}, hide: true})
	return nil
}

// maxSymlinks bounds the links resolveDir follows (Linux's MAXSYMLINKS).
const maxSymlinks = 40

// resolveDir resolves the directory path comps inside the view, following
// symlinks as the kernel would with the tree as the root directory, and
// returns the real path (no symlinks left; its missing tail is created by
// ownDir). A symlink whose target does not exist, a non-directory on the
// way and too many links fail with ErrExtraParent.
func (v *view) resolveDir(comps []string) ([]string, error) {
	type step struct {
		name     string
		fromLink bool // a component of a symlink's target
	}
	todo := make([]step, 0, len(comps))
	for _, c := range comps {
		todo = append(todo, step{name: c})
	}
	var cur []string
	links := 0
	for len(todo) > 0 {
		s := todo[0]
		todo = todo[1:]
		switch s.name {
		case "", ".":
			continue
		case "..":
			if len(cur) > 0 {
				cur = cur[:len(cur)-1]
			}
			continue
		}
		next := append(cur[:len(cur):len(cur)], s.name)
		n, _ := v.lookup(next) // cur holds no symlinks: lookup cannot fail
		switch {
		case n.missing() && s.fromLink:
			return nil, fmt.Errorf("%w: %q resolves to %q, which does not exist in the image",
				ErrExtraParent, strings.Join(comps, "/"), "/"+strings.Join(next, "/"))
		case n.missing() || v.isDir(n):
			cur = next
		case v.typ(n) == tar.TypeSymlink:
			if links++; links > maxSymlinks {
				return nil, fmt.Errorf("%w: too many levels of symlinks in %q", ErrExtraParent, strings.Join(comps, "/"))
			}
			target := v.linkname(n)
			if strings.HasPrefix(target, "/") {
				cur = nil
			}
			var ts []step
			for t := range strings.SplitSeq(target, "/") {
				ts = append(ts, step{name: t, fromLink: true})
			}
			todo = append(ts, todo...)
		default:
			return nil, v.extraParentError(n, next)
		}
	}
	return cur, nil
}

func (v *view) addExtra(e *Entry, parents ParentSymlinks) error {
	comps, err := cleanPath(e.Path)
	if err != nil {
		return err
	}
	if len(comps) == 0 {
		return fmt.Errorf("cannot replace the root")
	}
	if e.Uid < 0 || e.Gid < 0 {
		return fmt.Errorf("negative uid or gid")
	}
	a := &attrs{typ: e.Type, mode: e.Mode & 0o7777, uid: e.Uid, gid: e.Gid, mtime: e.ModTime, layer: -1, xattrs: e.Xattrs}
	if a.mtime.IsZero() {
		a.mtime = epoch
	}
	ino := iref{x: a}
	switch e.Type {
	case tar.TypeReg:
		a.content = e.Content
		a.size = int64(len(e.Content))
	case tar.TypeDir, tar.TypeFifo:
	case tar.TypeSymlink:
		if e.Linkname == "" {
			return fmt.Errorf("symlink with an empty target")
		}
		a.linkname = e.Linkname
	case tar.TypeChar, tar.TypeBlock:
		a.major, a.minor = e.Devmajor, e.Devminor
	case tar.TypeLink:
		tcomps, err := cleanPath(e.Linkname)
		if err != nil {
			return fmt.Errorf("hard link target: %w", err)
		}
		target, err := v.lookup(tcomps)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", e.Linkname, err)
		}
		if target.missing() || v.isDir(target) {
			return fmt.Errorf("%w: hard link target %q does not exist or is a directory", ErrUnsafe, e.Linkname)
		}
		ino = v.ino(target)
		v.extraLinked[ino] = true
	default:
		return fmt.Errorf("unsupported entry type %q", e.Type)
	}
	dir := comps[:len(comps)-1]
	if parents == ResolveParentSymlinks {
		if dir, err = v.resolveDir(dir); err != nil {
			return err
		}
	}
	parent, err := v.ownDir(dir)
	if err != nil {
		return err
	}
	base := comps[len(comps)-1]
	n := &vnode{ino: ino, hide: true}
	if e.Type == tar.TypeDir {
		// A directory over a directory keeps its children.
		if old := v.child(vref{v: parent}, base); !old.missing() && v.isDir(old) {
			if old.v != nil {
				n.base, n.hide = old.v.base, old.v.hide
				for k, kn := range old.v.kids {
					v.set(n, k, kn)
				}
			} else {
				n.base, n.hide = old.n, false
			}
		}
	}
	v.set(parent, base, n)
	return nil
}

// kid is a child in a view walk.
type kid struct {
	name []byte
	r    vref
}

// kids returns the children of the directory r in name order.
func (v *view) kids(r vref) []kid {
	x := v.t.x
	base := r.n
	var over map[string]*vnode
	if r.v != nil {
		base, over = r.v.base, r.v.kids
		if r.v.hide {
			base = 0
		}
	}
	var out []kid
	if base != 0 {
		for _, c := range x.children(base) {
			name := x.nameOf(c)
			if _, replaced := over[string(name)]; !replaced {
				out = append(out, kid{name: name, r: vref{n: c}})
			}
		}
	}
	if len(over) > 0 {
		for name, k := range over {
			out = append(out, kid{name: []byte(name), r: vref{v: k}})
		}
		slices.SortFunc(out, func(a, b kid) int { return bytes.Compare(a.name, b.name) })
	}
	return out
}

// item is one entry of the output.
type item struct {
	path string
	ino  iref
	// link is the first path of a hard-linked inode, for the paths after it.
	link string
}

// fileRef is a regular file whose content a layer holds: ref is its tree
// node, or (with the high bit) the index of an item in plan.paths (a path
// the options made); ord is its member number in the layer.
type fileRef struct {
	ref uint32
	ord int32
}

const pathRef = 1 << 31

// plan is what WriteTar writes after the entries written from memory:
// the regular files whose content comes from the layers, by layer and
// member order, and the hard links written last.
type plan struct {
	byLayer [][]fileRef
	paths   []item
	links   []item
}

// walk visits the view depth first, children sorted by name: meta is
// called for every entry written from memory (directories, parents first;
// symlinks, devices, TarOptions files) in that order; regular files whose
// content is in a layer and hard links go to the plan.
func (v *view) walk(nlayers int, dropDevices bool, meta func(it item) error) (*plan, error) {
	return v.walkSkipping(nlayers, dropDevices, meta, nil, map[iref]string{})
}

// walkSkipping is walk without the tree nodes in skip (regular files
// already written), with first holding the paths already written of
// hard-linked inodes: their other paths become links to those.
func (v *view) walkSkipping(nlayers int, dropDevices bool, meta func(it item) error, skip *bitset, first map[iref]string) (*plan, error) {
	p := &plan{byLayer: make([][]fileRef, nlayers)}
	var buf []byte
	var rec func(r vref) error
	rec = func(r vref) error {
		for _, k := range v.kids(r) {
			if k.r.v == nil && skip.has(uint32(k.r.n)) {
				continue
			}
			n := len(buf)
			buf = append(buf, k.name...)
			ino := v.ino(k.r)
			a := v.attrsLite(ino)
			if dropDevices && isDevice(a.typ) {
				buf = buf[:n]
				continue
			}
			if a.hardlinked || v.extraLinked[ino] {
				path := string(buf)
				if f, ok := first[ino]; ok {
					p.links = append(p.links, item{path: path, ino: ino, link: f})
					buf = buf[:n]
					continue
				}
				first[ino] = path
			}
			switch {
			case a.typ == tar.TypeDir:
				if err := meta(item{path: string(buf), ino: ino}); err != nil {
					return err
				}
				buf = append(buf, '/')
				if err := rec(k.r); err != nil {
					return err
				}
			case a.typ == tar.TypeReg && a.layer >= 0:
				if k.r.v == nil {
					p.byLayer[a.layer] = append(p.byLayer[a.layer], fileRef{ref: uint32(k.r.n), ord: a.ord})
				} else {
					p.byLayer[a.layer] = append(p.byLayer[a.layer], fileRef{ref: pathRef | uint32(len(p.paths)), ord: a.ord})
					p.paths = append(p.paths, item{path: string(buf), ino: ino})
				}
			default:
				if err := meta(item{path: string(buf), ino: ino}); err != nil {
					return err
				}
			}
			buf = buf[:n]
		}
		return nil
	}
	if err := rec(vref{v: v.root}); err != nil {
		return nil, err
	}
	for _, l := range p.byLayer {
		slices.SortFunc(l, func(a, b fileRef) int { return int(a.ord) - int(b.ord) })
	}
	return p, nil
}

// lite are the attributes walk decides by.
type lite struct {
	typ        byte
	hardlinked bool
	layer, ord int32
}

func (v *view) attrsLite(i iref) lite {
	if i.x != nil {
		return lite{typ: i.x.typ, hardlinked: i.x.hardlinked, layer: i.x.layer, ord: i.x.ord}
	}
	in := v.t.x.inode(i.id)
	return lite{typ: in.typ, hardlinked: in.flags&flagHardlinked != 0, layer: in.layer, ord: in.ord}
}

// file returns the item of a planned regular file.
func (v *view) file(p *plan, f fileRef) item {
	if f.ref&pathRef != 0 {
		return p.paths[f.ref&^pathRef]
	}
	n := nodeID(f.ref)
	return item{path: v.t.x.path(n), ino: iref{id: v.t.x.node(n).ino}}
}

// Entries returns the flattened tree sorted by path (byte order), without
// contents. Of the paths of a hard-linked inode, the first in write order is
// a TypeReg (or the inode's type) and the others are TypeLink entries whose
// Linkname is that first path.
func (t *Tree) Entries() []Entry {
	v := &view{t: t, root: &vnode{base: rootID, ino: iref{id: t.x.node(rootID).ino}}}
	out := make([]Entry, 0, t.files+t.dirs)
	add := func(it item) {
		a := v.attrs(it.ino)
		out = append(out, entryOf(it.path, &a, it.link, false))
	}
	p, _ := v.walk(len(t.layers), false, func(it item) error { add(it); return nil })
	for _, l := range p.byLayer {
		for _, f := range l {
			add(v.file(p, f))
		}
	}
	for _, it := range p.links {
		add(it)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// Root returns the root directory's metadata (Path ""): that of the
// newest layer's root entry ("./", as `tar -C dir -c .` writes it), else
// 0755 root:root with mtime 0. Apptainer 1.5.3 and SingularityCE 4.5.1
// give their images' root these (umoci applies the root entry like any
// directory's); Enroot 4.1.2 keeps 0755 root:root. WriteTar writes no
// root entry (`mksquashfs -tar` 4.5.1 ignores it): mksquashfs takes the
// root's mode from -root-mode (and ignores -root-uid and -root-gid).
func (t *Tree) Root() Entry {
	a := t.x.attrsOf(t.x.node(rootID).ino)
	return entryOf("", &a, "", false)
}

// entryOf is the Entry of path with metadata a; link, when set, makes it a
// hard link to that path.
func entryOf(path string, a *attrs, link string, allRoot bool) Entry {
	e := Entry{
		Path:     path,
		Type:     a.typ,
		Mode:     a.mode,
		Uid:      a.uid,
		Gid:      a.gid,
		Linkname: a.linkname,
		ModTime:  a.mtime,
		Devmajor: a.major,
		Devminor: a.minor,
		Xattrs:   a.xattrs,
	}
	if a.typ == tar.TypeReg {
		e.Size = a.size
	}
	if link != "" {
		e.Type = tar.TypeLink
		e.Linkname = link
		e.Size = 0
	}
	if allRoot {
		e.Uid, e.Gid = 0, 0
	}
	return e
}

func headerOf(e Entry) *tar.Header {
	h := &tar.Header{
		Typeflag: e.Type,
		Name:     e.Path,
		Linkname: e.Linkname,
		Mode:     e.Mode,
		Uid:      e.Uid,
		Gid:      e.Gid,
		ModTime:  e.ModTime,
		Size:     e.Size,
		Devmajor: e.Devmajor,
		Devminor: e.Devminor,
	}
	if e.Type == tar.TypeDir {
		h.Name += "/"
	}
	if len(e.Xattrs) > 0 {
		h.PAXRecords = make(map[string]string, len(e.Xattrs))
		for k, v := range e.Xattrs {
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
	}
	return h
}

// writeHeader writes the header of it (metadata a), edited by opts.
func writeHeader(tw *tar.Writer, it item, a *attrs, opts *TarOptions) error {
	h := headerOf(entryOf(it.path, a, it.link, opts.AllRoot))
	if opts.ImplicitDirMode != 0 && a.implicit && it.link == "" {
		h.Mode = opts.ImplicitDirMode & 0o7777
	}
	if s := h.ModTime.Unix(); s < 0 {
		// squashfs keeps 32-bit times: mksquashfs over a directory (the
		// runtimes' builds) stores the low 32 bits of a time before 1970
		// (1960 becomes 2096), and `mksquashfs -tar` 4.5.1 refuses a
		// negative PAX mtime ("Failed to parse pax header"). Times past
		// 2106 it cuts to 32 bits itself.
		h.ModTime = time.Unix(int64(uint32(s)), 0).UTC()
	}
	if opts.EditHeader != nil {
		name, typ, size, link := h.Name, h.Typeflag, h.Size, h.Linkname
		opts.EditHeader(h)
		if h.Name != name || h.Typeflag != typ || h.Size != size || h.Linkname != link {
			return fmt.Errorf("EditHeader changed the name, type, size or link target")
		}
	}
	return tw.WriteHeader(h)
}

// WriteTar writes the flattened tree, changed by opts, as one tar stream to
// w, in an order that sequential consumers such as `mksquashfs - OUT -tar`
// accept: first every directory (parents before children), symlink, device
// node and Extra file; then the regular files, reading the layers again in
// order and copying only each path's winning entry (layers without one are
// not read); last the hard links, each after its target. Owners are written
// as numbers only. WriteTar does not change the Tree and may be called more
// than once, also concurrently. On error the stream written so far is
// incomplete; w is not closed.
func (t *Tree) WriteTar(ctx context.Context, w io.Writer, opts TarOptions) error {
	v, err := t.newView(opts)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	p, err := v.walk(len(t.layers), opts.DropDevices, func(it item) error { return writeItem(ctx, tw, v, &opts, it) })
	if err != nil {
		return err
	}
	return t.finishTar(ctx, tw, v, p, &opts)
}

// writeItem writes one item of the walk: its header and, for a regular
// file whose content the tree holds (an Extra entry), that content.
func writeItem(ctx context.Context, tw *tar.Writer, v *view, opts *TarOptions, it item) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a := v.attrs(it.ino)
	if err := writeHeader(tw, it, &a, opts); err != nil {
		return fmt.Errorf("writing %q: %w", it.path, err)
	}
	if a.typ == tar.TypeReg {
		if _, err := tw.Write(a.content); err != nil {
			return fmt.Errorf("writing %q: %w", it.path, err)
		}
	}
	return nil
}

// finishTar writes what follows the walk: the regular files of p copied
// from the layers, then the hard links, each after its target; it closes
// tw (not the writer below it).
func (t *Tree) finishTar(ctx context.Context, tw *tar.Writer, v *view, p *plan, opts *TarOptions) error {
	if err := t.copyLayers(ctx, tw, v, p, opts); err != nil {
		return err
	}
	for _, it := range p.links {
		a := v.attrs(it.ino)
		if err := writeHeader(tw, it, &a, opts); err != nil {
			return fmt.Errorf("writing %q: %w", it.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("finishing tar stream: %w", err)
	}
	return nil
}

// Read-ahead of WriteTar's second pass: each layer being copied, and the
// next one, are inflated in their own goroutine up to readAheadChunks chunks
// of readAheadChunk bytes ahead of the tar writer.
const (
	readAheadChunks = 8
	readAheadChunk  = 1 << 20
)

// openedLayer is a layer stream being inflated ahead of its use.
type openedLayer struct {
	ls  *layerStream
	ra  *readAhead
	err error
}

func (o *openedLayer) close() {
	if o.ra != nil {
		o.ra.Close()
	}
	if o.ls != nil {
		o.ls.Close()
	}
}

// copyLayers copies the winning regular files of every layer that has one,
// in layer order, inflating the next such layer while the current one is
// written.
func (t *Tree) copyLayers(ctx context.Context, tw *tar.Writer, v *view, p *plan, opts *TarOptions) error {
	var todo []int
	for i, items := range p.byLayer {
		if len(items) > 0 {
			todo = append(todo, i)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	open := make([]*openedLayer, len(todo))
	defer func() {
		for _, o := range open {
			if o != nil {
				o.close()
			}
		}
	}()
	start := func(k int) {
		o := &openedLayer{}
		o.ls, o.err = openLayer(t.layers[todo[k]])
		if o.err == nil {
			o.ra = newReadAhead(ctx, o.ls, readAheadChunks, readAheadChunk)
		}
		open[k] = o
	}
	for k, i := range todo {
		for j := k; j <= k+lookahead && j < len(todo); j++ {
			if open[j] == nil {
				start(j)
			}
		}
		o := open[k]
		err := o.err
		if err != nil {
			err = fmt.Errorf("opening: %w", err)
		} else {
			err = copyLayer(ctx, tw, o.ra, v, p, p.byLayer[i], opts)
		}
		o.close()
		open[k] = nil
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return t.layerError(i, err)
		}
	}
	return nil
}

// copyLayer reads the tar stream r of one layer and writes the regular files
// of files (sorted by member number) with their content.
func copyLayer(ctx context.Context, tw *tar.Writer, r io.Reader, v *view, p *plan, files []fileRef, opts *TarOptions) error {
	tr := tar.NewReader(r)
	next := 0
	for ord := int32(0); next < len(files); ord++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			it := v.file(p, files[next])
			return fmt.Errorf("layer ended before member %d (%q): the layer changed since Flatten", files[next].ord, it.path)
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		if ord != files[next].ord {
			continue
		}
		it := v.file(p, files[next])
		next++
		a := v.attrs(it.ino)
		if hdr.Size != a.size || !isRegular(hdr.Typeflag) {
			return fmt.Errorf("member %d (%q) changed since Flatten", ord, hdr.Name)
		}
		if err := writeHeader(tw, it, &a, opts); err != nil {
			return fmt.Errorf("writing %q: %w", it.path, err)
		}
		if _, err := io.CopyN(tw, ctxReader{ctx, tr}, hdr.Size); err != nil {
			return fmt.Errorf("copying %q (member %q): %w", it.path, hdr.Name, err)
		}
	}
	return nil
}

func isRegular(typ byte) bool {
	return typ == tar.TypeReg || typ == tar.TypeRegA || typ == tar.TypeCont
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
