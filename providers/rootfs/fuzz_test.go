package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// fuzzSep separates the layers in a fuzz input.
var fuzzSep = []byte("\x00--layer--\x00")

// fuzzSeeds are well-formed multi-layer inputs covering every rule, so that
// mutations start from archives the tar reader accepts.
func fuzzSeeds(t testing.TB) map[string][]byte {
	join := func(layers ...[]te) []byte {
		var parts [][]byte
		for i, m := range layers {
			b := tarBytes(t, m...)
			if i == 1 {
				b = gz(t, b)
			}
			parts = append(parts, b)
		}
		return bytes.Join(parts, fuzzSep)
	}
	return map[string][]byte{
		"basic": join(L(dir("etc"), reg("etc/a", "1"), sym("etc/l", "/x"), hardlink("h", "etc/a"))),
		"whiteouts": join(
			L(dir("a"), reg("a/b", "1"), dir("a/d"), reg("a/d/e", "2"), reg("f", "3")),
			L(wh("a/.wh.b"), wh("a/d/.wh..wh..opq"), reg("a/d/n", "4"), wh(".wh.f")),
			L(reg("f", "5"), hardlink("g", "a/d/n"), wh("a/d/.wh.n")),
		),
		"replace": join(
			L(dir("x"), reg("x/y", "1"), reg("z", "2"), sym("s", "x")),
			L(reg("x", "now file"), dir("z"), reg("z/in", "3")),
		),
		"unsafe": join(
			L(sym("s", "/etc"), reg("s/passwd", "x")),
			L(wh("a/.wh.."), reg("../x", "y")),
		),
		"devices": join(L(te{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3}, te{name: "p", typ: tar.TypeFifo})),
	}
}

// FuzzFlatten feeds arbitrary bytes (1–3 layers, separated by fuzzSep;
// gzip or plain) to Flatten and WriteTar: they must not panic, and every
// path they produce must be clean, inside the tree, and written in an order
// sequential consumers accept.
func FuzzFlatten(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parts := bytes.SplitN(data, fuzzSep, 3)
		var layers []v1.Layer
		for _, p := range parts {
			plain := !bytes.HasPrefix(p, []byte{0x1f, 0x8b})
			layers = append(layers, &rawLayer{data: p, plain: plain})
		}
		tree, err := Flatten(context.Background(), imageOf(t, layers...), Options{MaxEntries: 100000})
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range tree.Entries() {
			if c, err := CleanPath(e.Path); err != nil || c != e.Path || e.Path == "" {
				t.Fatalf("unclean entry path %q", e.Path)
			}
			if seen[e.Path] {
				t.Fatalf("duplicate entry %q", e.Path)
			}
			seen[e.Path] = true
			if e.Type == tar.TypeLink && !seen[e.Linkname] && e.Linkname >= e.Path {
				// The link's first path may sort after it; it must exist.
				found := false
				for _, o := range tree.Entries() {
					found = found || (o.Path == e.Linkname && o.Type != tar.TypeLink && o.Type != tar.TypeDir)
				}
				if !found {
					t.Fatalf("hard link %q to missing %q", e.Path, e.Linkname)
				}
			}
		}
		for _, opts := range []TarOptions{{}, {
			EmptyDirs: []string{"dev"}, DropDevices: true, AllRoot: true,
			Extra: []Entry{{Path: "etc/rc", Type: tar.TypeReg, Content: []byte("rc")}},
		}} {
			var buf bytes.Buffer
			if err := tree.WriteTar(context.Background(), &buf, opts); err != nil {
				if len(opts.Extra) > 0 && isUnsafe(err) {
					continue // "etc" or "dev"'s parent is not a directory
				}
				t.Fatalf("WriteTar after a successful Flatten: %v", err)
			}
			if _, _, err := parseStream(buf.Bytes()); err != nil {
				t.Fatalf("bad stream: %v", err)
			}
		}
	})
}

// TestWriteFuzzSeeds writes the seeds to testdata/fuzz/FuzzFlatten when
// CACHECTL_WRITE_FUZZ_SEEDS is set.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("CACHECTL_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set CACHECTL_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz/FuzzFlatten")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzFlatten")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range fuzzSeeds(t) {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
