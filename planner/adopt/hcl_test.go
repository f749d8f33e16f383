package adopt

import (
	"strings"
	"testing"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/spec"
)

func TestAddToCacheKeepsTheFile(t *testing.T) {
	src := []byte(`# the cluster's caches
cache "sif" {
  runtime = "apptainer"
  root    = "/shared/sif" # shared with the login nodes
  images  = ["alpine:3.20"]
}
`)
	m, d := spec.LoadSources([]spec.Source{{Filename: "c.hcl", Bytes: src}}, spec.Options{})
	if d.HasErrors() {
		t.Fatal(d.Diagnostics)
	}
	r := &Result{Runtime: spec.RuntimeApptainer, Files: []*File{
		{Name: "busybox:1.36", Status: StatusAdopt, Ref: "busybox:1.36", Info: refFrom("path")},
		{Name: "tool.sif", Status: StatusAdopt, Ref: "team/tool:1", CustomName: true, Info: refFrom("definition")},
		{Name: "alpine:3.20", Status: StatusAdopt, Ref: "alpine:3.20", Info: refFrom("spec")},
		{Name: "README", Status: StatusUnrecognised},
	}}
	out, err := AddToCache(src, "c.hcl", m.Cache("sif"), r)
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, want := range []string{"# the cluster's caches", "# shared with the login nodes", `images  = ["alpine:3.20"]`,
		"image {\n    ref = \"busybox:1.36\"\n  }", "image {\n    ref  = \"team/tool:1\"\n    name = \"tool.sif\"\n  }"} {
		if !strings.Contains(got, want) {
			t.Errorf("result lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "alpine:3.20") != 1 {
		t.Errorf("the spec's own image was added again:\n%s", got)
	}
	if f, _ := spec.Format(out, "c.hcl"); string(f) != got {
		t.Errorf("not fmt-clean:\n%s", got)
	}
	m2, d := spec.LoadSources([]spec.Source{{Filename: "c.hcl", Bytes: out}}, spec.Options{})
	if d.HasErrors() || len(m2.Cache("sif").Artifacts) != 3 {
		t.Fatalf("the result does not load as 3 images: %v", d.Diagnostics)
	}
}

func TestNewCacheBlock(t *testing.T) {
	r := &Result{Runtime: spec.RuntimeEnroot, Root: "/shared/enroot", DirMode: 0o2755, Files: []*File{
		{Name: "b+1.sqsh", Status: StatusAdopt, Ref: "b:1", UID: 0, GID: 0, Mode: 0o644, Info: refFrom("name")},
		{Name: "a+1.sqsh", Status: StatusAdopt, Ref: "a:1", UID: 0, GID: 0, Mode: 0o644, Platform: "linux/arm64", Info: refFrom("name")},
		{Name: "c+1.sqsh", Status: StatusAdopt, Ref: "c:1", UID: 0, GID: 0, Mode: 0o664, Info: refFrom("name")},
	}}
	out := string(NewCacheBlock(r.Settings("enroot"), r))
	for _, want := range []string{`cache "enroot" {`, `runtime   = "enroot"`, `owner     = "root"`, `file_mode = "0644"`, `dir_mode  = "2755"`,
		"images = [\n    \"b:1\",\n    \"c:1\",\n  ]", "platform = \"linux/arm64\""} {
		if !strings.Contains(out, want) {
			t.Errorf("block lacks %q:\n%s", want, out)
		}
	}
}

func refFrom(s string) (a cacheroot.Adoption) { a.RefFrom = s; return a }
