package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/conformance/corpus"
)

// describe renders a tree as path → "f:BODY", "d", "l:TARGET", "h:TARGET",
// "c:MAJ,MIN", "b:MAJ,MIN" or "p" from a WriteTar stream, after checking
// that Entries agrees with the stream.
func describe(t *testing.T, tree *Tree, opts TarOptions) map[string]string {
	t.Helper()
	out, _ := writeTar(t, tree, opts)
	got := map[string]string{}
	for p, e := range out {
		h := e.hdr
		switch h.Typeflag {
		case tar.TypeReg:
			got[p] = "f:" + e.body
		case tar.TypeDir:
			got[p] = "d"
		case tar.TypeSymlink:
			got[p] = "l:" + h.Linkname
		case tar.TypeLink:
			got[p] = "h:" + h.Linkname
		case tar.TypeChar:
			got[p] = fmt.Sprintf("c:%d,%d", h.Devmajor, h.Devminor)
		case tar.TypeBlock:
			got[p] = fmt.Sprintf("b:%d,%d", h.Devmajor, h.Devminor)
		case tar.TypeFifo:
			got[p] = "p"
		default:
			t.Fatalf("unexpected type %q at %q", h.Typeflag, p)
		}
	}
	if len(opts.Extra) == 0 && len(opts.EmptyDirs) == 0 && !opts.DropDevices {
		es := tree.Entries()
		if !slices.IsSortedFunc(es, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) }) {
			t.Errorf("Entries not sorted by path")
		}
		if len(es) != len(out) {
			t.Errorf("Entries has %d paths, WriteTar %d", len(es), len(out))
		}
		for _, e := range es {
			o, ok := out[e.Path]
			if !ok {
				t.Errorf("Entries has %q, WriteTar does not", e.Path)
				continue
			}
			h := o.hdr
			if h.Typeflag != e.Type || h.Mode != e.Mode || h.Uid != e.Uid || h.Gid != e.Gid ||
				h.Linkname != e.Linkname || h.Size != e.Size || !h.ModTime.Equal(e.ModTime.Truncate(time.Second)) {
				t.Errorf("Entries and WriteTar differ at %q:\n entry %+v\n header %+v", e.Path, e, h)
			}
		}
	}
	return got
}

func expectTree(t *testing.T, tree *Tree, want map[string]string) {
	t.Helper()
	got := describe(t, tree, TarOptions{})
	if !maps.Equal(got, want) {
		t.Errorf("tree mismatch\n got: %v\nwant: %v", sorted(got), sorted(want))
	}
}

func sorted(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "\n  %s = %s", k, m[k])
	}
	return b.String()
}

func TestRegularDirSymlinkAndNormalisation(t *testing.T) {
	tree := flatten(t, L(
		dir("./etc/"),
		reg("./etc/passwd", "root"),
		reg("/abs", "a"),            // leading "/" stripped
		reg("usr//bin/./tool", "x"), // parents created, path cleaned
		sym("etc/abs-link", "/etc/passwd"),
		sym("escape", "../../../../etc/shadow"), // kept verbatim, never followed
		dir("./"),                               // root entry ignored
	))
	expectTree(t, tree, map[string]string{
		"etc": "d", "etc/passwd": "f:root", "abs": "f:a", "usr": "d", "usr/bin": "d",
		"usr/bin/tool": "f:x", "etc/abs-link": "l:/etc/passwd", "escape": "l:../../../../etc/shadow",
	})
	es := entriesByPath(tree.Entries())
	if e := es["usr/bin"]; e.Mode != 0o755 || e.Uid != 0 || !e.ModTime.Equal(epoch) {
		t.Errorf("implicit parent = %+v, want 0755 root mtime 0", e)
	}
}

