package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

func load(t *testing.T, src string, opts Options) (*Model, *Diagnostics) {
	t.Helper()
	return LoadSources([]Source{{Filename: "spec.hcl", Bytes: []byte(src)}}, opts)
}

func mustLoad(t *testing.T, src string, opts Options) *Model {
	t.Helper()
	m, d := load(t, src, opts)
	if d.HasErrors() || m == nil {
		var b bytes.Buffer
		d.WriteText(&b, false, 0)
		t.Fatalf("unexpected errors:\n%s", b.String())
	}
	return m
}

func TestModel(t *testing.T) {
	m := mustLoad(t, `
cachectl {
  store = "/var/cache/cachectl/store"
}
registry "docker.io" {
  mirror          = "mirror.internal:5000"
  insecure        = true
  max_concurrency = 3
}
registry "127.0.0.1:5000" {}
flavor "cpu"  { images = ["determinedai/pytorch-ngc:0.38.1", "alpine:3.20"] }
flavor "cuda" { images = ["determinedai/pytorch-ngc:0.38.1", "nvcr.io/nvidia/pytorch:24.01-py3"] }
cache "sif" {
  runtime   = "apptainer"
  root      = "/shared/sif/"
  flavors   = ["cpu", "cuda", "cpu"]
  images    = ["alpine:3.20", "busybox:1.36"]
  platform  = "linux/arm64/v8"
  owner     = "root"
  group     = "hpc"
  file_mode = "0640"
  dir_mode  = "2775"
  prune     = true
  compression = "xz"
  image {
    ref      = "busybox:1.36"
    name     = "tools/busybox"
    platform = "linux/amd64"
  }
  image {
    ref = "hello-world:latest"
  }
}
cache "oci" {
  runtime = "podman"
  root    = "/shared/oci"
  images  = ["127.0.0.1:5000/x/y:1"]
}
`, Options{})
	if m.Store != "/var/cache/cachectl/store" {
		t.Errorf("Store = %q", m.Store)
	}
	if len(m.Registries) != 2 || m.Registries[0].Host != "127.0.0.1:5000" || m.Registries[1].Host != "docker.io" {
		t.Fatalf("Registries not sorted by host: %+v", m.Registries)
	}
	if r := m.Registry("docker.io"); r.Mirror != "mirror.internal:5000" || !r.Insecure || r.MaxConcurrency != 3 {
		t.Errorf("docker.io registry = %+v", r)
	}
	if len(m.Flavors) != 2 || m.Flavors[1].Name != "cuda" || len(m.Flavors[1].Images) != 2 {
		t.Errorf("Flavors = %+v", m.Flavors)
	}
	c := m.Cache("sif")
	if c.Root != "/shared/sif" || c.Runtime != RuntimeApptainer || c.Owner != "root" || c.Group != "hpc" ||
		c.FileMode != 0o640 || c.DirMode != 0o2775 || !c.Prune || c.Compression != "xz" ||
		c.Platform.Architecture != "arm64" || c.Platform.Variant != "v8" || strings.Join(c.Flavors, ",") != "cpu,cuda" {
		t.Errorf("cache sif = %+v", c)
	}
	var got []string
	for _, a := range c.Artifacts {
		got = append(got, fmt.Sprintf("%s|%s|%s|%s|%s", a.Name, a.Path, a.Ref, strings.Join(a.Flavors, ","), a.Platform.Architecture))
		if a.Cache != "sif" || a.Parsed == nil {
			t.Errorf("artifact %+v", a)
		}
	}
	want := []string{
		"alpine:3.20|/shared/sif/alpine:3.20|alpine:3.20|cpu|arm64",
		"determinedai/pytorch-ngc:0.38.1|/shared/sif/determinedai/pytorch-ngc:0.38.1|determinedai/pytorch-ngc:0.38.1|cpu,cuda|arm64",
		"hello-world:latest|/shared/sif/hello-world:latest|hello-world:latest||arm64",
		"nvcr.io/nvidia/pytorch:24.01-py3|/shared/sif/nvcr.io/nvidia/pytorch:24.01-py3|nvcr.io/nvidia/pytorch:24.01-py3|cuda|arm64",
		"tools/busybox|/shared/sif/tools/busybox|busybox:1.36||amd64",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("artifacts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	oci := m.Cache("oci")
	if len(oci.Artifacts) != 1 || oci.Artifacts[0].Path != "/shared/oci/127.0.0.1+5000+x+y+1" || oci.FileMode != DefaultFileMode || oci.DirMode != DefaultDirMode || !oci.Platform.Equals(DefaultPlatform) {
		t.Errorf("cache oci = %+v %+v", oci, oci.Artifacts[0])
	}
	if a := oci.Artifacts[0]; a.Address() != `cache.oci["127.0.0.1:5000/x/y:1"]` {
		t.Errorf("Address = %s", a.Address())
	}
}

func TestRelativePaths(t *testing.T) {
	dir := t.TempDir()
	m, d := LoadSources([]Source{{Filename: filepath.Join(dir, "a.hcl"), Bytes: []byte(`
cachectl { store = "store" }
registry "docker.io" {
  ca_file   = "certs/ca.pem"
  auth_file = "/etc/auth.json"
}
cache "c" {
  runtime = "enroot"
  root = "/x"
  images = ["a:1"]
}
`)}}, Options{})
	if d.HasErrors() {
		t.Fatal(d.Error())
	}
	if m.Store != filepath.Join(dir, "store") || m.Registries[0].CAFile != filepath.Join(dir, "certs/ca.pem") || m.Registries[0].AuthFile != "/etc/auth.json" {
		t.Errorf("paths: store %q ca %q auth %q", m.Store, m.Registries[0].CAFile, m.Registries[0].AuthFile)
	}
}

func TestFunctions(t *testing.T) {
	for _, tc := range []struct {
		expr, want, err string
	}{
		{expr: `determined_default_image("0.38.1", "cpu")`, want: "determinedai/pytorch-ngc:0.38.1"},
		{expr: `determined_default_image("0.38.1", "cuda")`, want: "determinedai/pytorch-ngc:0.38.1"},
		{expr: `determined_default_image("0.38.1", "rocm")`, want: "determinedai/environments:rocm-5.6-pytorch-1.3-tf-2.10-rocm-mpich-0736b6d"},
		{expr: `determined_default_image("0.35.1", "rocm")`, want: "determinedai/environments:rocm-5.0-pytorch-1.10-tf-2.7-rocm-622d512"},
		{expr: `determined_default_image("0.34.0", "cpu")`, want: "determinedai/pytorch-ngc:0.34.0"},
		{expr: `determined_default_image("0.37.0", "cuda")`, want: "determinedai/pytorch-ngc:0.37.0"},
		{expr: `determined_default_image("v0.36.0", "cpu")`, want: "determinedai/pytorch-ngc:0.36.0"},
		{expr: `determined_default_image("0.1.0", "cpu")`, err: "known versions: 0.34.0, 0.35.0, 0.35.1, 0.36.0, 0.37.0, 0.38.1"},
		{expr: `determined_default_image("0.37.0", "rocm")`, err: "versions with one: 0.35.1, 0.38.1"},
		{expr: `determined_default_image("0.38.1", "tpu")`, err: "known flavors: cpu, cuda, rocm"},
		{expr: `upper("abc")`, want: "ABC"},
		{expr: `join("/", ["a", "b"])`, want: "a/b"},
		{expr: `format("%s:%s", "alpine", "3.20")`, want: "alpine:3.20"},
		{expr: `replace("a/b", "/", "+")`, want: "a+b"},
		{expr: `element(concat(["a"], ["b"]), 1)`, want: "b"},
		{expr: `lookup({a = "x"}, "b", "y")`, want: "y"},
		{expr: `jsondecode("{\"a\": \"b\"}").a`, want: "b"},
		{expr: `tostring(length(distinct(["a", "a", "b"])))`, want: "2"},
		{expr: `try(local.nope, "fallback")`, err: "undeclared local value"},
		{expr: `try(jsondecode("{").a, "fallback")`, want: "fallback"},
		{expr: `startswith("nvcr.io/x", "nvcr.io/") ? "yes" : "no"`, want: "yes"},
		{expr: `strcontains("abc", "z") ? "yes" : "no"`, want: "no"},
		{expr: `add(1, 2)`, err: `no function named "add"`},
		{expr: `equal(1, 2)`, err: `no function named "equal"`},
	} {
		m, d := load(t, `
locals { x = `+tc.expr+` }
cache "c" {
  runtime = "apptainer"
  root    = "/c"
  image {
    ref  = "a:1"
    name = local.x
  }
}`, Options{})
		if tc.err != "" {
			if !d.HasErrors() || !strings.Contains(d.Error(), tc.err) {
				t.Errorf("%s: diagnostics %v; want an error containing %q", tc.expr, d.Diagnostics, tc.err)
			}
			continue
		}
		if d.HasErrors() {
			t.Errorf("%s: %v", tc.expr, d.Error())
			continue
		}
		if got := m.Caches[0].Artifacts[0].Name; got != tc.want {
			t.Errorf("%s = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

const varSpec = `
variable "tag" {
  default = "default"
}
variable "n" {
  type    = number
  default = 1
}
variable "tags" {
  type    = list(string)
  default = ["x"]
}
cache "c" {
  runtime = "podman"
  root    = "/c"
  images  = [for t in var.tags : "a:${var.tag}-${var.n}-${t}"]
}
`

func TestVariablePrecedence(t *testing.T) {
	dir := t.TempDir()
	f1 := filepath.Join(dir, "one.hcl")
	f2 := filepath.Join(dir, "two.hcl")
	os.WriteFile(f1, []byte("tag = \"file1\"\nn = 10\n"), 0o644)
	os.WriteFile(f2, []byte("tag = \"file2\"\ntags = [\"p\", \"q\"]\n"), 0o644)
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"defaults", Options{}, "a:default-1-x"},
		{"environment", Options{Environ: []string{"CACHECTL_VAR_tag=env", "CACHECTL_VAR_n=2", "CACHECTL_VAR_tags=[\"e\"]", "CACHECTL_VAR_other=1", "HOME=/root"}}, "a:env-2-e"},
		{"var file beats environment", Options{Environ: []string{"CACHECTL_VAR_tag=env"}, VarFiles: []string{f1}}, "a:file1-10-x"},
		{"later var file wins", Options{VarFiles: []string{f1, f2}}, "a:file2-10-p,a:file2-10-q"},
		{"-var beats var files", Options{VarFiles: []string{f1, f2}, Vars: []string{"tag=flag"}}, "a:flag-10-p,a:flag-10-q"},
		{"later -var wins", Options{Vars: []string{"tag=one", "tag=two", "n=3"}}, "a:two-3-x"},
		{"-var string is raw", Options{Vars: []string{`tag=x"y`}}, ""},
		{"-var value with = and spaces", Options{Vars: []string{"tags=[\"a=b\", \"c\"]"}}, ""},
	} {
		m, d := load(t, varSpec, tc.opts)
		if tc.want == "" {
			// Values that reach the reference unparsed: the reference is invalid,
			// and the error quotes it.
			if tc.name == "-var string is raw" && !strings.Contains(d.Error(), `a:x\"y-1-x`) {
				t.Errorf("%s: %v", tc.name, d.Error())
			}
			if tc.name == "-var value with = and spaces" && !strings.Contains(d.Error(), `a:default-1-a=b`) {
				t.Errorf("%s: %v", tc.name, d.Error())
			}
			continue
		}
		if d.HasErrors() {
			t.Errorf("%s: %v", tc.name, d.Error())
			continue
		}
		var refs []string
		for _, a := range m.Caches[0].Artifacts {
			refs = append(refs, a.Ref)
		}
		if got := strings.Join(refs, ","); got != tc.want {
			t.Errorf("%s: refs %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestValidationRules checks each rule: the summary and the position of the
// diagnostic it reports.
func TestValidationRules(t *testing.T) {
	const cache = "cache \"c\" {\n  runtime = \"apptainer\"\n  root = \"/c\"\n  images = [\"a:1\"]\n}\n"
	for _, tc := range []struct {
		name, src string
		opts      Options
		sev       hcl.DiagnosticSeverity
		summary   string
		line, col int // 0: no position
	}{
		{"syntax", "cache \"c\" {\n  root = \n}\n", Options{}, hcl.DiagError, "Invalid expression", 2, 10},
		{"unknown block", "foo {}\n" + cache, Options{}, hcl.DiagError, "Unsupported block type", 1, 1},
		{"unknown attribute", "flavor \"f\" {\n  images = []\n  x = 1\n}\n" + cache, Options{}, hcl.DiagError, "Unsupported argument", 3, 3},
		{"top-level attribute", "x = 1\n" + cache, Options{}, hcl.DiagError, "Unsupported argument", 1, 1},
		{"wrong type", "cache \"c\" {\n  runtime = \"apptainer\"\n  root = \"/c\"\n  images = [\"a:1\"]\n  prune = [1]\n}\n", Options{}, hcl.DiagError, "Incorrect attribute value type", 5, 11},
		{"undefined variable", "locals {\n  x = var.y\n}\n" + cache, Options{}, hcl.DiagError, "Reference to undeclared variable", 2, 7},
		{"undefined local", "locals {\n  x = local.y\n}\n" + cache, Options{}, hcl.DiagError, "Reference to undeclared local value", 2, 7},
		{"undefined function", "locals {\n  x = nope()\n}\n" + cache, Options{}, hcl.DiagError, "Call to unknown function", 2, 7},
		{"self cycle", "locals {\n  x = local.x\n}\n" + cache, Options{}, hcl.DiagError, "Cycle in local values", 2, 3},
		{"undeclared -var", cache, Options{Vars: []string{"x=1"}}, hcl.DiagError, "Value for undeclared variable", 0, 0},
		{"malformed -var", cache, Options{Vars: []string{"x"}}, hcl.DiagError, "Invalid -var option", 0, 0},
		{"missing var file", cache, Options{VarFiles: []string{"/nonexistent/vars.hcl"}}, hcl.DiagError, "Cannot read a variables file", 0, 0},
		{"required variable", "variable \"v\" {}\n" + cache, Options{}, hcl.DiagError, "No value for required variable", 1, 1},
		{"variable type", "variable \"v\" {\n  type = strin\n}\n" + cache, Options{}, hcl.DiagError, "Invalid type specification", 2, 10},
		{"bad -var for typed", "variable \"v\" {\n  type = number\n  default = 1\n}\n" + cache, Options{Vars: []string{"v=abc"}}, hcl.DiagError, "Variables not allowed", 1, 1},
		{"uppercase ref", "cache \"c\" {\n  runtime = \"apptainer\"\n  root = \"/c\"\n  images = [\"a:1\", \"B:1\"]\n}\n", Options{}, hcl.DiagError, "Invalid image reference", 4, 20},
		{"unknown runtime", "cache \"c\" {\n  runtime = \"docker\"\n  root = \"/c\"\n  images = [\"a:1\"]\n}\n", Options{}, hcl.DiagError, "Unknown runtime", 2, 13},
		{"undefined flavor", "cache \"c\" {\n  runtime = \"enroot\"\n  root = \"/c\"\n  flavors = [\"gpu\"]\n}\n", Options{}, hcl.DiagError, "Undefined flavor", 4, 14},
		{"relative root", "cache \"c\" {\n  runtime = \"enroot\"\n  root = \"c\"\n  images = [\"a:1\"]\n}\n", Options{}, hcl.DiagError, "Relative cache root", 3, 10},
		{"slash root", "cache \"c\" {\n  runtime = \"enroot\"\n  root = \"//\"\n  images = [\"a:1\"]\n}\n", Options{}, hcl.DiagError, "Cache root is the file system root", 3, 10},
		{"nested root", cache + "cache \"d\" {\n  runtime = \"enroot\"\n  root = \"/c/d\"\n  images = [\"a:1\"]\n}\n", Options{}, hcl.DiagError, "Cache root inside another cache's root", 8, 10},
		{"nested root, outer second", "cache \"d\" {\n  runtime = \"enroot\"\n  root = \"/c/d\"\n  images = [\"a:1\"]\n}\n" + cache, Options{}, hcl.DiagError, "Cache root inside another cache's root", 3, 10},
		{"shared root", cache + "cache \"d\" {\n  runtime = \"enroot\"\n  root = \"/c/./\"\n  images = [\"a:1\"]\n}\n", Options{}, hcl.DiagError, "Two caches share a root", 8, 10},
		{"mode not octal", "cache \"c\" {\n  runtime = \"enroot\"\n  root = \"/c\"\n  images = [\"a:1\"]\n  file_mode = \"rw-r--r--\"\n}\n", Options{}, hcl.DiagError, "Invalid mode", 5, 15},
		{"mode too big", "cache \"c\" {\n  runtime = \"enroot\"\n  root = \"/c\"\n  images = [\"a:1\"]\n  dir_mode = \"10000\"\n}\n", Options{}, hcl.DiagError, "Invalid mode", 5, 14},
		{"world-writable", "cache \"c\" {\n  runtime = \"enroot\"\n  root = \"/c\"\n  images = [\"a:1\"]\n  dir_mode = \"0757\"\n}\n", Options{}, hcl.DiagError, "World-writable mode", 5, 14},
		{"empty owner", "cache \"c\" {\n  runtime = \"enroot\"\n  root = \"/c\"\n  images = [\"a:1\"]\n  owner = \"\"\n}\n", Options{}, hcl.DiagError, "Empty user name", 5, 11},
		{"empty group", "cache \"c\" {\n  runtime = \"enroot\"\n  root = \"/c\"\n  images = [\"a:1\"]\n  group = \"\"\n}\n", Options{}, hcl.DiagError, "Empty group name", 5, 11},
		{"duplicate cache", cache + cache, Options{}, hcl.DiagError, "Duplicate cache", 6, 7},
		{"duplicate cachectl", "cachectl {}\ncachectl {}\n" + cache, Options{}, hcl.DiagError, "Duplicate cachectl block", 2, 1},
		{"custom name ..", "cache \"c\" {\n  runtime = \"enroot\"\n  root = \"/c\"\n  image {\n    ref = \"a:1\"\n    name = \"x/../../y\"\n  }\n}\n", Options{}, hcl.DiagError, "Invalid file name", 6, 12},
		{"same file", "cache \"c\" {\n  runtime = \"enroot\"\n  root = \"/c\"\n  images = [\"a:1\", \"a/1\"]\n}\n", Options{}, hcl.DiagError, "Two images land on the same file", 4, 20},
		{"file is a directory", "cache \"c\" {\n  runtime = \"apptainer\"\n  root = \"/c\"\n  images = [\"a/b:1\"]\n  image {\n    ref = \"x:1\"\n    name = \"a\"\n  }\n}\n", Options{}, hcl.DiagError, "An image file would have to be a directory", 4, 13},
		{"duplicate image block", "cache \"c\" {\n  runtime = \"enroot\"\n  root = \"/c\"\n  image {\n    ref = \"a:1\"\n  }\n  image {\n    ref = \"a:1\"\n  }\n}\n", Options{}, hcl.DiagError, "Duplicate image block", 8, 11},
		{"platform", "cache \"c\" {\n  runtime = \"enroot\"\n  root = \"/c\"\n  images = [\"a:1\"]\n  platform = \"windows/amd64\"\n}\n", Options{}, hcl.DiagError, "Invalid platform", 5, 14},
		{"compression podman", "cache \"c\" {\n  runtime = \"podman\"\n  root = \"/c\"\n  images = [\"a:1\"]\n  compression = \"gzip\"\n}\n", Options{}, hcl.DiagError, "Compression does not apply to podman", 5, 17},
		{"unknown compression", "cache \"c\" {\n  runtime = \"enroot\"\n  root = \"/c\"\n  images = [\"a:1\"]\n  compression = \"zip\"\n}\n", Options{}, hcl.DiagError, "Unknown compression", 5, 17},
		{"max_concurrency", "registry \"r.io\" {\n  max_concurrency = 1.5\n}\n" + cache, Options{}, hcl.DiagError, "Incorrect attribute value type", 2, 21},
		{"no images", "cache \"c\" {\n  runtime = \"enroot\"\n  root = \"/c\"\n  images = []\n}\n", Options{}, hcl.DiagWarning, "Cache has no images", 1, 1},
		{"no tag", "cache \"c\" {\n  runtime = \"enroot\"\n  root = \"/c\"\n  images = [\"a\"]\n}\n", Options{}, hcl.DiagWarning, "Image reference without tag or digest", 4, 13},
		{"latest", "cache \"c\" {\n  runtime = \"enroot\"\n  root = \"/c\"\n  images = [\"a:latest\"]\n}\n", Options{}, hcl.DiagWarning, "Image reference with the \"latest\" tag", 4, 13},
	} {
		m, d := load(t, tc.src, tc.opts)
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
		if tc.line == 0 && found.Subject != nil || tc.line != 0 && (found.Subject == nil || found.Subject.Start.Line != tc.line || found.Subject.Start.Column != tc.col) {
			t.Errorf("%s: %q at %v, want %d:%d", tc.name, tc.summary, found.Subject, tc.line, tc.col)
		}
		if (m == nil) != (tc.sev == hcl.DiagError) {
			t.Errorf("%s: model %v with severity %v", tc.name, m, tc.sev)
		}
	}
}

func TestDiagnosticsJSON(t *testing.T) {
	_, d := load(t, "cache \"c\" {\n  runtime = \"x\"\n  root = \"/c\"\n  images = [\"a\"]\n}\n", Options{Vars: []string{"nope=1"}})
	var b bytes.Buffer
	if err := d.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Valid        bool `json:"valid"`
		ErrorCount   int  `json:"error_count"`
		WarningCount int  `json:"warning_count"`
		Diagnostics  []struct {
			Severity, Summary string
			Range             *struct {
				Filename string
				Start    struct{ Line, Column, Byte int }
			}
		}
	}
	if err := json.Unmarshal(b.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Valid || rep.ErrorCount != 2 || rep.WarningCount != 1 || len(rep.Diagnostics) != 3 {
		t.Fatalf("report %+v", rep)
	}
	if rep.Diagnostics[0].Range != nil || rep.Diagnostics[1].Range.Filename != "spec.hcl" || rep.Diagnostics[1].Range.Start.Line != 2 || rep.Diagnostics[1].Range.Start.Column != 13 {
		t.Errorf("diagnostics %+v", rep.Diagnostics)
	}
}

func TestFormat(t *testing.T) {
	in := "cache \"c\" {\nruntime=\"enroot\"\n    root   =   \"/c\"\n}\n"
	want := "cache \"c\" {\n  runtime = \"enroot\"\n  root    = \"/c\"\n}\n"
	got, d := Format([]byte(in), "x.hcl")
	if d.HasErrors() || string(got) != want {
		t.Fatalf("Format = %q, %v", got, d)
	}
	again, _ := Format(got, "x.hcl")
	if string(again) != want {
		t.Errorf("Format is not idempotent: %q", again)
	}
	if out, d := Format([]byte("cache {"), "x.hcl"); out != nil || !d.HasErrors() {
		t.Errorf("Format of a syntax error = %q, %v", out, d)
	}
}

// TestExamples loads and validates every spec in examples/.
func TestExamples(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.hcl")
	if len(files) < 2 {
		t.Fatalf("found %d examples", len(files))
	}
	for _, f := range files {
		m, d := Load(f, Options{})
		if d.HasErrors() {
			var b bytes.Buffer
			d.WriteText(&b, false, 0)
			t.Errorf("%s:\n%s", f, b.String())
			continue
		}
		if len(m.Caches) == 0 {
			t.Errorf("%s: no caches", f)
		}
		for _, c := range m.Caches {
			for _, a := range c.Artifacts {
				if !Within(c.Root, a.Path) {
					t.Errorf("%s: %s outside %s", f, a.Path, c.Root)
				}
			}
		}
		// Examples are canonically formatted.
		src, _ := os.ReadFile(f)
		if out, _ := Format(src, f); !bytes.Equal(out, src) {
			t.Errorf("%s is not formatted (cachectl fmt)", f)
		}
	}
	m, _ := Load("../examples/determined.hcl", Options{Vars: []string{"determined_version=0.35.1"}})
	if m == nil || m.Cache("sif").Artifacts == nil {
		t.Fatal("determined.hcl with 0.35.1 does not load")
	}
	found := false
	for _, a := range m.Cache("sif").Artifacts {
		found = found || a.Ref == "determinedai/environments:rocm-5.0-pytorch-1.10-tf-2.7-rocm-622d512"
	}
	if !found {
		t.Error("determined.hcl with 0.35.1 lacks the 0.35.1 rocm image")
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "b.hcl"), []byte("cache \"c\" {\n  runtime = \"enroot\"\n  root = \"/c\"\n  flavors = [\"f\"]\n}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "a.hcl"), []byte("flavor \"f\" {\n  images = [\"a:1\"]\n}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "c.txt"), []byte("garbage"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub.hcl"), 0o755)
	m, d := Load(dir, Options{})
	if d.HasErrors() {
		t.Fatal(d.Error())
	}
	if len(m.Files) != 2 || !strings.HasSuffix(m.Files[0], "a.hcl") || len(m.Caches[0].Artifacts) != 1 {
		t.Errorf("model %+v", m)
	}
	if _, d := Load(t.TempDir(), Options{}); !d.HasErrors() {
		t.Error("empty directory: no error")
	}
}

func TestRegistryTimeouts(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "cachectl.hcl")
	os.WriteFile(f, []byte(`registry "r.io" {
  timeout    = "90s"
  retry_time = "10m"
}
registry "bad.io" {
  timeout    = "5"
  retry_time = "48h"
}
cache "c" {
  runtime = "enroot"
  root    = "/c"
  images  = ["r.io/a:1"]
}
`), 0o644)
	m, diags := Load(f, Options{})
	if n := len(diags.Errs()); n != 2 {
		t.Fatalf("want 2 errors (timeout without a unit, retry_time too long), got %v", diags)
	}
	if !strings.Contains(diags.Error(), `timeout must be a duration between 1s and 1h0m0s such as "90s" or "5m", not "5"`) {
		t.Errorf("unclear error: %v", diags)
	}
	_ = m
	os.WriteFile(f, []byte(`registry "r.io" {
  timeout    = "90s"
  retry_time = "10m"
}
cache "c" {
  runtime = "enroot"
  root    = "/c"
  images  = ["r.io/a:1"]
}
`), 0o644)
	m, diags = Load(f, Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if r := m.Registry("r.io"); r.Timeout != 90*time.Second || r.RetryTime != 10*time.Minute {
		t.Fatalf("registry %+v", r)
	}
}
