package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// genLayers decodes data into a few layers of members on a small set of
// paths (so that members collide across and within layers): regular
// files, directories, symlinks, hard links, whiteouts and opaque markers.
func genLayers(data []byte) [][]te {
	names := []string{"a", "b", "c"}
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	path := func() string {
		depth := 1 + int(next())%3
		var comps []string
		for i := 0; i < depth; i++ {
			comps = append(comps, names[int(next())%len(names)])
		}
		return strings.Join(comps, "/")
	}
	var layers [][]te
	nl := 1 + int(next())%4
	for l := 0; l < nl && len(data) > 0; l++ {
		var ms []te
		for m := int(next()) % 8; m >= 0 && len(data) > 0; m-- {
			p := path()
			switch k := next() % 16; {
			case k < 6:
				ms = append(ms, te{name: p, typ: tar.TypeReg, body: fmt.Sprintf("%s@%d.%d", p, l, len(ms)), mode: 0o600 + int64(k)})
			case k < 9:
				ms = append(ms, te{name: p, typ: tar.TypeDir, mode: 0o700 + int64(k)})
			case k < 10:
				ms = append(ms, sym(p, []string{"a", "../b", "/c", "a/b"}[next()%4]))
			case k < 12:
				ms = append(ms, hardlink(p, path()))
			case k < 14:
				d, base := parentOf(p), p[strings.LastIndexByte(p, '/')+1:]
				if d != "" {
					d += "/"
				}
				ms = append(ms, wh(d+".wh."+base))
			default:
				ms = append(ms, wh(p+"/.wh..wh..opq"))
			}
		}
		layers = append(layers, ms)
	}
	return layers
}

// resolved renders a tar stream as path → description, hard links
// resolved to their target's content (which path of a hard-linked group
// holds the content is the writer's choice).
func resolved(t testing.TB, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	type ent struct {
		h    *tar.Header
		body string
	}
	ents := map[string]ent{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		p := strings.TrimSuffix(h.Name, "/")
		if _, dup := ents[p]; dup {
			t.Fatalf("%q written twice", p)
		}
		if h.Typeflag == tar.TypeLink {
			tgt, ok := ents[h.Linkname]
			if !ok || tgt.h.Typeflag == tar.TypeLink || tgt.h.Typeflag == tar.TypeDir {
				t.Fatalf("hard link %q -> %q before its target", p, h.Linkname)
			}
			h2 := *tgt.h
			ents[p] = ent{&h2, tgt.body}
			out[p] = "link-of:" + describeHeader(&h2, tgt.body)
			out[h.Linkname] = "link-of:" + describeHeader(tgt.h, tgt.body)
			continue
		}
		ents[p] = ent{h, string(body)}
		if _, linked := out[p]; !linked {
			out[p] = describeHeader(h, string(body))
		}
	}
	// A path that is the target of a link is described like its links.
	for p, e := range ents {
		if strings.HasPrefix(out[p], "link-of:") {
			out[p] = "link-of:" + describeHeader(e.h, e.body)
		}
	}
	return out
}

func describeHeader(h *tar.Header, body string) string {
	return fmt.Sprintf("%c %o %d:%d %q %d %v %q %v", h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, h.Size, h.ModTime.Unix(), body, h.PAXRecords)
}

// streamOpts are TarOptions like the builders': an emptied directory, a
// replaced file, a directory over whatever is there, links if missing.
func streamOpts(*Tree) (TarOptions, error) {
	return TarOptions{
		EmptyDirs: []string{"c"},
		Extra: []Entry{
			{Path: "b/c", Type: tar.TypeReg, Mode: 0o644, Content: []byte("replaced")},
			{Path: "a/b", Type: tar.TypeDir, Mode: 0o711},
		},
		IfMissing:       []Entry{{Path: "a/c/new", Type: tar.TypeSymlink, Linkname: "x"}},
		ParentSymlinks:  ResolveParentSymlinks,
		ImplicitDirMode: 0o775,
	}, nil
}

func holdStreamOpts(p string) bool { return p == "b/c" || p == "c" || strings.HasPrefix(p, "c/") }

