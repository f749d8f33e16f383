package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrStreamConflict is wrapped by the error of a consumer whose stream
// Stream had to abandon: a file it wrote before the tree was known turned
// out not to be the tree's (a layer that writes a path twice, or a
// TarOptions entry replacing such a file). The tree Stream returns is
// complete; the caller writes the consumer's output again from it with
// WriteTar.
var ErrStreamConflict = errors.New("rootfs: a file written early is not the tree's")

// Consumer is one output of Stream: a tar stream, for example the standard
// input of one mksquashfs.
type Consumer struct {
	// W receives the tar stream. W is not closed.
	W io.Writer
	// AllRoot and EditHeader are as in TarOptions; they apply to every
	// entry, those written before the tree is known too (the TarOptions
	// Finish returns do not change them).
	AllRoot    bool
	EditHeader func(h *tar.Header)
	// Hold, when set, holds back the regular files at the paths it accepts
	// until the tree is known: paths the TarOptions from Finish may replace
	// or remove. A file written early that the TarOptions change makes the
	// consumer's stream fail with ErrStreamConflict.
	Hold func(path string) bool
	// Finish returns the TarOptions for the rest of the stream, from the
	// flattened tree (nil: the zero TarOptions).
	Finish func(*Tree) (TarOptions, error)

	tw      *tar.Writer
	opts    TarOptions // AllRoot and EditHeader, until Finish
	err     error
	emitted []emission
	nodes   bitset
}

// emission is a regular file written before the tree was known.
type emission struct {
	node nodeID
	ino  inodeID
}

// Node flags (node.flags), set at the end of each layer Stream reads, for
// the older layers read after it: what a newer layer did at the path.
const (
	fWritten  = 1 << iota // an entry (any type) at the path
	fNonDir               // an entry that is not a directory
	fWhiteout             // a whiteout of the path
	fOpaque               // an opaque marker in the directory
	fEmitted              // a regular file written early at the path
)

// Stream flattens img as Flatten does and writes the tree to every
// consumer as a tar stream, reading each layer once, newest first: every
// regular file that no newer layer replaces or removes is written as soon
// as its member is read, with its content (the stream of the layer being
// read); what depends on the whole tree comes last, once all layers are
// read: every directory, symlink, device node and TarOptions entry, the
// files held back (Consumer.Hold) or only reachable through a hard link,
// and the hard links. `mksquashfs -tar` accepts a directory after its
// children (it takes the directory's metadata from its entry whenever it
// comes; squashfs-tools 4.5.1). Layers are read as their
// Layer.Compressed streams deliver, so a layer still being downloaded is
// read as it arrives.
//
// The tree and its errors are Flatten's, except that a layer that cannot
// be read or holds an invalid member fails at once (the newest such layer,
// where Flatten names the oldest). On such an error the consumers' streams
// are incomplete. Stream returns the tree when every layer was read; each
// consumer's own outcome (nil, a write or Finish error, or
// ErrStreamConflict) is in its Err.
func Stream(ctx context.Context, img v1.Image, opts Options, consumers ...*Consumer) (*Tree, error) {
	ix, opts, err := newIndexer(img, opts)
	if err != nil {
		return nil, err
	}
	t, layers := ix.t, ix.t.layers
	st := &streamer{ix: ix, cs: consumers}
	for _, c := range consumers {
		c.tw = tar.NewWriter(c.W)
		c.opts = TarOptions{AllRoot: c.AllRoot, EditHeader: c.EditHeader}
		c.err, c.emitted, c.nodes = nil, nil, bitset{}
	}
	if err := st.layers(ctx, layers); err != nil {
		return nil, err
	}
	if err := st.ix.replay(len(layers), opts.MaxEntries); err != nil {
		return nil, err
	}
	for _, c := range consumers {
		if c.err == nil {
			c.err = st.finish(ctx, c)
		}
	}
	return t, nil
}

// Err is the consumer's outcome once Stream returned a tree.
func (c *Consumer) Err() error { return c.err }

type streamer struct {
	ix       *indexer
	cs       []*Consumer
	conflict bool
	buf      []byte
}

