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
// the final tree: which layer entry wins each path, after whiteouts (two
// phases: index every member's path, then replay the layers in order on
// those paths). File
// contents are not kept in memory; WriteTar reads them from the layers again,
// so the layers must stay readable (and unchanged) while the Tree is used.
//
// A layer that cannot be read (gzip or tar error, truncated) or that holds an
// invalid or unsafe member fails with a *LayerError naming the layer's index
// and digest.
func Flatten(ctx context.Context, img v1.Image, opts Options) (*Tree, error) {
	ix, opts, err := newIndexer(img, opts)
	if err != nil {
		return nil, err
	}
	n, err := ix.indexLayers(ctx, ix.t.layers)
	if err != nil {
		return nil, err
	}
	if err := ix.replay(n, opts.MaxEntries); err != nil {
		return nil, err
	}
	return ix.t, nil
}

// newIndexer returns the indexer of an empty Tree of img's layers, and
// opts with its defaults filled in; too many layers is an error.
func newIndexer(img v1.Image, opts Options) (*indexer, Options, error) {
	if opts.MaxLayers <= 0 {
		opts.MaxLayers = defaultMaxLayers
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = defaultMaxEntries
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, opts, fmt.Errorf("listing image layers: %w", err)
	}
	if len(layers) > opts.MaxLayers {
		return nil, opts, fmt.Errorf("image has %d layers, more than the limit of %d", len(layers), opts.MaxLayers)
	}
	t := &Tree{layers: layers, x: newIndex()}
	return &indexer{t: t, maxNodes: 2 * opts.MaxEntries, logs: make([]layerLog, len(layers))}, opts, nil
}

func (t *Tree) layerError(i int, err error) error {
	le := &LayerError{Index: i, Count: len(t.layers), Err: err}
	if d, derr := t.layers[i].Digest(); derr == nil {
		le.Digest = d
	}
	return le
}

// Flattening has two phases. The indexer reads the layers (in any order)
// and names every path their members mention in the index, recording each
// member as a rec in its layer's log (with the member's inode), without
// building the tree: absent paths have no inode. The replay (replay.go)
// then applies the logs in layer order to those nodes, with the OCI rules,
// and drops the paths that did not survive. The streaming writer
// (stream.go) reads the layers newest first in the first phase and writes
// every regular file that no newer layer replaces as it goes.

// Record kinds.
const (
	recWrite    = iota // an entry at node with inode ino
	recLink            // a hard link at node to the path node ino names
	recWhiteout        // a whiteout of node
	recOpaque          // an opaque marker in the directory node
)

// rec is one member of a layer.
type rec struct {
	node nodeID
	// ino is the entry's inode (recWrite) or, for recLink, the nodeID of
	// the target path.
	ino  inodeID
	ord  int32
	kind uint8
	// form and lform say how the member's name and link target were
	// written (formOf); errors quote them as written.
	form, lform uint8
}

// layerLog is what the indexer recorded of one layer: its members, and the
// error that ended it (after the members before it).
type layerLog struct {
	recs []rec
	err  error
	// raw holds names written in a form formOf cannot encode, by member
	// number (link targets at -1-ord).
	raw map[int32]string
}

// Name forms: how a member name relates to its clean path: prefix "./"
// or "/", a trailing "/". formRaw: kept verbatim in layerLog.raw.
const (
	formSlash  = 1 // trailing "/"
	formDot    = 2 // "./" prefix
	formRoot   = 4 // "/" prefix
	formRaw    = 8
	opaqueName = "/" + opaqueMarker
)

// formOf returns how raw is written relative to clean.
func formOf(raw, clean string) uint8 {
	var f uint8
	r := raw
	if strings.HasSuffix(r, "/") && len(r) > 1 {
		f |= formSlash
		r = r[:len(r)-1]
	}
	switch {
	case strings.HasPrefix(r, "./"):
		f |= formDot
		r = r[2:]
	case strings.HasPrefix(r, "/"):
		f |= formRoot
		r = r[1:]
	}
	if r != clean {
		return formRaw
	}
	return f
}

// spell writes clean in form f.
func spell(clean string, f uint8) string {
	switch {
	case f&formDot != 0:
		clean = "./" + clean
	case f&formRoot != 0:
		clean = "/" + clean
	}
	if f&formSlash != 0 {
		clean += "/"
	}
	return clean
}

// indexer is the first phase: it names the paths of each member.
type indexer struct {
	t *Tree
	// maxNodes bounds the paths named (2 × MaxEntries).
	maxNodes int
	logs     []layerLog
	// sparse sums the sizes of the image's sparse files (MaxSparseSize
	// bounds the sum: each costs its builds reading its holes as zeros).
	sparse int64
}

func (ix *indexer) node(comps []string) (nodeID, error) {
	x := ix.t.x
	cur := rootID
	for _, c := range comps {
		k := x.child(cur, c)
		if k == 0 {
			if int(x.nodes.n) > ix.maxNodes {
				return 0, fmt.Errorf("the layers name more than %d paths", ix.maxNodes)
			}
			k = x.addChild(cur, c, 0, 0)
		}
		cur = k
	}
	return cur, nil
}