// checkStream compares Stream with Flatten + WriteTar on one image.
func checkStream(t *testing.T, layers [][]te) {
	t.Helper()
	var ls []v1.Layer
	for _, m := range layers {
		ls = append(ls, newLayer(t, m...))
	}
	img := imageOf(t, ls...)
	ctx := context.Background()
	want, ferr := Flatten(ctx, img, Options{})
	for _, withOpts := range []bool{false, true} {
		var buf bytes.Buffer
		c := &Consumer{W: &buf, AllRoot: withOpts}
		if withOpts {
			c.Finish, c.Hold = streamOpts, holdStreamOpts
		}
		got, serr := Stream(ctx, img, Options{}, c)
		if (ferr == nil) != (serr == nil) {
			t.Fatalf("Flatten error %v, Stream error %v", ferr, serr)
		}
		if ferr != nil {
			if !errors.Is(serr, ErrUnsafe) && errors.Is(ferr, ErrUnsafe) {
				t.Errorf("Flatten error %v is ErrUnsafe, Stream's %v is not", ferr, serr)
			}
			return
		}
		if a, b := fmt.Sprint(got.Entries()), fmt.Sprint(want.Entries()); a != b {
			t.Fatalf("trees differ:\nStream  %s\nFlatten %s", a, b)
		}
		if errors.Is(c.Err(), ErrStreamConflict) {
			continue // the caller writes it again with WriteTar
		}
		if withOpts && c.Err() != nil && errors.Is(c.Err(), ErrExtraParent) {
			continue
		}
		if c.Err() != nil {
			t.Fatalf("consumer: %v", c.Err())
		}
		opts := TarOptions{AllRoot: withOpts}
		if withOpts {
			opts, _ = streamOpts(want)
			opts.AllRoot = true
		}
		var ref bytes.Buffer
		if err := want.WriteTar(ctx, &ref, opts); err != nil {
			t.Fatalf("WriteTar: %v", err)
		}
		if a, b := resolved(t, buf.Bytes()), resolved(t, ref.Bytes()); !maps.Equal(a, b) {
			t.Fatalf("streams differ (options %v):\nStream   %s\nWriteTar %s", withOpts, sorted(a), sorted(b))
		}
	}
}

// FuzzStream checks that Stream builds Flatten's tree and writes what
// WriteTar writes (up to order and which path of a hard-linked group holds
// the content), with and without TarOptions, on generated layers.
func FuzzStream(f *testing.F) {
	for _, s := range []string{
		"\x02\x03\x01\x00\x00\x01\x01\x01\x0e\x02\x00\x01\x0c",
		"\x03\x05\x02\x00\x01\x00\x03\x01\x01\x07\x00\x02\x02\x0a\x00\x00\x01\x00\x01\x02\x00\x0f\x01\x02\x0d\x00\x00\x00\x00\x00",
		"\x01\x07\x00\x00\x00\x00\x00\x00\x0a\x01\x00\x01\x00\x01\x00\x00\x01\x0b\x01\x00\x00\x00\x00",
		"\x03\x03\x01\x00\x07\x01\x01\x01\x02\x01\x01\x02\x01\x00\x00\x01\x01\x00\x00\x00\x0c\x00\x00\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkStream(t, genLayers(data))
	})
}

func TestStreamCases(t *testing.T) {
	cases := map[string][][]te{
		"replace across layers": {
			L(dir("a"), reg("a/x", "old"), reg("a/y", "y"), reg("b", "b1")),
			L(reg("a/x", "new"), dir("b"), reg("b/in", "in")),
		},
		"whiteouts and opaque": {
			L(dir("a"), reg("a/b", "1"), dir("a/d"), reg("a/d/e", "2"), reg("f", "3")),
			L(wh("a/.wh.b"), wh("a/d/.wh..wh..opq"), reg("a/d/n", "4"), wh(".wh.f")),
			L(reg("f", "5"), hardlink("g", "a/d/n"), wh("a/d/.wh.n")),
		},
		"hard link keeps a replaced target": {
			L(reg("t", "T1"), reg("u", "U")),
			L(hardlink("l", "t"), hardlink("m", "u")),
			L(reg("t", "T2")),
		},
		"same-layer link to a later-dead path": {
			L(reg("t", "T"), hardlink("l", "t")),
			L(reg("t", "T2")),
		},
		"options": {
			L(dir("b"), reg("b/c", "image's"), dir("c"), reg("c/x", "x"), dir("a"), reg("a/b", "file a/b")),
		},
	}
	for name, layers := range cases {
		t.Run(name, func(t *testing.T) { checkStream(t, layers) })
	}
}

