package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var epoch = time.Unix(0, 0).UTC()

// Flatten reads the headers of every layer of img, oldest first, and computes
// the final tree: which layer entry wins each path, after whiteouts. File
// contents are not kept in memory; WriteTar reads them from the layers again,
// so the layers must stay readable (and unchanged) while the Tree is used.
//
// A layer that cannot be read (gzip or tar error, truncated) or that holds an
// invalid or unsafe member fails with a *LayerError naming the layer's index
// and digest.
func Flatten(ctx context.Context, img v1.Image, opts Options) (*Tree, error) {
	if opts.MaxLayers <= 0 {
		opts.MaxLayers = defaultMaxLayers
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = defaultMaxEntries
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing image layers: %w", err)
	}
	if len(layers) > opts.MaxLayers {
		return nil, fmt.Errorf("image has %d layers, more than the limit of %d", len(layers), opts.MaxLayers)
	}
	t := &Tree{layers: layers, x: newIndex()}
	f := &flattener{t: t, maxEntries: opts.MaxEntries}
	if err := f.applyLayers(ctx, layers); err != nil {
		return nil, err
	}
	t.computeStats()
	return t, nil
}

func (t *Tree) layerError(i int, err error) error {
	le := &LayerError{Index: i, Count: len(t.layers), Err: err}
	if d, derr := t.layers[i].Digest(); derr == nil {
		le.Digest = d
	}
	return le
}

type flattener struct {
	t          *Tree
	maxEntries int
	layer      int32
	whiteouts  [][]string // paths whited out by the current layer
	opaques    [][]string // directories made opaque by the current layer
}

// lookahead is how many layers after the one being applied have their
// headers decoded at the same time (inflating a layer is the cost of
// Flatten; the layers are independent until they are applied in order).
const lookahead = 1

// headerBatch is a run of consecutive headers of one layer, or the error
// that ended the layer's stream (err == nil with no headers: clean end).
type headerBatch struct {
	hdrs []*tar.Header
	err  error
}

// startHeaders reads the tar headers of layer l in a goroutine and sends them
// in batches on the returned channel, which is closed at the end. An error
// (with its context: "reading tar: ..." or "reading: ...") is sent last.
func startHeaders(ctx context.Context, wg *sync.WaitGroup, l v1.Layer) <-chan headerBatch {
	const batchSize, batches = 128, 16
	ch := make(chan headerBatch, batches)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ch)
		send := func(b headerBatch) bool {
			select {
			case ch <- b:
				return true
			case <-ctx.Done():
				return false
			}
		}
		rc, err := openLayer(l)
		if err != nil {
			send(headerBatch{err: fmt.Errorf("opening: %w", err)})
			return
		}
		defer rc.Close()
		tr := tar.NewReader(rc)
		batch := make([]*tar.Header, 0, batchSize)
		for ord := 0; ; ord++ {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err == nil && ord >= 1<<31-1 {
				err = fmt.Errorf("too many entries")
			} else if err != nil {
				err = fmt.Errorf("reading tar: %w", err)
			}
			if err != nil {
				if len(batch) > 0 && !send(headerBatch{hdrs: batch}) {
					return
				}
				send(headerBatch{err: err})
				return
			}
			batch = append(batch, hdr)
			if len(batch) == batchSize {
				if !send(headerBatch{hdrs: batch}) {
					return
				}
				batch = make([]*tar.Header, 0, batchSize)
			}
		}
		if len(batch) > 0 && !send(headerBatch{hdrs: batch}) {
			return
		}
		// Read to the end so that trailing corruption (gzip checksum, digest
		// verification of the blob) is reported.
		if err := rc.finish(); err != nil {
			send(headerBatch{err: fmt.Errorf("reading: %w", err)})
		}
	}()
	return ch
}

// applyLayers applies the layers in order while the headers of the next
// lookahead layers are decoded concurrently.
func (f *flattener) applyLayers(ctx context.Context, layers []v1.Layer) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	streams := make([]<-chan headerBatch, len(layers))
	for i := range layers {
		for j := i; j <= i+lookahead && j < len(layers); j++ {
			if streams[j] == nil {
				streams[j] = startHeaders(ctx, &wg, layers[j])
			}
		}
		if err := f.applyLayer(ctx, i, streams[i]); err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return err
			}
			return f.t.layerError(i, err)
		}
		streams[i] = nil
	}
	return nil
}