// layers reads the layers newest first; the next layer is opened (and
// inflated ahead) while the current one is read.
func (st *streamer) layers(ctx context.Context, layers []v1.Layer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	open := make([]*openedLayer, len(layers))
	defer func() {
		for _, o := range open {
			if o != nil {
				o.close()
			}
		}
	}()
	start := func(i int) {
		o := &openedLayer{}
		// Opened in the read-ahead goroutine: a layer still being
		// downloaded may make it wait.
		o.ra = newReadAheadOpen(ctx, func() (io.Reader, error) {
			ls, err := openLayer(layers[i])
			if err != nil {
				return nil, fmt.Errorf("opening: %w", err)
			}
			o.ls = ls
			return ls, nil
		}, readAheadChunks, readAheadChunk)
		open[i] = o
	}
	for i := len(layers) - 1; i >= 0; i-- {
		for j := i; j >= i-lookahead && j >= 0; j-- {
			if open[j] == nil {
				start(j)
			}
		}
		o := open[i]
		err := st.layer(ctx, i, o)
		o.close()
		open[i] = nil
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return st.ix.t.layerError(i, err)
		}
		st.mark(i)
	}
	return nil
}

// layer indexes layer i from o and writes its final regular files.
func (st *streamer) layer(ctx context.Context, i int, o *openedLayer) error {
	ix := st.ix
	tr := tar.NewReader(o.ra)
	for ord := int32(0); ; ord++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err == nil && ord == 1<<31-1 {
			err = fmt.Errorf("too many entries")
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		lg := &ix.logs[i]
		n := len(lg.recs)
		if err := ix.add(i, hdr, ord); err != nil {
			return fmt.Errorf("member %q: %w", hdr.Name, err)
		}
		if len(lg.recs) == n || st.conflict {
			continue
		}
		r := lg.recs[n]
		if r.kind != recWrite && r.kind != recLink {
			continue
		}
		st.check(i, r)
		if r.kind == recWrite && ix.t.x.inode(r.ino).typ == tar.TypeReg && !st.conflict && st.final(r.node) {
			if err := st.emit(ctx, i, r, hdr, tr); err != nil {
				return err
			}
		}
	}
	// Read to the end so that trailing corruption (gzip checksum, digest
	// verification of the blob) is reported.
	if _, err := io.Copy(io.Discard, o.ra); err != nil {
		return fmt.Errorf("reading: %w", err)
	}
	if o.ls != nil && o.ls.drain != nil {
		if _, err := io.Copy(io.Discard, o.ls.drain); err != nil {
			return fmt.Errorf("reading: %w", err)
		}
	}
	return nil
}

// check notes a conflict when r, an entry of the layer being read (i),
// replaces a file of the same layer written early, or puts a
// non-directory above one.
func (st *streamer) check(i int, r rec) {
	x := st.ix.t.x
	n := x.node(r.node)
	if n.layer != int32(i)+1 {
		return
	}
	if n.flags&fEmitted != 0 || r.kind == recLink || x.inode(r.ino).typ != tar.TypeDir {
		st.conflict = true
	}
}

// final reports whether no newer layer replaced or removed the path n:
// no entry at n, no whiteout of n, no non-directory, whiteout or opaque
// directory above it. Flags are set when a layer has been read, so the
// layer being read does not count.
func (st *streamer) final(n nodeID) bool {
	x := st.ix.t.x
	if x.node(n).flags&(fWritten|fWhiteout) != 0 {
		return false
	}
	for a := x.node(n).parent; a != 0; a = x.node(a).parent {
		if x.node(a).flags&(fNonDir|fWhiteout|fOpaque) != 0 {
			return false
		}
	}
	return true
}