// TestStreamConflicts: a layer that writes a path twice after the first
// was written early, and options that replace an early file, make the
// stream fail with ErrStreamConflict; the tree is still right.
func TestStreamConflicts(t *testing.T) {
	ctx := context.Background()
	img := imageOf(t, newLayer(t, reg("x", "first"), reg("x", "second")))
	c := &Consumer{W: io.Discard}
	tree, err := Stream(ctx, img, Options{}, c)
	if err != nil || !errors.Is(c.Err(), ErrStreamConflict) {
		t.Fatalf("twice in one layer: %v, consumer %v", err, c.Err())
	}
	expectTree(t, tree, map[string]string{"x": "f:second"})

	img = imageOf(t, newLayer(t, dir("etc"), reg("etc/hosts", "image's")))
	c = &Consumer{W: io.Discard, Finish: func(*Tree) (TarOptions, error) {
		return TarOptions{Extra: []Entry{{Path: "etc/hosts", Type: tar.TypeReg}}}, nil
	}}
	if _, err := Stream(ctx, img, Options{}, c); err != nil || !errors.Is(c.Err(), ErrStreamConflict) {
		t.Fatalf("replaced by the options: %v, consumer %v", err, c.Err())
	}
	// Held back, the same file is written at the end, replaced.
	var buf bytes.Buffer
	c.W, c.Hold = &buf, func(p string) bool { return p == "etc/hosts" }
	if _, err := Stream(ctx, img, Options{}, c); err != nil || c.Err() != nil {
		t.Fatalf("held: %v, consumer %v", err, c.Err())
	}
	if got := resolved(t, buf.Bytes())["etc/hosts"]; !strings.Contains(got, `0 ""`) {
		t.Errorf("etc/hosts = %s, want the empty replacement", got)
	}
}

// gatedLayer is a layer whose compressed stream blocks until its gate is
// opened: a layer still being downloaded.
type gatedLayer struct {
	*rawLayer
	gate chan struct{}
}

func (l *gatedLayer) Compressed() (io.ReadCloser, error) {
	<-l.gate
	return l.rawLayer.Compressed()
}

// notifyWriter signals when its content first contains want.
type notifyWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Contains(w.buf.Bytes(), []byte(w.want)) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

// TestStreamWritesBeforeOlderLayersArrive: the newest layer's files reach
// the consumer while the oldest layer cannot be read yet.
func TestStreamWritesBeforeOlderLayersArrive(t *testing.T) {
	old := &gatedLayer{rawLayer: newLayer(t, reg("base", "BASE")).(*rawLayer), gate: make(chan struct{})}
	img := imageOf(t, old, newLayer(t, reg("top", strings.Repeat("TOPFILE", 100))))
	w := &notifyWriter{want: "TOPFILETOPFILE", seen: make(chan struct{})}
	c := &Consumer{W: w}
	done := make(chan error, 1)
	go func() {
		_, err := Stream(context.Background(), img, Options{}, c)
		done <- err
	}()
	<-w.seen // before the old layer is opened: this would block forever otherwise
	close(old.gate)
	if err := <-done; err != nil || c.Err() != nil {
		t.Fatalf("Stream: %v, consumer %v", err, c.Err())
	}
	got := resolved(t, w.buf.Bytes())
	if len(got) != 2 || !strings.Contains(got["base"], "BASE") {
		t.Errorf("stream %s", sorted(got))
	}
}