func TestMetadataPreserved(t *testing.T) {
	mt := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	tree := flatten(t, L(
		te{name: "bin", typ: tar.TypeDir, mode: 0o755},
		te{name: "bin/su", typ: tar.TypeReg, body: "su", mode: 0o4755, uid: 0, gid: 0, mtime: mt},
		te{name: "bin/wall", typ: tar.TypeReg, body: "w", mode: 0o2755, gid: 5},
		te{name: "tmp", typ: tar.TypeDir, mode: 0o1777},
		te{name: "home", typ: tar.TypeDir, mode: 0o755},
		te{name: "home/u", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000},
		te{name: "home/u/f", typ: tar.TypeReg, body: "f", mode: 0o600, uid: 1000, gid: 100},
		te{name: "dev", typ: tar.TypeDir},
		te{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666},
		te{name: "dev/sda", typ: tar.TypeBlock, major: 8, minor: 0, mode: 0o660, gid: 6},
		te{name: "dev/fifo", typ: tar.TypeFifo, mode: 0o600},
		te{name: "bin/ping", typ: tar.TypeReg, body: "p", xattrs: map[string]string{"security.capability": "\x01\x00\x00\x02"}},
	))
	es := entriesByPath(tree.Entries())
	checks := []struct {
		path     string
		mode     int64
		uid, gid int
	}{
		{"bin/su", 0o4755, 0, 0}, {"bin/wall", 0o2755, 0, 5}, {"tmp", 0o1777, 0, 0},
		{"home/u", 0o700, 1000, 1000}, {"home/u/f", 0o600, 1000, 100},
		{"dev/null", 0o666, 0, 0}, {"dev/sda", 0o660, 0, 6}, {"dev/fifo", 0o600, 0, 0},
	}
	for _, c := range checks {
		e := es[c.path]
		if e.Mode != c.mode || e.Uid != c.uid || e.Gid != c.gid {
			t.Errorf("%s: mode %o %d:%d, want %o %d:%d", c.path, e.Mode, e.Uid, e.Gid, c.mode, c.uid, c.gid)
		}
	}
	if !es["bin/su"].ModTime.Equal(mt) {
		t.Errorf("mtime %v, want %v", es["bin/su"].ModTime, mt)
	}
	if e := es["dev/sda"]; e.Type != tar.TypeBlock || e.Devmajor != 8 || e.Devminor != 0 {
		t.Errorf("dev/sda = %+v", e)
	}
	if es["bin/ping"].Xattrs["security.capability"] != "\x01\x00\x00\x02" {
		t.Errorf("xattr lost: %v", es["bin/ping"].Xattrs)
	}
	out, _ := writeTar(t, tree, TarOptions{})
	if out["bin/ping"].hdr.PAXRecords["SCHILY.xattr.security.capability"] != "\x01\x00\x00\x02" {
		t.Errorf("xattr not written: %v", out["bin/ping"].hdr.PAXRecords)
	}
	if h := out["bin/su"].hdr; h.Mode != 0o4755 || !h.ModTime.Equal(mt) {
		t.Errorf("stream bin/su: %o %v", h.Mode, h.ModTime)
	}
	if h := out["dev/null"].hdr; h.Typeflag != tar.TypeChar || h.Devmajor != 1 || h.Devminor != 3 {
		t.Errorf("stream dev/null: %+v", h)
	}
	files, dirs, bytes := tree.Stats()
	if files != 7 || dirs != 5 || bytes != 5 {
		t.Errorf("Stats = %d files, %d dirs, %d bytes; want 7, 5, 5", files, dirs, bytes)
	}
}

func TestWhiteouts(t *testing.T) {
	tree := flatten(t,
		L(dir("a"), reg("a/f", "1"), reg("a/g", "2"), dir("a/sub"), reg("a/sub/x", "3"), reg("keep", "k")),
		L(wh("a/.wh.f"), wh("a/.wh.sub"), wh(".wh.missing"), wh("nodir/.wh.x")),
	)
	expectTree(t, tree, map[string]string{"a": "d", "a/g": "f:2", "keep": "f:k"})
}

func TestWhiteoutSameLayerEntryStays(t *testing.T) {
	tree := flatten(t,
		L(dir("a"), reg("a/old", "o"), reg("f", "old")),
		// The whiteout hides only lower content: the same layer's "f" and
		// "a/new" stay, whatever their order in the archive.
		L(reg("f", "new"), wh(".wh.f"), reg("a/new", "n"), wh(".wh.a")),
	)
	expectTree(t, tree, map[string]string{"a": "d", "a/new": "f:n", "f": "f:new"})
}

func TestOpaqueDirectory(t *testing.T) {
	tree := flatten(t,
		L(dir("d"), reg("d/low", "l"), dir("d/sub"), reg("d/sub/deep", "x"), reg("other", "o")),
		L(reg("d/before", "b"), te{name: "d", typ: tar.TypeDir, mode: 0o700}, wh("d/.wh..wh..opq"), dir("d/sub"), reg("d/after", "a")),
		L(wh("fresh/.wh..wh..opq"), reg("fresh/x", "y")),
	)
	expectTree(t, tree, map[string]string{
		"d": "d", "d/before": "f:b", "d/after": "f:a", "d/sub": "d", "other": "f:o",
		"fresh": "d", "fresh/x": "f:y",
	})
	if m := entriesByPath(tree.Entries())["d"].Mode; m != 0o700 {
		t.Errorf("opaque dir mode %o, want 0700 (newest metadata)", m)
	}
}

