package spec

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad loads arbitrary spec bytes: no panic, and every artifact of a
// model lies strictly below its cache root with a checked name.
func FuzzLoad(f *testing.F) {
	examples, _ := filepath.Glob("../examples/*.hcl")
	for _, e := range examples {
		if b, err := os.ReadFile(e); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("cache \"c\" {\n  runtime = \"apptainer\"\n  root = \"/c\"\n  images = [\"a/b:1\", \"a\"]\n}\n"))
	f.Add([]byte("cache \"c\" {\n  runtime = \"enroot\"\n  root = \"/c/../d\"\n  image {\n    ref = \"x:1\"\n    name = \"../x\"\n  }\n}\n"))
	f.Add([]byte("locals {\n  a = local.b\n  b = local.a\n}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, d := LoadSources([]Source{{Filename: "fuzz.hcl", Bytes: data}}, Options{Vars: nil})
		if d == nil {
			t.Fatal("nil diagnostics")
		}
		if d.HasErrors() != (m == nil) {
			t.Fatalf("model %v with errors %v", m != nil, d.HasErrors())
		}
		var sink strings.Builder
		_ = d.WriteText(&sink, true, 60)
		_ = d.WriteJSON(&sink)
		if m == nil {
			return
		}
		for _, c := range m.Caches {
			if !path.IsAbs(c.Root) || c.Root == "/" || path.Clean(c.Root) != c.Root {
				t.Fatalf("cache %s root %q", c.Name, c.Root)
			}
			for _, a := range c.Artifacts {
				if err := CheckName(c.Runtime, a.Name); err != nil {
					t.Fatalf("artifact %q name %q: %v", a.Ref, a.Name, err)
				}
				if !Within(c.Root, a.Path) || path.Clean(a.Path) != a.Path {
					t.Fatalf("artifact %q path %q outside root %q", a.Ref, a.Path, c.Root)
				}
				if Within(path.Join(c.Root, IndexDir), a.Path) {
					t.Fatalf("artifact %q path %q inside the index directory", a.Ref, a.Path)
				}
			}
		}
	})
}

// FuzzFileName feeds arbitrary references and custom names to the naming
// functions: whatever they accept joins to a path strictly below the root.
func FuzzFileName(f *testing.F) {
	for _, s := range []string{"alpine:3.20", "a/../../b", "../x", "/abs", "a//b", ".cachectl/x", "x/.", "localhost:5000/a/b:c", "a\\..\\b", ".."} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, s string, rti uint8) {
		rt := Runtimes[int(rti)%len(Runtimes)]
		const root = "/shared/cache"
		check := func(n string) {
			p := JoinRoot(root, n) // panics when outside
			if !Within(root, p) || Within(root+"/"+IndexDir, p) || p == root+"/"+IndexDir {
				t.Fatalf("%q (%s) lands on %q", n, rt, p)
			}
		}
		if n, err := FileName(rt, s); err == nil {
			check(n)
		}
		if CheckName(rt, s) == nil {
			check(s)
		}
		if info, err := ParseRef(s); err == nil {
			if info.Parsed == nil {
				t.Fatalf("ParseRef(%q): nil Parsed", s)
			}
			n, err := FileName(rt, s)
			if err == nil {
				check(n)
			}
		}
	})
}