// add records member hdr, number ord of layer i. Errors that depend on
// the member alone (names, types, attributes) are returned here; those
// that depend on the tree come from the replay.
func (ix *indexer) add(i int, hdr *tar.Header, ord int32) error {
	lg := &ix.logs[i]
	comps, err := cleanPath(hdr.Name)
	if err != nil {
		return err
	}
	if len(comps) == 0 {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("%w: the root is not a directory (type %q)", ErrUnsafe, hdr.Typeflag)
		}
		// The root entry ("./", as `tar -C dir -c .` writes it) updates
		// the root's metadata like any directory over a directory.
		a, err := attrsFromHeader(hdr, int32(i), ord)
		if err != nil {
			return err
		}
		lg.recs = append(lg.recs, rec{node: rootID, ino: ix.t.x.inodeOf(&a), ord: ord, kind: recWrite, form: formOf(hdr.Name, "")})
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
	r := rec{ord: ord, form: formOf(hdr.Name, strings.Join(comps, "/"))}
	if r.form == formRaw {
		lg.setRaw(ord, hdr.Name)
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		if base == opaqueMarker {
			r.kind = recOpaque
			r.node, err = ix.node(dir)
		} else {
			name := base[len(whiteoutPrefix):]
			switch name {
			case "", ".", "..":
				return fmt.Errorf("%w: whiteout %q names %q, not an entry", ErrUnsafe, base, name)
			}
			if strings.HasPrefix(base, whiteoutMeta) {
				return nil // other AUFS metadata
			}
			r.kind = recWhiteout
			r.node, err = ix.node(append(dir[:len(dir):len(dir)], name))
		}
		if err != nil {
			return err
		}
		lg.recs = append(lg.recs, r)
		return nil
	}
	a, err := attrsFromHeader(hdr, int32(i), ord)
	if err != nil {
		return err
	}
	if isSparse(hdr) {
		if ix.sparse += hdr.Size; ix.sparse > MaxSparseSize {
			return fmt.Errorf("sparse files of %d bytes in all: more than the limit of %d for an image's sparse files, whose holes cost its layers nothing", ix.sparse, int64(MaxSparseSize))
		}
	}
	if r.node, err = ix.node(comps); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeLink {
		tcomps, err := cleanPath(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link target: %w", err)
		}
		target, err := ix.node(tcomps)
		if err != nil {
			return err
		}
		r.kind, r.ino = recLink, inodeID(target)
		if r.lform = formOf(hdr.Linkname, strings.Join(tcomps, "/")); r.lform == formRaw {
			lg.setRaw(-1-ord, hdr.Linkname)
		}
	} else {
		r.kind, r.ino = recWrite, ix.t.x.inodeOf(&a)
	}
	lg.recs = append(lg.recs, r)
	return nil
}

func (lg *layerLog) setRaw(k int32, name string) {
	if lg.raw == nil {
		lg.raw = map[int32]string{}
	}
	lg.raw[k] = name
}

// memberName is the name of r's member as written.
func (ix *indexer) memberName(i int, r rec) string {
	x := ix.t.x
	if r.form == formRaw {
		return ix.logs[i].raw[r.ord]
	}
	p := x.path(r.node)
	if r.kind == recOpaque {
		if p == "" {
			p = opaqueMarker
		} else {
			p += opaqueName
		}
	}
	return spell(p, r.form)
}

// linkName is r's link target as written.
func (ix *indexer) linkName(i int, r rec) string {
	if r.lform == formRaw {
		return ix.logs[i].raw[-1-r.ord]
	}
	return spell(ix.t.x.path(nodeID(r.ino)), r.lform)
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

// indexLayers indexes the layers in order while the headers of the next
// lookahead layers are decoded concurrently; it stops after the first
// layer that fails (its error is in its log) or when ctx is done.
func (ix *indexer) indexLayers(ctx context.Context, layers []v1.Layer) (int, error) {
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
		if err := ix.indexLayer(ctx, i, streams[i]); err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return i, err
			}
			ix.logs[i].err = err
			return i + 1, nil
		}
		streams[i] = nil
	}
	return len(layers), nil
}

func (ix *indexer) indexLayer(ctx context.Context, i int, headers <-chan headerBatch) error {
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
			return ctx.Err() // nil at the end; the producer stopped on cancellation
		}
		if b.err != nil {
			return b.err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, hdr := range b.hdrs {
			if err := ix.add(i, hdr, int32(ord)); err != nil {
				return fmt.Errorf("member %q: %w", hdr.Name, err)
			}
			ord++
		}
	}
}

// MaxSparseSize bounds the size of a sparse file (GNU tar's old 'S' type
// or a PAX GNU.sparse file), and the sum of an image's sparse files
// (counted as each layer is read, a file replaced later included): the
// layer stores their data regions only, so
// its holes expand to zeros without costing the layer anything. archive/tar
// reads sparse files with their holes as zeros, as umoci (Apptainer 1.5.3,
// SingularityCE 4.5.1) and GNU tar (Enroot 4.1.2) extract them; a regular
// file's size is bounded by its layer's instead.
const MaxSparseSize = 16 << 30

// isSparse reports whether hdr is a sparse file (archive/tar expands it).
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
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
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse:
		ino.typ = tar.TypeReg
		if hdr.Size < 0 {
			return ino, fmt.Errorf("negative size %d", hdr.Size)
		}
		if isSparse(hdr) && hdr.Size > MaxSparseSize {
			return ino, fmt.Errorf("sparse file of %d bytes: larger than the limit of %d for sparse files, whose holes cost the layer nothing", hdr.Size, int64(MaxSparseSize))
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