func TestOpaqueRoot(t *testing.T) {
	tree := flatten(t,
		L(reg("a", "1"), dir("b"), reg("b/c", "2")),
		L(wh(".wh..wh..opq"), reg("z", "3")),
	)
	expectTree(t, tree, map[string]string{"z": "f:3"})
}

func TestReplacement(t *testing.T) {
	tree := flatten(t,
		L(reg("f2d", "x"), dir("d2f"), reg("d2f/child", "c"), dir("d2f/sub"), reg("d2f/sub/g", "g"),
			reg("f2l", "y"), sym("l2d", "/etc"), reg("dup", "1"), reg("dup", "2")),
		L(dir("f2d"), reg("f2d/in", "i"), reg("d2f", "now a file"), sym("f2l", "target"),
			dir("l2d"), reg("l2d/x", "under a real dir")),
	)
	expectTree(t, tree, map[string]string{
		"f2d": "d", "f2d/in": "f:i", "d2f": "f:now a file", "f2l": "l:target",
		"l2d": "d", "l2d/x": "f:under a real dir", "dup": "f:2",
	})
	files, dirs, _ := tree.Stats()
	if files != 5 || dirs != 2 {
		t.Errorf("Stats after replacement: %d files %d dirs", files, dirs)
	}
}

func TestDirectoryKeepsNewestMetadataAndChildren(t *testing.T) {
	tree := flatten(t,
		L(te{name: "d", typ: tar.TypeDir, mode: 0o755, uid: 1}, reg("d/a", "a")),
		L(te{name: "d", typ: tar.TypeDir, mode: 0o750, uid: 2, gid: 3}, reg("d/b", "b")),
	)
	expectTree(t, tree, map[string]string{"d": "d", "d/a": "f:a", "d/b": "f:b"})
	e := entriesByPath(tree.Entries())["d"]
	if e.Mode != 0o750 || e.Uid != 2 || e.Gid != 3 {
		t.Errorf("d = %o %d:%d, want 0750 2:3", e.Mode, e.Uid, e.Gid)
	}
}

func TestHardLinks(t *testing.T) {
	tree := flatten(t,
		L(dir("bin"), reg("bin/busybox", "BB1"), hardlink("bin/sh", "bin/busybox"),
			reg("data", "D1"), reg("solo", "S1"), reg("grp/a", "G"), hardlink("grp/b", "grp/a"), hardlink("grp/c", "/grp/a")),
		// links to a lower layer's file
		L(hardlink("bin/ls", "./bin/busybox"), hardlink("data-link", "data"), hardlink("solo-link", "solo")),
		// targets replaced or whited out afterwards: links keep the old bytes
		L(reg("data", "D2"), wh(".wh.solo"), wh("grp/.wh.a")),
	)
	expectTree(t, tree, map[string]string{
		"bin": "d", "bin/busybox": "f:BB1", "bin/sh": "h:bin/busybox", "bin/ls": "h:bin/busybox",
		"data": "f:D2", "data-link": "f:D1", "solo-link": "f:S1",
		"grp": "d", "grp/b": "f:G", "grp/c": "h:grp/b",
	})
	_, _, bytes := tree.Stats()
	if want := int64(len("BB1D2D1S1G")); bytes != want {
		t.Errorf("Stats bytes = %d, want %d (each inode once)", bytes, want)
	}
}

func TestHardLinkTargetFromEarlierLayerEmittedFirst(t *testing.T) {
	// The link is in layer 1, its target's content in layer 2 (a later
	// layer re-links the target path); the stream must still write the
	// target before the link (checked by parseStream).
	tree := flatten(t,
		L(reg("z-first", "Z")),
		L(reg("a-target", "A"), hardlink("b-link", "a-target")),
		L(hardlink("a-alias", "z-first")),
	)
	out, order := writeTar(t, tree, TarOptions{})
	if out["a-alias"].hdr.Typeflag != tar.TypeLink && out["z-first"].hdr.Typeflag != tar.TypeLink {
		t.Errorf("z-first/a-alias not linked: %v", order)
	}
}