// TestShared: two consumers with different options share one pass.
func TestShared(t *testing.T) {
	img := imageOf(t, newLayer(t, dir("etc"), reg("etc/rc", "rc"), te{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3}),
		newLayer(t, reg("usr/bin/x", "x"), hardlink("usr/bin/y", "usr/bin/x")))
	s := NewShared(Options{}, 3)
	ms := []*Member{s.Member(), s.Member(), s.Member()}
	var a, b bytes.Buffer
	ca := &Consumer{W: &a}
	cb := &Consumer{W: &b, AllRoot: true, Finish: func(*Tree) (TarOptions, error) {
		return TarOptions{DropDevices: true, Extra: []Entry{{Path: "etc/rc", Type: tar.TypeReg, Content: []byte("new")}}}, nil
	}, Hold: func(p string) bool { return p == "etc/rc" }}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, c := range []*Consumer{ca, cb} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = ms[i].Write(ctx, img, c); ms[i].Leave(ctx) }()
	}
	ms[2].Leave(ctx) // the third build failed before it joined
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	ra, rb := resolved(t, a.Bytes()), resolved(t, b.Bytes())
	if _, ok := ra["dev/null"]; !ok || !strings.Contains(ra["etc/rc"], `"rc"`) {
		t.Errorf("a: %s", sorted(ra))
	}
	if _, ok := rb["dev/null"]; ok || !strings.Contains(rb["etc/rc"], `"new"`) || !strings.HasPrefix(rb["usr/bin/y"], "link-of:") {
		t.Errorf("b: %s", sorted(rb))
	}
	if ms[0].Tree() == nil || !slices.ContainsFunc(ms[0].Tree().Entries(), func(e Entry) bool { return e.Path == "usr/bin/y" }) {
		t.Error("Shared.Tree")
	}
}

// failingWriter fails every write after the first and then cancels its
// member's context: a consumer whose mksquashfs died mid-stream (Create
// cancels the build's context then).
type failingWriter struct {
	n      int
	cancel context.CancelFunc
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n++; w.n > 1 {
		w.cancel()
		return 0, errors.New("broken pipe")
	}
	return len(p), nil
}

// TestSharedMemberFailsMidStream: when the member that runs the shared
// stream (the last to join) fails mid-stream and its context ends, the
// other members still get their whole stream; a member whose context ends
// while it waits returns at once and gets nothing more written.
func TestSharedMemberFailsMidStream(t *testing.T) {
	img := imageOf(t, newLayer(t, reg("a", strings.Repeat("A", 1<<20))), newLayer(t, reg("b", strings.Repeat("B", 1<<20))))
	for _, runnerFails := range []bool{true, false} {
		t.Run(fmt.Sprintf("runnerFails=%v", runnerFails), func(t *testing.T) {
			s := NewShared(Options{}, 2)
			first, last := s.Member(), s.Member()
			var good bytes.Buffer
			bctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			bad := &Consumer{W: &failingWriter{cancel: cancel}}
			goodC := &Consumer{W: &good}
			firstC, firstCtx, lastC, lastCtx := goodC, context.Background(), bad, bctx
			if !runnerFails {
				firstC, firstCtx, lastC, lastCtx = bad, bctx, goodC, context.Background()
			}
			errc := make(chan error, 1)
			go func() { errc <- first.Write(firstCtx, img, firstC) }()
			for joined := 0; joined == 0; {
				s.mu.Lock()
				joined = len(s.joined)
				s.mu.Unlock()
				time.Sleep(time.Millisecond)
			}
			lastErr := last.Write(lastCtx, img, lastC)
			firstErr := <-errc
			goodErr, badErr := firstErr, lastErr
			if !runnerFails {
				goodErr, badErr = lastErr, firstErr
			}
			if goodErr != nil {
				t.Fatalf("the member that did not fail: %v", goodErr)
			}
			if badErr == nil {
				t.Fatal("the failing member reports no error")
			}
			got := resolved(t, good.Bytes())
			if len(got) != 2 {
				t.Errorf("stream %s", sorted(got))
			}
		})
	}
}
