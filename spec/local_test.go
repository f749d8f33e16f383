package spec

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func TestParseLocalRef(t *testing.T) {
	for _, tc := range []struct {
		ref              string
		kind             LocalKind
		path, abs, image string
		err              string
	}{
		{ref: "oci-layout:/srv/layout", kind: LocalOCILayout, path: "/srv/layout", abs: "/srv/layout"},
		{ref: "oci-layout:/srv/layout/", kind: LocalOCILayout, path: "/srv/layout/", abs: "/srv/layout"},
		{ref: "oci-layout:/srv/layout:app:1.0", kind: LocalOCILayout, path: "/srv/layout", abs: "/srv/layout", image: "app:1.0"},
		{ref: "oci-layout:layouts/x:v1", kind: LocalOCILayout, path: "layouts/x", image: "v1"},
		{ref: "oci-layout:/l:docker.io/library/alpine:3.20", kind: LocalOCILayout, path: "/l", abs: "/l", image: "docker.io/library/alpine:3.20"},
		{ref: "oci-archive:/srv/a.tar", kind: LocalOCIArchive, path: "/srv/a.tar", abs: "/srv/a.tar"},
		{ref: "oci-archive:a.tar:Latest", kind: LocalOCIArchive, path: "a.tar", image: "Latest"},
		{ref: "docker-archive:/srv/d.tar", kind: LocalDockerArchive, path: "/srv/d.tar", abs: "/srv/d.tar"},
		{ref: "docker-archive:/srv/d.tar:alpine:3.20", kind: LocalDockerArchive, path: "/srv/d.tar", abs: "/srv/d.tar", image: "alpine:3.20"},
		{ref: "docker-archive:/d.tar:localhost:5000/x/y:1", kind: LocalDockerArchive, path: "/d.tar", abs: "/d.tar", image: "localhost:5000/x/y:1"},
		{ref: "dir with space/x", err: "does not start"},
		{ref: "oci-layout:", err: "directory path after \"oci-layout:\" is empty"},
		{ref: "oci-archive::x", err: "file path after \"oci-archive:\" is empty"},
		{ref: "oci-layout:/x:", err: "image name after \"oci-layout:/x:\" is empty"},
		{ref: "oci-layout: /x", err: "white space"},
		{ref: "oci-layout:/x\n", err: "white space"},
		{ref: "oci-layout:/x\ty", err: "control character"},
		{ref: "oci-archive:/srv/", err: "ends with \"/\""},
		{ref: "oci-layout:/x:bad name", err: "invalid image name \"bad name\""},
		{ref: "oci-layout:/x:-v1", err: "invalid image name"},
		{ref: "oci-layout:/x:a//b", err: "invalid image name"},
		{ref: "docker-archive:/d.tar:Alpine:1", err: "lowercase"},
		{ref: "docker-archive:/d.tar:alpine", err: "add the tag"},
		{ref: "docker-archive:/d.tar:alpine@sha256:" + strings.Repeat("a", 64), err: "not by digest"},
	} {
		r, err := ParseLocalRef(tc.ref)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseLocalRef(%q) = %v; want an error containing %q", tc.ref, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseLocalRef(%q): %v", tc.ref, err)
			continue
		}
		if r.Kind != tc.kind || r.Path != tc.path || r.AbsPath != tc.abs || r.Image != tc.image {
			t.Errorf("ParseLocalRef(%q) = %+v; want kind %s path %q abs %q image %q", tc.ref, *r, tc.kind, tc.path, tc.abs, tc.image)
		}
		if r.String() != strings.TrimSuffix(tc.ref, "") {
			t.Errorf("String() = %q, want %q", r.String(), tc.ref)
		}
	}
}