func TestHardLinkErrors(t *testing.T) {
	cases := map[string][]te{
		"missing target":  L(hardlink("l", "nope")),
		"dir target":      L(dir("d"), hardlink("l", "d")),
		"escaping target": L(reg("f", "x"), hardlink("l", "../f")),
	}
	for name, layer := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := flattenErr(t, layer)
			if err == nil || !isUnsafe(err) {
				t.Fatalf("err = %v, want an ErrUnsafe", err)
			}
			var le *LayerError
			if !errors.As(err, &le) || le.Index != 0 {
				t.Errorf("err %v is not a LayerError for layer 0", err)
			}
		})
	}
}

func TestUnsafeNamesRejected(t *testing.T) {
	cases := map[string][][]te{
		"dotdot":                    {L(reg("../evil", "x"))},
		"inner dotdot":              {L(reg("a/../../evil", "x"))},
		"dotdot that would clean":   {L(reg("a/../b", "x"))},
		"whiteout dot":              {L(wh("a/.wh.."))},
		"whiteout dotdot":           {L(wh("a/.wh..."))},
		"whiteout empty":            {L(wh(".wh."))},
		"below a regular file":      {L(reg("f", "x"), reg("f/g", "y"))},
		"below a symlink to a file": {L(reg("f", "x"), sym("s", "f")), L(reg("s/g", "y"))},
		"symlink loop":              {L(sym("a", "b"), sym("b", "a")), L(reg("a/x", "y"))},
		"whiteout name as dir":      {L(reg(".wh.x/y", "z"))},
		"root replaced by file":     {L(reg(".", ""))},
	}
	for name, layers := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := flattenErr(t, layers...)
			if err == nil {
				t.Fatal("no error")
			}
			if !isUnsafe(err) && name != "root replaced by file" {
				t.Errorf("err = %v, want ErrUnsafe", err)
			}
			var le *LayerError
			if !errors.As(err, &le) || le.Index != len(layers)-1 || le.Count != len(layers) {
				t.Errorf("err %v does not name layer %d of %d", err, len(layers)-1, len(layers))
			}
		})
	}
}

// TestParentSymlinksFollowed: a member, whiteout, opaque marker or hard
// link target whose parent path goes through a symlink lands where the
// symlink leads inside the tree, as umoci (Apptainer, SingularityCE),
// containerd, Docker and podman apply layers (TestCrossCheckUmoci
// "parent-symlinks" checks the same against umoci); Stream agrees.
func TestParentSymlinksFollowed(t *testing.T) {
	cases := map[string]struct {
		layers [][]te
		want   map[string]string
	}{
		"lower usr-merge link": {
			[][]te{L(reg("usr/lib/old", "o"), sym("lib", "usr/lib")), L(reg("lib/new", "n"), wh("lib/.wh.old"))},
			map[string]string{"usr": "d", "usr/lib": "d", "usr/lib/new": "f:n", "lib": "l:usr/lib"},
		},
		"same layer, absolute, clamped at the root": {
			[][]te{L(sym("etc", "/tmp"), reg("etc/passwd", "x"), sym("up", "../../../tmp"), reg("up/y", "y"))},
			map[string]string{"etc": "l:/tmp", "up": "l:../../../tmp", "tmp": "d", "tmp/passwd": "f:x", "tmp/y": "f:y"},
		},
		"opaque and hard link through a link": {
			[][]te{L(reg("real/a", "a"), reg("real/b", "b"), sym("s", "real")), L(wh("s/.wh..wh..opq"), reg("s/c", "c"), hardlink("s/d", "s/c"))},
			map[string]string{"real": "d", "real/c": "f:c", "real/d": "h:real/c", "s": "l:real"},
		},
		"dangling link: its target is made": {
			[][]te{L(sym("d", "no/where")), L(reg("d/x", "x"))},
			map[string]string{"d": "l:no/where", "no": "d", "no/where": "d", "no/where/x": "f:x"},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			expectTree(t, flatten(t, c.layers...), c.want)
			checkStream(t, c.layers)
		})
	}
}

func TestWhiteoutDotErrorMessage(t *testing.T) {
	_, err := flattenErr(t, L(dir("a")), L(wh("a/.wh..")))
	if err == nil || !strings.Contains(err.Error(), `".wh.."`) || !strings.Contains(err.Error(), "layer 2 of 2 (sha256:") {
		t.Fatalf("err = %v", err)
	}
}

func TestAUFSMetadataSkipped(t *testing.T) {
	tree := flatten(t,
		L(reg("a", "1")),
		L(dir(".wh..wh.plnk"), reg(".wh..wh.plnk/123.456", "x"), wh(".wh..wh.aufs"), reg("b", "2")),
	)
	expectTree(t, tree, map[string]string{"a": "f:1", "b": "f:2"})
}

