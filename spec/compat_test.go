package spec

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCacheImagesAddToACacheDefinedElsewhere(t *testing.T) {
	m, d := LoadSources([]Source{
		{Filename: "main.hcl", Bytes: []byte(`
variable "determined_version" { default = "0.38.1" }
cache "sif" {
  runtime = "apptainer"
  root    = "/shared/sif"
  images  = ["alpine:3.20"]
}`)},
		{Filename: "main.compat.hcl", Bytes: []byte(`
cache_images "sif" {
  images = ["alpine:3.20", "busybox:1.36"]
  image {
    ref  = "ubuntu:22.04"
    name = "ubuntu.sif"
  }
}`)},
	}, Options{})
	if d.HasErrors() {
		var b bytes.Buffer
		d.WriteText(&b, false, 0)
		t.Fatal(b.String())
	}
	var got []string
	for _, a := range m.Cache("sif").Artifacts {
		got = append(got, a.Ref+"="+a.Name)
	}
	want := "alpine:3.20=alpine:3.20 busybox:1.36=busybox:1.36 ubuntu:22.04=ubuntu.sif"
	if strings.Join(got, " ") != want {
		t.Fatalf("artifacts %q, want %q", got, want)
	}
	if v, ok := m.StringVar("determined_version"); !ok || v != "0.38.1" {
		t.Fatalf("StringVar = %q, %v", v, ok)
	}
	if _, ok := m.StringVar("nope"); ok {
		t.Fatal("StringVar of an undeclared variable")
	}
}

func TestCacheImagesForAnUndefinedCache(t *testing.T) {
	_, d := LoadSources([]Source{{Filename: "x.hcl", Bytes: []byte(`
cache "sif" {
  runtime = "apptainer"
  root    = "/shared/sif"
  images  = ["alpine:3.20"]
}
cache_images "sfi" { images = ["busybox:1.36"] }
cache_images "sif" {
  image {
    ref = "alpine:3.20"
  }
  image {
    ref = "alpine:3.20"
  }
}`)}}, Options{})
	var b bytes.Buffer
	d.WriteText(&b, false, 0)
	out := b.String()
	for _, want := range []string{`cache_images "sfi" adds images to a cache that no cache block defines. Did you mean "sif"?`, `Duplicate image block`} {
		if !strings.Contains(out, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, out)
		}
	}
}

func TestLoadReadsTheCompatFileBesideASpecFile(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "cachectl.hcl")
	os.WriteFile(main, []byte("cache \"e\" {\n  runtime = \"enroot\"\n  root = \"/shared/e\"\n  images = [\"alpine:3.20\"]\n}\n"), 0o644)
	if got := CompatFile(main); got != filepath.Join(dir, "cachectl.compat.hcl") {
		t.Fatalf("CompatFile = %s", got)
	}
	if got := CompatFile(dir); got != filepath.Join(dir, "compat.hcl") {
		t.Fatalf("CompatFile(dir) = %s", got)
	}
	m, d := Load(main, Options{})
	if d.HasErrors() || len(m.Files) != 1 {
		t.Fatalf("without a compat file: %v %v", d.Diagnostics, m.Files)
	}
	os.WriteFile(CompatFile(main), []byte("cache_images \"e\" {\n  images = [\"busybox:1.36\"]\n}\n"), 0o644)
	m, d = Load(main, Options{})
	if d.HasErrors() || len(m.Files) != 2 || len(m.Cache("e").Artifacts) != 2 {
		t.Fatalf("with a compat file: %v %v", d.Diagnostics, m.Files)
	}
	// The compat file given as the spec is read alone.
	if m, d = Load(CompatFile(main), Options{}); !d.HasErrors() {
		t.Fatalf("compat file alone loaded: %v", m.Files)
	}
}