// emit writes the regular file of r (member hdr, content in tr) to every
// consumer that does not hold it back.
func (st *streamer) emit(ctx context.Context, i int, r rec, hdr *tar.Header, tr io.Reader) error {
	x := st.ix.t.x
	path := x.path(r.node)
	var to []*Consumer
	for _, c := range st.cs {
		if c.err == nil && (c.Hold == nil || !c.Hold(path)) {
			to = append(to, c)
		}
	}
	if len(to) == 0 {
		return nil
	}
	a := x.attrsOf(r.ino)
	it := item{path: path, ino: iref{id: r.ino}}
	for _, c := range to {
		if err := writeHeader(c.tw, it, &a, &c.opts); err != nil {
			c.err = fmt.Errorf("writing %q: %w", path, err)
		}
		c.emitted = append(c.emitted, emission{node: r.node, ino: r.ino})
		c.nodes.add(uint32(r.node))
	}
	// Mark the path and its parents: a later entry of this layer at the
	// path, or a non-directory above it, is a conflict.
	x.node(r.node).flags |= fEmitted
	for a := r.node; a != 0 && x.node(a).layer != int32(i)+1; a = x.node(a).parent {
		x.node(a).layer = int32(i) + 1
	}
	if st.buf == nil {
		st.buf = make([]byte, 256<<10)
	}
	for left := hdr.Size; left > 0; {
		n, err := io.ReadFull(tr, st.buf[:min(left, int64(len(st.buf)))])
		if err != nil {
			return fmt.Errorf("reading %q: %w", hdr.Name, err)
		}
		for _, c := range to {
			if c.err == nil {
				if _, err := c.tw.Write(st.buf[:n]); err != nil {
					c.err = fmt.Errorf("writing %q: %w", path, err)
				}
			}
		}
		left -= int64(n)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// mark sets the flags of layer i's entries, for the older layers.
func (st *streamer) mark(i int) {
	x := st.ix.t.x
	for _, r := range st.ix.logs[i].recs {
		n := x.node(r.node)
		switch r.kind {
		case recWrite:
			n.flags |= fWritten
			if x.inode(r.ino).typ != tar.TypeDir {
				n.flags |= fNonDir
			}
		case recLink:
			n.flags |= fWritten | fNonDir
		case recWhiteout:
			n.flags |= fWhiteout
		case recOpaque:
			n.flags |= fOpaque
		}
	}
}

// finish checks that what c got early is the tree's and writes the rest of
// its stream.
func (st *streamer) finish(ctx context.Context, c *Consumer) error {
	t := st.ix.t
	x := t.x
	if st.conflict {
		return ErrStreamConflict
	}
	var opts TarOptions
	if c.Finish != nil {
		var err error
		if opts, err = c.Finish(t); err != nil {
			return err
		}
	}
	opts.AllRoot, opts.EditHeader = c.AllRoot, c.EditHeader
	v, err := t.newView(opts)
	if err != nil {
		return err
	}
	first := map[iref]string{}
	for _, e := range c.emitted {
		n := x.node(e.node)
		if n.ino != e.ino || !v.shows(e.node) {
			return fmt.Errorf("%w: %q", ErrStreamConflict, x.path(e.node))
		}
		if x.inode(e.ino).flags&flagHardlinked != 0 {
			first[iref{id: e.ino}] = x.path(e.node)
		}
	}
	tw := c.tw
	p, err := v.walkSkipping(len(t.layers), opts.DropDevices, func(it item) error { return writeItem(ctx, tw, v, &opts, it) }, &c.nodes, first)
	if err != nil {
		return err
	}
	return t.finishTar(ctx, tw, v, p, &opts)
}

// shows reports whether the view shows the tree's node n as it is: no
// TarOptions entry replaces or hides it or a directory above it.
func (v *view) shows(n nodeID) bool {
	x := v.t.x
	var chain []nodeID
	for a := n; a != rootID && a != 0; a = x.node(a).parent {
		chain = append(chain, a)
	}
	cur := v.root
	for i := len(chain) - 1; i >= 0; i-- {
		if cur == nil {
			return true // below the overlay: the tree as it is
		}
		a := chain[i]
		k, ok := cur.kids[x.nameStr(a)]
		switch {
		case !ok && cur.hide:
			return false
		case !ok:
			cur = nil
		case i == 0 || k.base != a || k.hide:
			return false // replaced or emptied
		default:
			cur = k
		}
	}
	return true
}

// Shared is a Stream that several builds of one image (the SIF and the
// .sqsh of one apply) join, each with its own consumer, through a Member:
// once the last member joined, the stream runs, and each member's Write
// returns when its consumer's stream is written. The stream runs for as
// long as one joined member still waits for it: a member whose context
// ends (its build failed or was cancelled) returns at once, and nothing
// more is written to its consumer; the others' streams go on.
type Shared struct {
	opts Options

	mu     sync.Mutex
	img    v1.Image
	want   int
	joined []*Consumer
	live   int                // joined members still waiting for the stream
	cancel context.CancelFunc // stops the stream (nil until it started)
	done   chan struct{}
	tree   *Tree
	err    error
}

// NewShared returns a Shared stream for n members.
func NewShared(opts Options, n int) *Shared {
	return &Shared{opts: opts, want: n, done: make(chan struct{})}
}

// Member is one of a Shared stream's n places: it joins with Write or
// gives its place up with Leave (after Write, Leave does nothing).
type Member struct {
	s    *Shared
	once sync.Once
}

// Member returns a place in the stream; make exactly n of them.
func (s *Shared) Member() *Member { return &Member{s: s} }

// errMemberGone is what a consumer's writes get once its member stopped
// waiting for the shared stream.
var errMemberGone = errors.New("rootfs: the member of the shared stream has gone")

// memberWriter is a consumer's writer in a shared stream: once its member
// has gone, writes fail, and none is in progress.
type memberWriter struct {
	mu   sync.Mutex
	w    io.Writer
	gone bool
}

func (g *memberWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone {
		return 0, errMemberGone
	}
	return g.w.Write(p)
}

func (g *memberWriter) leave() {
	g.mu.Lock()
	g.gone = true
	g.mu.Unlock()
}

// Write joins the stream of img (the same image for every member) with c
// and returns c's outcome once the stream ran (see Stream and
// Consumer.Err): an error wrapping ErrStreamConflict says to write c's
// output again from Tree with WriteTar. When ctx ends first, Write returns
// its error at once and nothing more is written to c.W (Write replaces
// c.W with a writer that ensures it). A member writes at most once.
func (m *Member) Write(ctx context.Context, img v1.Image, c *Consumer) error {
	joined := false
	m.once.Do(func() { joined = true })
	if !joined {
		return errors.New("rootfs: a member of a shared stream writes once")
	}
	s := m.s
	g := &memberWriter{w: c.W}
	c.W = g
	s.mu.Lock()
	s.joined = append(s.joined, c)
	s.img = img
	s.live++
	if len(s.joined) == s.want {
		s.start(ctx)
	}
	s.mu.Unlock()
	select {
	case <-s.done:
	case <-ctx.Done():
		g.leave()
		s.mu.Lock()
		if s.live--; s.live == 0 && s.cancel != nil {
			s.cancel() // nobody waits for it any more
		}
		s.mu.Unlock()
		return ctx.Err()
	}
	if s.err != nil {
		return s.err
	}
	return c.err
}

// Leave gives the member's place up (its build failed before it could
// write): the stream runs once the others have joined.
func (m *Member) Leave(ctx context.Context) {
	m.once.Do(func() {
		s := m.s
		s.mu.Lock()
		s.want--
		if s.want > 0 && len(s.joined) == s.want {
			s.start(ctx)
		}
		s.mu.Unlock()
	})
}

// Tree returns the flattened tree once Write returned (nil after an error
// that stopped the stream).
func (m *Member) Tree() *Tree { return m.s.tree }

// start runs the stream (s.mu held). It does not end with the context of
// the member that starts it (ctx gives only its values) but once no joined
// member waits for it.
func (s *Shared) start(ctx context.Context) {
	if s.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	if s.live == 0 {
		cancel()
	}
	img, joined := s.img, s.joined
	go func() {
		defer cancel()
		s.tree, s.err = Stream(ctx, img, s.opts, joined...)
		close(s.done)
	}()
}
