package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// blobLayer is a layer given by its blob bytes and media type; its
// Uncompressed stream is go-containerregistry's (which sniffs gzip, zstd or
// nothing), so it is the reference our own gzip path must agree with.
type blobLayer struct {
	blob []byte
	mt   types.MediaType
	// tail, when set, is returned by Compressed's reader at EOF (like a
	// digest mismatch reported when the blob has been read to its end).
	tail error
}

func (l *blobLayer) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(l.blob))
	return h, err
}

// DiffID is not checked by Flatten; the digest stands in for it.
func (l *blobLayer) DiffID() (v1.Hash, error)            { return l.Digest() }
func (l *blobLayer) Size() (int64, error)                { return int64(len(l.blob)), nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error) {
	var r io.Reader = bytes.NewReader(l.blob)
	if l.tail != nil {
		r = io.MultiReader(r, errReader{l.tail})
	}
	return io.NopCloser(r), nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func toLayer(t *testing.T, l *blobLayer) v1.Layer {
	t.Helper()
	v, err := partial.CompressedToLayer(l)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func zstdBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// Every encoding of the same layers flattens and writes the same tree.
func TestLayerEncodings(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 300_000) // several read-ahead chunks
	l1 := tarBytes(t, dir("etc"), reg("etc/a", "one"), reg("big", big), reg("gone", "g"))
	l2 := tarBytes(t, reg("etc/b", "two"), wh(".wh.gone"), reg("big2", big[:1234567]))
	half := len(l2) / 2
	encodings := map[string]func(b []byte) *blobLayer{
		"gzip":                 func(b []byte) *blobLayer { return &blobLayer{blob: gz(t, b), mt: types.OCILayer} },
		"docker gzip":          func(b []byte) *blobLayer { return &blobLayer{blob: gz(t, b), mt: types.DockerLayer} },
		"uncompressed":         func(b []byte) *blobLayer { return &blobLayer{blob: b, mt: types.OCIUncompressedLayer} },
		"plain as gzip type":   func(b []byte) *blobLayer { return &blobLayer{blob: b, mt: types.OCILayer} },
		"zstd":                 func(b []byte) *blobLayer { return &blobLayer{blob: zstdBytes(t, b), mt: types.OCILayerZStd} },
		"zstd as gzip type":    func(b []byte) *blobLayer { return &blobLayer{blob: zstdBytes(t, b), mt: types.DockerLayer} },
		"gzip as unknown type": func(b []byte) *blobLayer { return &blobLayer{blob: gz(t, b), mt: "application/x-foo"} },
		"multi-member gzip": func(b []byte) *blobLayer {
			if len(b) == len(l2) {
				return &blobLayer{blob: append(gz(t, b[:half]), gz(t, b[half:])...), mt: types.OCILayer}
			}
			return &blobLayer{blob: gz(t, b), mt: types.OCILayer}
		},
	}
	want := map[string]string{"etc": "d", "etc/a": "f:one", "etc/b": "f:two", "big": "f:" + big, "big2": "f:" + big[:1234567]}
	for name, enc := range encodings {
		t.Run(name, func(t *testing.T) {
			tree, err := Flatten(context.Background(), imageOf(t, toLayer(t, enc(l1)), toLayer(t, enc(l2))), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(t, tree, TarOptions{}); !maps.Equal(got, want) {
				t.Errorf("tree mismatch: got %d paths %v", len(got), keys(got))
			}
		})
	}
}

func keys(m map[string]string) []string {
	var k []string
	for p := range m {
		k = append(k, p)
	}
	return k
}

// An error that the blob reports only at its end (a digest mismatch) fails
// Flatten: the first pass reads every layer to its end.
func TestLayerErrorAtBlobEnd(t *testing.T) {
	mismatch := errors.New("digest mismatch")
	raw := tarBytes(t, reg("a", "1"))
	for name, l := range map[string]*blobLayer{
		"gzip":  {blob: gz(t, raw), mt: types.OCILayer, tail: mismatch},
		"plain": {blob: raw, mt: types.OCIUncompressedLayer, tail: mismatch},
	} {
		_, err := Flatten(context.Background(), imageOf(t, toLayer(t, l)), Options{})
		var le *LayerError
		if !errors.Is(err, mismatch) || !errors.As(err, &le) || le.Index != 0 {
			t.Errorf("%s: err = %v, want the blob's error in a LayerError", name, err)
		}
	}
}

// Many layers: the concurrent header decoding keeps layer order, and an
// error in a later layer is reported for that layer even while earlier
// ones are being applied.
func TestFlattenManyLayersOrder(t *testing.T) {
	var layers []v1.Layer
	for i := 0; i < 12; i++ {
		layers = append(layers, newLayer(t, reg("f", strings.Repeat("x", i+1)), reg("only"+string(rune('a'+i)), "y")))
	}
	tree, err := Flatten(context.Background(), imageOf(t, layers...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := describe(t, tree, TarOptions{})
	if got["f"] != "f:"+strings.Repeat("x", 12) || len(got) != 13 {
		t.Errorf("got %v", got)
	}
	bad := append(append([]v1.Layer{}, layers[:5]...), &rawLayer{data: []byte("not a layer at all")})
	bad = append(bad, layers[5:]...)
	_, err = Flatten(context.Background(), imageOf(t, bad...), Options{})
	var le *LayerError
	if !errors.As(err, &le) || le.Index != 5 {
		t.Errorf("err = %v, want a LayerError for index 5", err)
	}
}

func TestIfMissingAndEditHeader(t *testing.T) {
	tree := flatten(t, L(
		te{name: "etc", typ: tar.TypeDir, mode: 0o700}, sym("home", "/data"), reg("tmp", "file"),
		dir("dev"), te{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3},
		te{name: "ro", typ: tar.TypeReg, body: "r", mode: 0o000},
	))
	now := time.Unix(1700000000, 0)
	opts := TarOptions{
		IfMissing: []Entry{
			{Path: "etc", Type: tar.TypeDir, Mode: 0o755, ModTime: now},       // exists: kept as is
			{Path: "var/tmp", Type: tar.TypeDir, Mode: 0o1777, ModTime: now},  // parent created
			{Path: "home/user", Type: tar.TypeDir, Mode: 0o755, ModTime: now}, // parent is a symlink
			{Path: "tmp", Type: tar.TypeDir, Mode: 0o755, ModTime: now},       // exists as a file
			{Path: "tmp/sub", Type: tar.TypeDir, Mode: 0o755, ModTime: now},   // parent is a file
			{Path: "dev/null", Type: tar.TypeDir, Mode: 0o755, ModTime: now},  // dropped device: absent
			{Path: "singularity", Type: tar.TypeSymlink, Linkname: ".run", ModTime: now},
			{Path: "etc/x", Type: tar.TypeSymlink, Linkname: "y", ModTime: now}, // below an existing dir
		},
		Extra:       []Entry{{Path: "etc/rc", Type: tar.TypeReg, Content: []byte("rc")}},
		DropDevices: true,
		EditHeader: func(h *tar.Header) {
			h.Mode |= 0o400
			h.Uname = "edited"
		},
	}
	got := describe(t, tree, opts)
	want := map[string]string{
		"etc": "d", "etc/rc": "f:rc", "etc/x": "l:y", "home": "l:/data", "tmp": "f:file",
		"dev": "d", "dev/null": "d", "ro": "f:r", "var": "d", "var/tmp": "d", "singularity": "l:.run",
	}
	if !maps.Equal(got, want) {
		t.Errorf("tree mismatch\n got: %v\nwant: %v", sorted(got), sorted(want))
	}
	out, _ := writeTar(t, tree, opts)
	for p, e := range out {
		if e.hdr.Uname != "edited" || e.hdr.Mode&0o400 == 0 {
			t.Errorf("%s: EditHeader not applied (uname %q, mode %o)", p, e.hdr.Uname, e.hdr.Mode)
		}
	}
	if h := out["etc"].hdr; h.Mode != 0o700 {
		t.Errorf("existing etc changed: mode %o", h.Mode)
	}
	if h := out["var"].hdr; h.Mode != 0o755 || !h.ModTime.Equal(now) || h.Uid != 0 {
		t.Errorf("created parent var: mode %o mtime %v uid %d", h.Mode, h.ModTime, h.Uid)
	}
	if h := out["var/tmp"].hdr; h.Mode != 0o1777 {
		t.Errorf("var/tmp mode %o", h.Mode)
	}
	// The tree itself is unchanged.
	if plain := describe(t, tree, TarOptions{}); plain["var"] != "" || plain["singularity"] != "" {
		t.Error("IfMissing changed the tree")
	}
	// EditHeader may not rename.
	bad := TarOptions{EditHeader: func(h *tar.Header) { h.Name = "x" + h.Name }}
	if err := tree.WriteTar(context.Background(), io.Discard, bad); err == nil {
		t.Error("EditHeader renaming an entry: no error")
	}
	for _, e := range []Entry{{Path: "f", Type: tar.TypeReg}, {Path: "../x", Type: tar.TypeDir}, {Path: "l", Type: tar.TypeSymlink}} {
		if err := tree.WriteTar(context.Background(), io.Discard, TarOptions{IfMissing: []Entry{e}}); err == nil {
			t.Errorf("IfMissing %+v: no error", e)
		}
	}
}

// Cancelling WriteTar while layers are inflated ahead stops it cleanly.
func TestWriteTarCancelMidStream(t *testing.T) {
	big := strings.Repeat("z", 6<<20)
	tree := flatten(t, L(reg("a", big)), L(reg("b", big)), L(reg("c", big)))
	ctx, cancel := context.WithCancel(context.Background())
	w := &cancelAfter{n: 1 << 20, cancel: cancel}
	if err := tree.WriteTar(ctx, w, TarOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

type cancelAfter struct {
	n      int
	cancel func()
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.n -= len(p)
	if c.n < 0 {
		c.cancel()
	}
	return len(p), nil
}
