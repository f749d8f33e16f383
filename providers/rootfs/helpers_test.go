package rootfs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// te describes one tar member of a crafted layer.
type te struct {
	name   string
	typ    byte // 0 = regular file
	body   string
	link   string
	mode   int64 // 0 = 0644 for files, 0755 for directories
	uid    int
	gid    int
	mtime  time.Time
	major  int64
	minor  int64
	xattrs map[string]string
}

func reg(name, body string) te        { return te{name: name, typ: tar.TypeReg, body: body} }
func dir(name string) te              { return te{name: name, typ: tar.TypeDir} }
func sym(name, target string) te      { return te{name: name, typ: tar.TypeSymlink, link: target} }
func hardlink(name, target string) te { return te{name: name, typ: tar.TypeLink, link: target} }
func wh(name string) te               { return te{name: name, typ: tar.TypeReg} }

var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// tarBytes builds an uncompressed tar archive of the members.
func tarBytes(t testing.TB, members ...te) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		typ := m.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := m.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		mt := m.mtime
		if mt.IsZero() {
			mt = testTime
		}
		h := &tar.Header{
			Typeflag: typ, Name: m.name, Linkname: m.link, Mode: mode,
			Uid: m.uid, Gid: m.gid, ModTime: mt, Devmajor: m.major, Devminor: m.minor,
			Format: tar.FormatPAX,
		}
		if typ == tar.TypeReg {
			h.Size = int64(len(m.body))
		}
		for k, v := range m.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", m.name, err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(m.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawLayer is a v1.Layer over bytes held in memory: gzip-compressed unless
// plain is set. Its Uncompressed stream is whatever the bytes decode to,
// which lets tests feed truncated or corrupt layers.
type rawLayer struct {
	data   []byte
	plain  bool
	diffID v1.Hash
}

func newLayer(t testing.TB, members ...te) v1.Layer {
	t.Helper()
	raw := tarBytes(t, members...)
	h, _, _ := v1.SHA256(bytes.NewReader(raw))
	return &rawLayer{data: gz(t, raw), diffID: h}
}

func (l *rawLayer) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(l.data))
	return h, err
}
func (l *rawLayer) DiffID() (v1.Hash, error) {
	if l.diffID.Hex != "" {
		return l.diffID, nil
	}
	return l.Digest()
}
func (l *rawLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.data)), nil
}
func (l *rawLayer) Uncompressed() (io.ReadCloser, error) {
	if l.plain {
		return io.NopCloser(bytes.NewReader(l.data)), nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(l.data))
	if err != nil {
		return nil, err
	}
	return zr, nil
}
func (l *rawLayer) Size() (int64, error) { return int64(len(l.data)), nil }
func (l *rawLayer) MediaType() (types.MediaType, error) {
	if l.plain {
		return types.OCIUncompressedLayer, nil
	}
	return types.OCILayer, nil
}

func imageOf(t testing.TB, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// flatten builds an image of one layer per member list and flattens it.
func flatten(t testing.TB, layers ...[]te) *Tree {
	t.Helper()
	tree, err := flattenErr(t, layers...)
	if err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	return tree
}

func flattenErr(t testing.TB, layers ...[]te) (*Tree, error) {
	t.Helper()
	var ls []v1.Layer
	for _, m := range layers {
		ls = append(ls, newLayer(t, m...))
	}
	return Flatten(context.Background(), imageOf(t, ls...), Options{})
}

func L(members ...te) []te { return members }

// outEntry is one member of a WriteTar stream.
type outEntry struct {
	hdr  *tar.Header
	body string
	pos  int
}

// writeTar runs WriteTar and parses the stream, checking that every path is
// clean and written once, that parents come before children and hard-link
// targets before links.
func writeTar(t testing.TB, tree *Tree, opts TarOptions) (map[string]outEntry, []string) {
	t.Helper()
	var buf bytes.Buffer
	if err := tree.WriteTar(context.Background(), &buf, opts); err != nil {
		t.Fatalf("WriteTar: %v", err)
	}
	out, order, err := parseStream(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return out, order
}

func parseStream(b []byte) (map[string]outEntry, []string, error) {
	out := map[string]outEntry{}
	var order []string
	tr := tar.NewReader(bytes.NewReader(b))
	for i := 0; ; i++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		p := h.Name
		if h.Typeflag == tar.TypeDir {
			if len(p) == 0 || p[len(p)-1] != '/' {
				return nil, nil, errorf("directory %q without trailing slash", p)
			}
			p = p[:len(p)-1]
		}
		if c, err := CleanPath(p); err != nil || c != p || p == "" {
			return nil, nil, errorf("unclean path %q in output", h.Name)
		}
		if _, dup := out[p]; dup {
			return nil, nil, errorf("path %q written twice", p)
		}
		if par := parentOf(p); par != "" {
			pe, ok := out[par]
			if !ok || pe.hdr.Typeflag != tar.TypeDir {
				return nil, nil, errorf("%q written before its parent directory", p)
			}
		}
		if h.Typeflag == tar.TypeLink {
			te, ok := out[h.Linkname]
			if !ok || te.hdr.Typeflag == tar.TypeLink || te.hdr.Typeflag == tar.TypeDir {
				return nil, nil, errorf("hard link %q -> %q before (or without) its target", p, h.Linkname)
			}
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return nil, nil, err
		}
		out[p] = outEntry{hdr: h, body: string(body), pos: i}
		order = append(order, p)
	}
	return out, order, nil
}

func parentOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return ""
}

var errorf = fmt.Errorf

func entriesByPath(es []Entry) map[string]Entry {
	m := map[string]Entry{}
	for _, e := range es {
		m[e.Path] = e
	}
	return m
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// needTool returns the path of an external program, or skips the test
// (fails when CACHECTL_REQUIRE_TOOLS is set).
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CACHECTL_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is required (CACHECTL_REQUIRE_TOOLS is set) but not found: %v", name, err)
		}
		t.Skipf("%s not found (set CACHECTL_REQUIRE_TOOLS to fail instead): %v", name, err)
	}
	return p
}

func isUnsafe(err error) bool { return errors.Is(err, ErrUnsafe) }
