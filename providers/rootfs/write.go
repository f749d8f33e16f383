package rootfs

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// view is the tree as one WriteTar call writes it: EmptyDirs and Extra are
// applied on copies of the nodes they change (copy on write), so the Tree
// itself never changes.
type view struct {
	root        *node
	owned       map[*node]bool
	extraLinked map[*inode]bool
}

func (t *Tree) newView(opts TarOptions) (*view, error) {
	v := &view{root: t.root, owned: map[*node]bool{}, extraLinked: map[*inode]bool{}}
	if len(opts.EmptyDirs) == 0 && len(opts.Extra) == 0 && len(opts.IfMissing) == 0 {
		return v, nil
	}
	v.root = v.own(t.root)
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
		ino := implicitDir()
		if old := parent.kids[base]; old != nil && old.ino.isDir() {
			ino = old.ino
		}
		n := &node{ino: ino, kids: map[string]*node{}}
		v.owned[n] = true
		parent.kids[base] = n
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
	absent := func(n *node) bool { return n == nil || dropDevices && isDevice(n.ino.typ) }
	// Check first, without changing the view: the path must be absent and
	// every existing parent a directory.
	cur := v.root
	for i, c := range comps {
		k := cur.kids[c]
		if absent(k) {
			break
		}
		if i == len(comps)-1 || !k.ino.isDir() {
			return nil // exists, or a parent is not a directory
		}
		cur = k
	}
	v.root = v.own(v.root)
	cur = v.root
	for _, c := range comps[:len(comps)-1] {
		k := cur.kids[c]
		if absent(k) {
			k = &node{ino: &inode{typ: tar.TypeDir, mode: 0o755, mtime: mtime, layer: -1}, kids: map[string]*node{}}
			v.owned[k] = true
		} else {
			k = v.own(k)
		}
		cur.kids[c] = k
		cur = k
	}
	ino := &inode{typ: e.Type, mode: e.Mode & 0o7777, uid: e.Uid, gid: e.Gid, mtime: mtime, layer: -1, linkname: e.Linkname, xattrs: e.Xattrs}
	if e.Type != tar.TypeSymlink {
		ino.linkname = ""
	}
	n := &node{ino: ino}
	if ino.isDir() {
		n.kids = map[string]*node{}
	}
	v.owned[n] = true
	cur.kids[comps[len(comps)-1]] = n
	return nil
}

// own returns a private copy of n whose children may be changed.
func (v *view) own(n *node) *node {
	if v.owned[n] {
		return n
	}
	c := &node{ino: n.ino, layer: n.layer}
	if n.kids != nil {
		c.kids = make(map[string]*node, len(n.kids))
		for k, kn := range n.kids {
			c.kids[k] = kn
		}
	}
	v.owned[c] = true
	return c
}

// ownDir returns a private copy of the directory at comps, creating missing
// directories 0755 root:root and refusing symlinks and non-directories
// (ErrExtraParent).
func (v *view) ownDir(comps []string) (*node, error) {
	cur := v.root
	for i, c := range comps {
		k := cur.kids[c]
		if k == nil {
			k = &node{ino: implicitDir(), kids: map[string]*node{}}
			v.owned[k] = true
		} else if !k.ino.isDir() {
			return nil, extraParentError(k, comps[:i+1])
		} else {
			k = v.own(k)
		}
		cur.kids[c] = k
		cur = k
	}
	return cur, nil
}

func (v *view) lookup(comps []string) (*node, error) {
	return (&Tree{root: v.root}).lookup(comps)
}

// extraParentError explains why nothing can be written below the image's
// path comps, which holds n.
func extraParentError(n *node, comps []string) error {
	p := strings.Join(comps, "/")
	if n.ino.typ == tar.TypeSymlink {
		return fmt.Errorf("%w: %q is a symlink (to %q) in the image", ErrExtraParent, p, n.ino.linkname)
	}
	return fmt.Errorf("%w: %q is not a directory in the image", ErrExtraParent, p)
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
		case n == nil && s.fromLink:
			return nil, fmt.Errorf("%w: %q resolves to %q, which does not exist in the image",
				ErrExtraParent, strings.Join(comps, "/"), "/"+strings.Join(next, "/"))
		case n == nil || n.ino.isDir():
			cur = next
		case n.ino.typ == tar.TypeSymlink:
			if links++; links > maxSymlinks {
				return nil, fmt.Errorf("%w: too many levels of symlinks in %q", ErrExtraParent, strings.Join(comps, "/"))
			}
			target := n.ino.linkname
			if strings.HasPrefix(target, "/") {
				cur = nil
			}
			var ts []step
			for t := range strings.SplitSeq(target, "/") {
				ts = append(ts, step{name: t, fromLink: true})
			}
			todo = append(ts, todo...)
		default:
			return nil, extraParentError(n, next)
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
	ino := &inode{typ: e.Type, mode: e.Mode & 0o7777, uid: e.Uid, gid: e.Gid, mtime: e.ModTime, layer: -1, xattrs: e.Xattrs}
	if ino.mtime.IsZero() {
		ino.mtime = epoch
	}
	switch e.Type {
	case tar.TypeReg:
		ino.content = e.Content
		ino.size = int64(len(e.Content))
	case tar.TypeDir, tar.TypeFifo:
	case tar.TypeSymlink:
		if e.Linkname == "" {
			return fmt.Errorf("symlink with an empty target")
		}
		ino.linkname = e.Linkname
	case tar.TypeChar, tar.TypeBlock:
		ino.major, ino.minor = e.Devmajor, e.Devminor
	case tar.TypeLink:
		tcomps, err := cleanPath(e.Linkname)
		if err != nil {
			return fmt.Errorf("hard link target: %w", err)
		}
		target, err := v.lookup(tcomps)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", e.Linkname, err)
		}
		if target == nil || target.ino.isDir() {
			return fmt.Errorf("%w: hard link target %q does not exist or is a directory", ErrUnsafe, e.Linkname)
		}
		ino = target.ino
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
	n := &node{ino: ino}
	if ino.isDir() {
		n.kids = map[string]*node{}
		if old := parent.kids[base]; old != nil && old.ino.isDir() {
			for k, kn := range old.kids {
				n.kids[k] = kn
			}
		}
	}
	v.owned[n] = true
	parent.kids[base] = n
	return nil
}