func TestTransportHints(t *testing.T) {
	for ref, want := range map[string]string{
		"docker://alpine:3.20":   "without the \"docker://\" prefix (\"alpine:3.20\")",
		"oci:/srv/layout:x":      "oci-layout:DIR[:REF]",
		"docker-daemon:alpine:1": "\"docker-daemon:\" is not a supported source",
		"alpine:3.20":            "",
		"localhost:5000/x:1":     "",
	} {
		if got := transportHint(ref); want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("transportHint(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestLocalArtifacts(t *testing.T) {
	dir := t.TempDir()
	m, d := LoadSources([]Source{{Filename: filepath.Join(dir, "a.hcl"), Bytes: []byte(`
flavor "air" { images = ["oci-archive:archives/app.tar:app:1.0"] }
cache "sif" {
  runtime = "apptainer"
  root    = "/c/sif"
  flavors = ["air"]
  images  = ["oci-layout:/srv/layout:docker.io/library/alpine:3.20", "docker-archive:d.tar:tools/x:2"]
  image {
    ref  = "oci-layout:layouts/anon"
    name = "anon/base"
  }
}
cache "sq" {
  runtime = "enroot"
  root    = "/c/sq"
  images  = ["oci-layout:/srv/layout:docker.io/library/alpine:3.20", "docker-archive:d.tar:tools/x:2", "oci-layout:/srv/l:v1"]
}
cache "oci" {
  runtime = "podman"
  root    = "/c/oci"
  images  = ["oci-layout:/srv/layout:docker.io/library/alpine:3.20"]
  image {
    ref  = "oci-archive:archives/app.tar:app:1.0"
    name = "app"
  }
}
`)}}, Options{})
	if d.HasErrors() {
		t.Fatal(d.Error())
	}
	type want struct{ name, abs string }
	for cache, arts := range map[string]map[string]want{
		"sif": {
			"oci-archive:archives/app.tar:app:1.0":                 {"app:1.0", filepath.Join(dir, "archives/app.tar")},
			"oci-layout:/srv/layout:docker.io/library/alpine:3.20": {"docker.io/library/alpine:3.20", "/srv/layout"},
			"docker-archive:d.tar:tools/x:2":                       {"tools/x:2", filepath.Join(dir, "d.tar")},
			"oci-layout:layouts/anon":                              {"anon/base", filepath.Join(dir, "layouts/anon")},
		},
		"sq": {
			"oci-layout:/srv/layout:docker.io/library/alpine:3.20": {"docker.io+library+alpine+3.20.sqsh", "/srv/layout"},
			"docker-archive:d.tar:tools/x:2":                       {"tools+x+2.sqsh", filepath.Join(dir, "d.tar")},
			"oci-layout:/srv/l:v1":                                 {"v1.sqsh", "/srv/l"},
		},
		"oci": {
			"oci-layout:/srv/layout:docker.io/library/alpine:3.20": {"docker.io+library+alpine+3.20", "/srv/layout"},
			"oci-archive:archives/app.tar:app:1.0":                 {"app", filepath.Join(dir, "archives/app.tar")},
		},
	} {
		c := m.Cache(cache)
		if len(c.Artifacts) != len(arts) {
			t.Errorf("cache %s has %d artifacts, want %d", cache, len(c.Artifacts), len(arts))
		}
		for _, a := range c.Artifacts {
			w, ok := arts[a.Ref]
			if !ok {
				t.Errorf("cache %s: unexpected artifact %q", cache, a.Ref)
				continue
			}
			if a.Local == nil || a.Parsed != nil {
				t.Errorf("%s: Local %v, Parsed %v: want a local source only", a.Address(), a.Local, a.Parsed)
				continue
			}
			if a.Name != w.name || a.Local.AbsPath != w.abs {
				t.Errorf("%s: name %q abs %q; want %+v", a.Address(), a.Name, a.Local.AbsPath, w)
			}
		}
	}
}

func TestLocalValidation(t *testing.T) {
	c := func(rt, images string) string {
		return "cache \"c\" {\n  runtime = \"" + rt + "\"\n  root = \"/c\"\n  images = [" + images + "]\n}\n"
	}
	for _, tc := range []struct {
		name, src string
		sev       hcl.DiagnosticSeverity
		summary   string
		detail    string
		line, col int
	}{
		{"no name", c("apptainer", `"a:1", "oci-layout:/srv/l"`), hcl.DiagError, "Local image without a name", "oci-layout:/srv/l:REF", 4, 20},
		{"no name docker", c("enroot", `"docker-archive:/d.tar"`), hcl.DiagError, "Local image without a name", "docker-archive:/d.tar:REPO:TAG", 4, 13},
		{"no name in flavor", "flavor \"f\" {\n  images = [\"oci-archive:/a.tar\"]\n}\ncache \"c\" {\n  runtime = \"podman\"\n  root = \"/c\"\n  flavors = [\"f\"]\n}\n", hcl.DiagError, "Local image without a name", "in cache \"c\"", 2, 13},
		{"empty path", c("apptainer", `"oci-layout:"`), hcl.DiagError, "Invalid image reference", "is empty", 4, 13},
		{"bad oci ref", c("apptainer", `"oci-archive:/a.tar:a b"`), hcl.DiagError, "Invalid image reference", "ref.name", 4, 13},
		{"docker digest", c("apptainer", `"docker-archive:/a.tar:a@sha256:`+strings.Repeat("0", 64)+`"`), hcl.DiagError, "Invalid image reference", "not by digest", 4, 13},
		{"transport", c("apptainer", `"oci:/srv/l:x"`), hcl.DiagError, "Invalid image reference", "oci-layout:DIR[:REF]", 4, 13},
		{"same file", c("apptainer", `"alpine:3.20", "oci-layout:/l:alpine:3.20"`), hcl.DiagError, "Two images land on the same file", "", 4, 28},
		{"podman name colon", "cache \"c\" {\n  runtime = \"podman\"\n  root = \"/c\"\n  image {\n    ref = \"oci-layout:/l\"\n    name = \"a:b\"\n  }\n}\n", hcl.DiagError, "Invalid file name", "", 6, 12},
		{"ref name dotdot", c("apptainer", `"oci-layout:/l:a/../b"`), hcl.DiagError, "Invalid image reference", "invalid image name", 4, 13},
	} {
		m, d := load(t, tc.src, Options{})
		var found *hcl.Diagnostic
		for _, x := range d.Diagnostics {
			if x.Summary == tc.summary && x.Severity == tc.sev {
				found = x
				break
			}
		}
		if found == nil {
			t.Errorf("%s: no %q diagnostic in %v", tc.name, tc.summary, d.Diagnostics)
			continue
		}
		if !strings.Contains(found.Detail, tc.detail) {
			t.Errorf("%s: detail %q does not contain %q", tc.name, found.Detail, tc.detail)
		}
		if found.Subject == nil || found.Subject.Start.Line != tc.line || found.Subject.Start.Column != tc.col {
			t.Errorf("%s: %q at %v, want %d:%d", tc.name, tc.summary, found.Subject, tc.line, tc.col)
		}
		if m != nil {
			t.Errorf("%s: got a model despite errors", tc.name)
		}
	}
	// No warnings for local sources, even without a tag-like name.
	_, d := load(t, "cache \"c\" {\n  runtime = \"apptainer\"\n  root = \"/c\"\n  images = [\"oci-layout:/l:latest\", \"oci-archive:/a.tar:x\"]\n}\n", Options{})
	if len(d.Diagnostics) != 0 {
		t.Errorf("diagnostics for valid local refs: %v", d.Diagnostics)
	}
}