func TestBadLayers(t *testing.T) {
	good := newLayer(t, reg("ok", "fine"))
	raw := tarBytes(t, reg("big", strings.Repeat("x", 10000)), reg("after", "y"))
	zipped := gz(t, raw)
	cases := map[string]*rawLayer{
		"truncated gzip":  {data: zipped[:len(zipped)/2]},
		"corrupt gzip":    {data: append(append([]byte{}, zipped[:len(zipped)-8]...), 1, 2, 3, 4, 5, 6, 7, 8)},
		"not gzip":        {data: []byte("this is not a gzip stream at all")},
		"truncated tar":   {data: raw[:1024], plain: true},
		"garbage tar":     {data: bytes.Repeat([]byte("garbage!"), 200), plain: true},
		"bad tar in gzip": {data: gz(t, bytes.Repeat([]byte{0xff}, 1024))},
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Flatten(context.Background(), imageOf(t, good, bad), Options{})
			if err == nil {
				t.Fatal("no error")
			}
			d, _ := bad.Digest()
			var le *LayerError
			if !errors.As(err, &le) || le.Index != 1 || le.Digest != d {
				t.Errorf("err = %v, want a LayerError for index 1 %s", err, d)
			}
			if !strings.Contains(err.Error(), "layer 2 of 2 ("+d.String()+")") {
				t.Errorf("message %q does not name the layer", err)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	img := imageOf(t, newLayer(t, reg("a", "1")), newLayer(t, reg("b", "2")))
	if _, err := Flatten(context.Background(), img, Options{MaxLayers: 1}); err == nil {
		t.Error("MaxLayers not enforced")
	}
	big := imageOf(t, newLayer(t, reg("a", "1"), reg("b", "2"), reg("c/d", "3")))
	if _, err := Flatten(context.Background(), big, Options{MaxEntries: 3}); err == nil {
		t.Error("MaxEntries not enforced")
	}
	if _, err := Flatten(context.Background(), big, Options{MaxEntries: 4}); err != nil {
		t.Errorf("MaxEntries 4: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Flatten(ctx, big, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled Flatten: %v", err)
	}
	tree := flatten(t, L(reg("a", "1")))
	if err := tree.WriteTar(ctx, &bytes.Buffer{}, TarOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled WriteTar: %v", err)
	}
}

func TestTarOptions(t *testing.T) {
	tree := flatten(t,
		L(te{name: "etc", typ: tar.TypeDir, mode: 0o755, uid: 7}, reg("etc/rc", "old rc"), reg("etc/keep", "k"),
			dir("dev"), te{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3},
			te{name: "dev/pts", typ: tar.TypeDir}, reg("dev/pts/x", "x"), te{name: "run/fifo", typ: tar.TypeFifo},
			dir("opt"), reg("opt/a", "a"), te{name: "owned", typ: tar.TypeReg, body: "o", uid: 1000, gid: 1000},
			reg("dirsoon", "file"), dir("filesoon"), reg("filesoon/x", "x"),
			reg("lnk/t", "T"), hardlink("lnk/u", "lnk/t")),
	)
	before := tree.Entries()
	opts := TarOptions{
		EmptyDirs: []string{"/dev", "proc"},
		Extra: []Entry{
			{Path: "etc/rc", Type: tar.TypeReg, Mode: 0o755, Content: []byte("new rc")},
			{Path: ".singularity.d/env/10-docker2singularity.sh", Type: tar.TypeReg, Mode: 0o755, Content: []byte("export A=1\n")},
			{Path: "singularity", Type: tar.TypeSymlink, Linkname: ".singularity.d/runscript"},
			{Path: "etc", Type: tar.TypeDir, Mode: 0o750},
			{Path: "filesoon", Type: tar.TypeReg, Content: []byte("was a dir")},
			{Path: "dirsoon/in", Type: tar.TypeReg, Content: []byte("i")},
			{Path: "etc/rc.hard", Type: tar.TypeLink, Linkname: "etc/rc"},
			{Path: "lnk/t", Type: tar.TypeReg, Content: []byte("replaced")},
		},
		DropDevices: true,
		AllRoot:     true,
	}
	// "dirsoon" is a regular file in the image: an Extra below it is refused.
	var buf bytes.Buffer
	if err := tree.WriteTar(context.Background(), &buf, opts); !errors.Is(err, ErrExtraParent) || isUnsafe(err) {
		t.Fatalf("extra below a regular file: err = %v, want ErrExtraParent (not a layer member's error)", err)
	}
	opts.Extra = slices.DeleteFunc(opts.Extra, func(e Entry) bool { return e.Path == "dirsoon/in" })
	got := describe(t, tree, opts)
	want := map[string]string{
		"etc": "d", "etc/rc": "f:new rc", "etc/keep": "f:k", "etc/rc.hard": "h:etc/rc",
		"dev": "d", "proc": "d", "run": "d",
		".singularity.d": "d", ".singularity.d/env": "d", ".singularity.d/env/10-docker2singularity.sh": "f:export A=1\n",
		"singularity": "l:.singularity.d/runscript", "opt": "d", "opt/a": "f:a", "owned": "f:o",
		"dirsoon": "f:file", "filesoon": "f:was a dir", "lnk": "d", "lnk/t": "f:replaced", "lnk/u": "f:T",
	}
	if !maps.Equal(got, want) {
		t.Errorf("tree mismatch\n got: %v\nwant: %v", sorted(got), sorted(want))
	}
	out, _ := writeTar(t, tree, opts)
	for p, e := range out {
		if e.hdr.Uid != 0 || e.hdr.Gid != 0 {
			t.Errorf("AllRoot: %s owned %d:%d", p, e.hdr.Uid, e.hdr.Gid)
		}
	}
	if h := out["etc"].hdr; h.Mode != 0o750 {
		t.Errorf("etc mode %o, want the Extra's 0750", h.Mode)
	}
	if h := out[".singularity.d/env"].hdr; h.Mode != 0o755 {
		t.Errorf("implicit parent mode %o", h.Mode)
	}
	// The Tree is unchanged and can be written again, identically.
	if after := tree.Entries(); !slices.EqualFunc(before, after, func(a, b Entry) bool {
		return a.Path == b.Path && a.Type == b.Type && a.Linkname == b.Linkname && a.Mode == b.Mode && a.Uid == b.Uid
	}) {
		t.Errorf("WriteTar changed the tree")
	}
	var b1, b2 bytes.Buffer
	if err := tree.WriteTar(context.Background(), &b1, opts); err != nil {
		t.Fatal(err)
	}
	if err := tree.WriteTar(context.Background(), &b2, opts); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Error("two WriteTar calls differ")
	}
	// Without options, owners and devices are kept.
	plain, _ := writeTar(t, tree, TarOptions{})
	if plain["owned"].hdr.Uid != 1000 || plain["dev/null"].hdr.Typeflag != tar.TypeChar || plain["dev/pts/x"].body != "x" {
		t.Errorf("plain stream lost data")
	}
}

func TestExtraErrors(t *testing.T) {
	tree := flatten(t, L(sym("etc", "/private/etc"), reg("f", "x")))
	cases := map[string]Entry{
		"through symlink": {Path: "etc/rc", Type: tar.TypeReg},
		"dotdot":          {Path: "../x", Type: tar.TypeReg},
		"root":            {Path: "/", Type: tar.TypeDir},
		"link to missing": {Path: "l", Type: tar.TypeLink, Linkname: "nope"},
		"bad type":        {Path: "x", Type: 'V'},
	}
	for name, e := range cases {
		if err := tree.WriteTar(context.Background(), &bytes.Buffer{}, TarOptions{Extra: []Entry{e}}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := tree.WriteTar(context.Background(), &bytes.Buffer{}, TarOptions{EmptyDirs: []string{"etc/x"}}); err == nil {
		t.Error("EmptyDirs through a symlink: no error")
	}
}

// TestExtraBelowSymlinkedDir covers issue 10's fault 3: the builders' own
// files below a directory the image made a symlink (etc -> usr/etc).
func TestExtraBelowSymlinkedDir(t *testing.T) {
	hosts := Entry{Path: "etc/hosts", Type: tar.TypeReg, Mode: 0o644}
	cases := []struct {
		name   string
		layer  []te
		want   map[string]string // paths that must hold these descriptions
		absent []string
		err    string
	}{
		{name: "relative", layer: []te{reg("usr/etc/passwd", "p"), sym("etc", "usr/etc")},
			want: map[string]string{"etc": "l:usr/etc", "usr/etc/hosts": "f:", "usr/etc/passwd": "f:p"}},
		{name: "absolute, inside the root", layer: []te{reg("usr/etc/passwd", "p"), sym("etc", "/usr/etc")},
			want: map[string]string{"etc": "l:/usr/etc", "usr/etc/hosts": "f:"}},
		{name: "escaping, clamped at the root", layer: []te{reg("usr/etc/passwd", "p"), sym("etc", "../../../../usr/etc")},
			want: map[string]string{"usr/etc/hosts": "f:"}},
		{name: "chain", layer: []te{reg("real/etc/passwd", "p"), sym("usr", "real"), sym("etc", "usr/etc")},
			want: map[string]string{"real/etc/hosts": "f:"}, absent: []string{"usr/etc"}},
		{name: "dangling", layer: []te{sym("etc", "usr/etc")}, err: `"etc" resolves to "/usr", which does not exist`},
		{name: "loop", layer: []te{sym("etc", "loop"), sym("loop", "etc")}, err: "too many levels of symlinks"},
		{name: "to a file", layer: []te{reg("f", "x"), sym("etc", "f")}, err: `"f" is not a directory`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tree := flatten(t, L(c.layer...))
			// Refused by default, with an error that names the builder's
			// file, not a layer member.
			err := tree.WriteTar(context.Background(), &bytes.Buffer{}, TarOptions{Extra: []Entry{hosts}})
			if !errors.Is(err, ErrExtraParent) || isUnsafe(err) || strings.Contains(err.Error(), "layer member") {
				t.Errorf("default: err = %v", err)
			}
			opts := TarOptions{Extra: []Entry{hosts}, ParentSymlinks: ResolveParentSymlinks}
			if c.err != "" {
				err := tree.WriteTar(context.Background(), &bytes.Buffer{}, opts)
				if !errors.Is(err, ErrExtraParent) || !strings.Contains(err.Error(), c.err) {
					t.Errorf("err = %v, want %q", err, c.err)
				}
				return
			}
			got := describe(t, tree, opts)
			for p, w := range c.want {
				if got[p] != w {
					t.Errorf("%s = %q, want %q (tree %v)", p, got[p], w, sorted(got))
				}
			}
			for _, p := range c.absent {
				if _, ok := got[p]; ok {
					t.Errorf("%s present", p)
				}
			}
			if _, ok := got["etc/hosts"]; ok {
				t.Errorf("etc/hosts written as a path of its own: %v", sorted(got))
			}
		})
	}
}

func TestImplicitDirMode(t *testing.T) {
	tree := flatten(t, L(reg("a/b/f", "x"), te{name: "c", typ: tar.TypeDir, mode: 0o700}, reg("c/g", "y")), L(te{name: "a/b", typ: tar.TypeDir, mode: 0o711}))
	out, _ := writeTar(t, tree, TarOptions{ImplicitDirMode: 0o775, Extra: []Entry{{Path: "new/dir/f", Type: tar.TypeReg}}})
	for p, want := range map[string]int64{"a": 0o775, "a/b": 0o711, "c": 0o700, "new": 0o755, "new/dir": 0o755} {
		if got := out[p].hdr.Mode; got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}
	if plain, _ := writeTar(t, tree, TarOptions{}); plain["a"].hdr.Mode != 0o755 {
		t.Errorf("default implicit mode %o", plain["a"].hdr.Mode)
	}
}

func TestLayerChangedBetweenPasses(t *testing.T) {
	l := newLayer(t, reg("a", "12345")).(*rawLayer)
	tree, err := Flatten(context.Background(), imageOf(t, l), Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.data = gz(t, tarBytes(t, reg("a", "123")))
	if err := tree.WriteTar(context.Background(), &bytes.Buffer{}, TarOptions{}); err == nil {
		t.Fatal("no error for a layer that changed")
	}
}

// TestSparseFiles: sparse members (PAX 1.0, as GNU tar --sparse writes
// them) are regular files whose holes read as zeros, in the tree and in
// both output streams, as umoci and GNU tar extract them; one larger than
// MaxSparseSize is refused.
func TestSparseFiles(t *testing.T) {
	body := "head" + strings.Repeat("\x00", 9000) + "middle" + strings.Repeat("\x00", 5000) + "tail"
	raw, err := corpus.TarBytes([]corpus.Member{
		corpus.Reg("before", 0o644, "b"),
		{Name: "d/sparse", Mode: 0o640, Body: body, Sparse: []corpus.SparseRegion{{Offset: 0, Length: 512}, {Offset: 8704, Length: 512}, {Offset: 13824, Length: int64(len(body)) - 13824}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	diffID, _, _ := v1.SHA256(bytes.NewReader(raw))
	img := imageOf(t, &rawLayer{data: gz(t, raw), diffID: diffID})
	tree, err := Flatten(context.Background(), img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if e := entriesByPath(tree.Entries())["d/sparse"]; e.Type != tar.TypeReg || e.Size != int64(len(body)) || e.Mode != 0o640 {
		t.Errorf("d/sparse = %+v", e)
	}
	out, _ := writeTar(t, tree, TarOptions{})
	if got := out["d/sparse"].body; got != body {
		t.Errorf("WriteTar wrote %d bytes for d/sparse, want the %d with zeros for holes", len(got), len(body))
	}
	var buf bytes.Buffer
	c := &Consumer{W: &buf}
	if _, err := Stream(context.Background(), img, Options{}, c); err != nil || c.Err() != nil {
		t.Fatalf("Stream: %v %v", err, c.Err())
	}
	var ref bytes.Buffer
	if err := tree.WriteTar(context.Background(), &ref, TarOptions{}); err != nil {
		t.Fatal(err)
	}
	if a, b := resolved(t, buf.Bytes()), resolved(t, ref.Bytes()); a["d/sparse"] != b["d/sparse"] {
		t.Errorf("Stream wrote d/sparse as %.80s, WriteTar as %.80s", a["d/sparse"], b["d/sparse"])
	}
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeGNUSparse, Name: "old-gnu", Size: MaxSparseSize + 1},
		{Typeflag: tar.TypeReg, Name: "pax", Size: MaxSparseSize + 1, PAXRecords: map[string]string{"GNU.sparse.major": "1"}},
	} {
		if _, err := attrsFromHeader(h, 0, 0); err == nil || !strings.Contains(err.Error(), "sparse file of") {
			t.Errorf("%s: err = %v, want the sparse size limit", h.Name, err)
		}
	}
	if _, err := attrsFromHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "big", Size: MaxSparseSize + 1}, 0, 0); err != nil {
		t.Errorf("a regular file larger than MaxSparseSize: %v", err)
	}
	// The bound is on the image's sum too: many sparse files, each under
	// it, in a tiny layer would cost every build reading hours of zeros.
	ix := &indexer{t: &Tree{x: newIndex()}, maxNodes: 1 << 20, logs: make([]layerLog, 1)}
	var err2 error
	for i := 0; i < 5 && err2 == nil; i++ {
		err2 = ix.add(0, &tar.Header{Typeflag: tar.TypeGNUSparse, Name: fmt.Sprintf("s%d", i), Size: MaxSparseSize / 4, Mode: 0o644}, int32(i))
	}
	if err2 == nil || !strings.Contains(err2.Error(), "sparse files of") || !strings.Contains(err2.Error(), "in all") {
		t.Errorf("five sparse files of MaxSparseSize/4: err = %v, want the image's sparse limit", err2)
	}
}

// TestTimesBeforeEpoch: a time before 1970 is written as its low 32 bits,
// as squashfs stores it from a directory (mksquashfs -tar refuses negative
// PAX times).
func TestTimesBeforeEpoch(t *testing.T) {
	old := time.Date(1960, 1, 2, 3, 4, 5, 0, time.UTC)
	tree := flatten(t, L(te{name: "f", body: "x", mtime: old}, te{name: "d", typ: tar.TypeDir, mtime: old}))
	out, _ := writeTar(t, tree, TarOptions{})
	want := time.Date(2096, 2, 7, 9, 32, 21, 0, time.UTC)
	for _, p := range []string{"f", "d"} {
		if got := out[p].hdr.ModTime; !got.Equal(want) {
			t.Errorf("%s: mtime %v, want %v", p, got, want)
		}
	}
}

// TestRootEntry: a layer's root entry ("./") gives the root its metadata,
// the newest one winning; without one the root is 0755 root:root.
func TestRootEntry(t *testing.T) {
	if r := flatten(t, L(reg("f", "x"))).Root(); r.Type != tar.TypeDir || r.Mode != 0o755 || r.Uid != 0 || r.Gid != 0 {
		t.Errorf("default root = %+v", r)
	}
	tree := flatten(t,
		L(te{name: "./", typ: tar.TypeDir, mode: 0o700}),
		L(te{name: "./", typ: tar.TypeDir, mode: 0o711, uid: 5, gid: 6}, reg("./f", "x")),
		L(reg("g", "y")),
	)
	if r := tree.Root(); r.Mode != 0o711 || r.Uid != 5 || r.Gid != 6 || r.Path != "" {
		t.Errorf("root = %+v, want 0711 5:6", r)
	}
	expectTree(t, tree, map[string]string{"f": "f:x", "g": "f:y"})
}