// item is one entry of the output in write order.
type item struct {
	path string
	ino  *inode
	// link is the path of the first path of a hard-linked inode, for the
	// paths after it.
	link string
}

// plan walks the view depth first, children sorted by name, and splits it
// into entries written from memory (directories, symlinks, devices, Extra
// files), regular files whose content comes from the layers, and hard links
// written last.
type plan struct {
	meta    []item
	byLayer [][]item // regular files by layer, in layer order
	links   []item
}

func (v *view) plan(nlayers int, dropDevices bool) *plan {
	p := &plan{byLayer: make([][]item, nlayers)}
	first := map[*inode]string{}
	var walk func(n *node, prefix string)
	walk = func(n *node, prefix string) {
		names := make([]string, 0, len(n.kids))
		for name := range n.kids {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			k := n.kids[name]
			path := prefix + name
			ino := k.ino
			if dropDevices && isDevice(ino.typ) {
				continue
			}
			if ino.hardlinked || v.extraLinked[ino] {
				if f, ok := first[ino]; ok {
					p.links = append(p.links, item{path: path, ino: ino, link: f})
					continue
				}
				first[ino] = path
			}
			it := item{path: path, ino: ino}
			switch {
			case ino.isDir():
				p.meta = append(p.meta, it)
				walk(k, path+"/")
			case ino.typ == tar.TypeReg && ino.layer >= 0:
				p.byLayer[ino.layer] = append(p.byLayer[ino.layer], it)
			default:
				p.meta = append(p.meta, it)
			}
		}
	}
	walk(v.root, "")
	for _, l := range p.byLayer {
		slices.SortFunc(l, func(a, b item) int { return int(a.ino.ord) - int(b.ino.ord) })
	}
	return p
}

// Entries returns the flattened tree sorted by path (byte order), without
// contents. Of the paths of a hard-linked inode, the first in write order is
// a TypeReg (or the inode's type) and the others are TypeLink entries whose
// Linkname is that first path.
func (t *Tree) Entries() []Entry {
	v := &view{root: t.root}
	p := v.plan(len(t.layers), false)
	out := make([]Entry, 0, t.files+t.dirs)
	for _, it := range p.meta {
		out = append(out, it.entry(false))
	}
	for _, l := range p.byLayer {
		for _, it := range l {
			out = append(out, it.entry(false))
		}
	}
	for _, it := range p.links {
		out = append(out, it.entry(false))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (it item) entry(allRoot bool) Entry {
	ino := it.ino
	e := Entry{
		Path:     it.path,
		Type:     ino.typ,
		Mode:     ino.mode,
		Uid:      ino.uid,
		Gid:      ino.gid,
		Linkname: ino.linkname,
		ModTime:  ino.mtime,
		Devmajor: ino.major,
		Devminor: ino.minor,
		Xattrs:   ino.xattrs,
	}
	if ino.typ == tar.TypeReg {
		e.Size = ino.size
	}
	if it.link != "" {
		e.Type = tar.TypeLink
		e.Linkname = it.link
		e.Size = 0
	}
	if allRoot {
		e.Uid, e.Gid = 0, 0
	}
	return e
}

func (it item) header(allRoot bool) *tar.Header {
	e := it.entry(allRoot)
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

// writeHeader writes the header of it, edited by opts.EditHeader.
func writeHeader(tw *tar.Writer, it item, opts *TarOptions) error {
	h := it.header(opts.AllRoot)
	if opts.ImplicitDirMode != 0 && it.ino.implicit && it.link == "" {
		h.Mode = opts.ImplicitDirMode & 0o7777
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
	p := v.plan(len(t.layers), opts.DropDevices)
	tw := tar.NewWriter(w)
	for _, it := range p.meta {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := writeHeader(tw, it, &opts); err != nil {
			return fmt.Errorf("writing %q: %w", it.path, err)
		}
		if it.ino.typ == tar.TypeReg {
			if _, err := tw.Write(it.ino.content); err != nil {
				return fmt.Errorf("writing %q: %w", it.path, err)
			}
		}
	}
	if err := t.copyLayers(ctx, tw, p.byLayer, &opts); err != nil {
		return err
	}
	for _, it := range p.links {
		if err := writeHeader(tw, it, &opts); err != nil {
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
func (t *Tree) copyLayers(ctx context.Context, tw *tar.Writer, byLayer [][]item, opts *TarOptions) error {
	var todo []int
	for i, items := range byLayer {
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
			err = copyLayer(ctx, tw, o.ra, byLayer[i], opts)
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
// of items (sorted by ordinal) with their content.
func copyLayer(ctx context.Context, tw *tar.Writer, r io.Reader, items []item, opts *TarOptions) error {
	tr := tar.NewReader(r)
	next := 0
	for ord := int32(0); next < len(items); ord++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("layer ended before member %d (%q): the layer changed since Flatten", items[next].ino.ord, items[next].path)
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		if ord != items[next].ino.ord {
			continue
		}
		it := items[next]
		next++
		if hdr.Size != it.ino.size || !isRegular(hdr.Typeflag) {
			return fmt.Errorf("member %d (%q) changed since Flatten", ord, hdr.Name)
		}
		if err := writeHeader(tw, it, opts); err != nil {
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