func (f *flattener) applyLayer(ctx context.Context, i int, headers <-chan headerBatch) error {
	f.layer = int32(i)
	f.whiteouts = f.whiteouts[:0]
	f.opaques = f.opaques[:0]
	ord := 0
	for {
		var b headerBatch
		var ok bool
		select {
		case b, ok = <-headers:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok {
			if err := ctx.Err(); err != nil {
				return err // the producer stopped on cancellation
			}
			break
		}
		if b.err != nil {
			return b.err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, hdr := range b.hdrs {
			if err := f.applyEntry(hdr, int32(ord)); err != nil {
				return fmt.Errorf("member %q: %w", hdr.Name, err)
			}
			ord++
		}
	}
	return f.applyWhiteouts()
}

func (f *flattener) applyEntry(hdr *tar.Header, ord int32) error {
	comps, err := cleanPath(hdr.Name)
	if err != nil {
		return err
	}
	if len(comps) == 0 {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("%w: the root is not a directory (type %q)", ErrUnsafe, hdr.Typeflag)
		}
		return nil
	}
	for _, c := range comps[:len(comps)-1] {
		if strings.HasPrefix(c, whiteoutMeta) {
			return nil // AUFS metadata directory (.wh..wh.plnk and friends)
		}
		if strings.HasPrefix(c, whiteoutPrefix) {
			return fmt.Errorf("%w: whiteout name %q used as a directory", ErrUnsafe, c)
		}
	}
	base := comps[len(comps)-1]
	dir := comps[:len(comps)-1]
	if strings.HasPrefix(base, whiteoutPrefix) {
		return f.addWhiteout(dir, base)
	}

	a, err := attrsFromHeader(hdr, f.layer, ord)
	if err != nil {
		return err
	}
	parent, err := f.ensureDir(dir)
	if err != nil {
		return err
	}
	x := f.t.x
	if hdr.Typeflag == tar.TypeLink {
		tcomps, err := cleanPath(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link target: %w", err)
		}
		target, err := f.t.lookup(tcomps)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		if target == 0 {
			return fmt.Errorf("%w: hard link target %q does not exist", ErrUnsafe, hdr.Linkname)
		}
		if x.isDir(target) {
			return fmt.Errorf("%w: hard link target %q is a directory", ErrUnsafe, hdr.Linkname)
		}
		ino := x.node(target).ino
		x.inode(ino).flags |= flagHardlinked
		return f.place(parent, base, ino, false)
	}
	return f.place(parent, base, x.inodeOf(&a), a.isDir())
}

// place puts inode ino (a directory when dir) at parent/base, following
// the replacement rules.
func (f *flattener) place(parent nodeID, base string, ino inodeID, dir bool) error {
	x := f.t.x
	old := x.child(parent, base)
	if old != 0 && x.isDir(old) && dir {
		x.setInode(old, ino)
		x.node(old).layer = f.layer
		return nil
	}
	if old != 0 {
		f.t.nodes -= x.remove(old)
	}
	x.addChild(parent, base, ino, f.layer)
	return f.count()
}

func (f *flattener) count() error {
	f.t.nodes++
	if f.t.nodes > f.maxEntries {
		return fmt.Errorf("more than %d paths in the tree", f.maxEntries)
	}
	return nil
}

// ensureDir walks to the directory comps, creating missing directories; it
// refuses to go through a symlink or any other non-directory.
func (f *flattener) ensureDir(comps []string) (nodeID, error) {
	x := f.t.x
	cur := rootID
	for i, c := range comps {
		k := x.child(cur, c)
		if k == 0 {
			ino := x.inodeOf(&attrs{typ: tar.TypeDir, mode: 0o755, mtime: epoch, layer: -1, implicit: true})
			k = x.addChild(cur, c, ino, f.layer)
			if err := f.count(); err != nil {
				return 0, err
			}
		} else if err := f.t.checkTraversable(k, comps[:i+1]); err != nil {
			return 0, err
		}
		cur = k
	}
	return cur, nil
}

func (t *Tree) checkTraversable(n nodeID, comps []string) error {
	switch t.x.typ(n) {
	case tar.TypeDir:
		return nil
	case tar.TypeSymlink:
		return fmt.Errorf("%w: parent %q is a symlink (to %q); refusing to write through it",
			ErrUnsafe, strings.Join(comps, "/"), t.x.linkname(t.x.node(n).ino))
	default:
		return fmt.Errorf("%w: parent %q is not a directory", ErrUnsafe, strings.Join(comps, "/"))
	}
}

// lookup finds the node at comps without following symlinks; 0 when
// missing. A symlink on the way is an error; another non-directory means
// missing.
func (t *Tree) lookup(comps []string) (nodeID, error) {
	cur := rootID
	for i, c := range comps {
		if !t.x.isDir(cur) {
			if t.x.typ(cur) == tar.TypeSymlink {
				return 0, t.checkTraversable(cur, comps[:i])
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

func (f *flattener) addWhiteout(dir []string, base string) error {
	if base == opaqueMarker {
		if _, err := f.ensureDir(dir); err != nil {
			return err
		}
		f.opaques = append(f.opaques, dir)
		return nil
	}
	name := base[len(whiteoutPrefix):]
	switch name {
	case "", ".", "..":
		return fmt.Errorf("%w: whiteout %q names %q, not an entry", ErrUnsafe, base, name)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil // other AUFS metadata
	}
	p := make([]string, 0, len(dir)+1)
	p = append(append(p, dir...), name)
	f.whiteouts = append(f.whiteouts, p)
	return nil
}

// applyWhiteouts removes the lower-layer content named by the current
// layer's whiteouts and hidden by its opaque directories; what the current
// layer itself added stays.
func (f *flattener) applyWhiteouts() error {
	x := f.t.x
	for _, p := range f.whiteouts {
		parent, err := f.t.lookup(p[:len(p)-1])
		if err != nil {
			return fmt.Errorf("whiteout %q: %w", strings.Join(p, "/"), err)
		}
		if parent != 0 && x.typ(parent) == tar.TypeSymlink {
			err := f.t.checkTraversable(parent, p[:len(p)-1])
			return fmt.Errorf("whiteout %q: %w", strings.Join(p, "/"), err)
		}
		if parent == 0 || !x.isDir(parent) {
			continue
		}
		n := x.child(parent, p[len(p)-1])
		if n == 0 {
			continue
		}
		f.prune(n)
		if x.node(n).layer < f.layer && x.node(n).child == 0 {
			f.t.nodes -= x.remove(n)
		}
	}
	for _, comps := range f.opaques {
		// The directory as it is now: one this layer replaced after its
		// marker holds only this layer's entries, which stay anyway.
		if d, err := f.t.lookup(comps); err == nil && d != 0 && x.isDir(d) {
			f.prune(d)
		}
	}
	return nil
}

// prune removes every descendant of n that the current layer did not create
// or update and that has no such descendant itself.
func (f *flattener) prune(n nodeID) {
	x := f.t.x
	for k := x.node(n).child; k != 0; {
		next := x.node(k).next
		f.prune(k)
		if kn := x.node(k); kn.layer < f.layer && kn.child == 0 {
			f.t.nodes -= x.remove(k)
		}
		k = next
	}
}

// attrsFromHeader validates hdr and converts its metadata. For a hard link,
// the caller uses the target's inode instead.
func attrsFromHeader(hdr *tar.Header, layer, ord int32) (attrs, error) {
	ino := attrs{
		typ:   hdr.Typeflag,
		mode:  hdr.Mode & 0o7777,
		uid:   hdr.Uid,
		gid:   hdr.Gid,
		mtime: hdr.ModTime,
		layer: -1,
	}
	if hdr.Uid < 0 || hdr.Gid < 0 {
		return ino, fmt.Errorf("negative uid or gid (%d:%d)", hdr.Uid, hdr.Gid)
	}
	if ino.mtime.IsZero() {
		ino.mtime = epoch
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont:
		ino.typ = tar.TypeReg
		for k := range hdr.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				// The logical size of a sparse file is unbounded by the
				// layer's size; image builders never write them.
				return ino, fmt.Errorf("sparse files are not supported")
			}
		}
		if hdr.Size < 0 {
			return ino, fmt.Errorf("negative size %d", hdr.Size)
		}
		ino.size = hdr.Size
		ino.layer, ino.ord = layer, ord
	case tar.TypeDir, tar.TypeLink, tar.TypeFifo:
	case tar.TypeSymlink:
		if hdr.Linkname == "" {
			return ino, fmt.Errorf("symlink with an empty target")
		}
		if strings.IndexByte(hdr.Linkname, 0) >= 0 || len(hdr.Linkname) > maxPathLen {
			return ino, fmt.Errorf("invalid symlink target %q", hdr.Linkname)
		}
		ino.linkname = hdr.Linkname
	case tar.TypeChar, tar.TypeBlock:
		if hdr.Devmajor < 0 || hdr.Devminor < 0 {
			return ino, fmt.Errorf("negative device number %d:%d", hdr.Devmajor, hdr.Devminor)
		}
		ino.major, ino.minor = hdr.Devmajor, hdr.Devminor
	case tar.TypeGNUSparse:
		return ino, fmt.Errorf("sparse files are not supported")
	default:
		return ino, fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && name != "" {
			if ino.xattrs == nil {
				ino.xattrs = map[string]string{}
			}
			ino.xattrs[name] = v
		}
	}
	return ino, nil
}

func (t *Tree) computeStats() {
	x := t.x
	seen := map[inodeID]bool{}
	var walk func(n nodeID)
	walk = func(n nodeID) {
		for k := x.node(n).child; k != 0; k = x.node(k).next {
			ino := x.node(k).ino
			i := x.inode(ino)
			if i.typ == tar.TypeDir {
				t.dirs++
				walk(k)
				continue
			}
			t.files++
			if i.typ != tar.TypeReg {
				continue
			}
			if i.flags&flagHardlinked != 0 {
				if seen[ino] {
					continue
				}
				seen[ino] = true
			}
			t.bytes += i.size
		}
	}
	walk(rootID)
}
