package planner

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cachectl/cachectl/providers/localsrc"
	"github.com/cachectl/cachectl/providers/localsrc/localsrctest"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/providers/store"
	"github.com/cachectl/cachectl/spec"
)

func TestLocalRefsRelativePaths(t *testing.T) {
	tmp := t.TempDir()
	if err := localsrctest.WriteLayout(filepath.Join(tmp, "layouts", "app"), []localsrctest.Named{{Name: "v1", Image: localsrctest.MustImage(t, 1, "amd64")}}); err != nil {
		t.Fatal(err)
	}
	m, d := spec.LoadSources([]spec.Source{{Filename: filepath.Join(tmp, "cachectl.hcl"), Bytes: []byte(`
cache "c" {
  runtime = "enroot"
  root    = "/c"
  images  = ["oci-layout:layouts/app:v1"]
}
`)}}, spec.Options{})
	if d.HasErrors() {
		t.Fatal(d.Error())
	}
	refs := LocalRefs(m)
	want := localsrc.Ref{Kind: localsrc.OCILayout, Path: filepath.Join(tmp, "layouts", "app"), Image: "v1"}
	if len(refs) != 1 || refs["oci-layout:layouts/app:v1"] != want {
		t.Fatalf("LocalRefs = %+v, want the path resolved against the spec's directory: %+v", refs, want)
	}
	st, _ := store.Open(filepath.Join(tmp, "store"))
	req := source.ResolveRequest{Ref: "oci-layout:layouts/app:v1", Platform: spec.DefaultPlatform}
	if _, err := localsrc.NewImageSource(st, refs).ResolveAll(context.Background(), []source.ResolveRequest{req}); err != nil {
		t.Fatalf("relative path from the spec: %v", err)
	}
}

func TestImageName(t *testing.T) {
	for _, tc := range []struct{ ref, file, want string }{
		{"alpine:3.20", "alpine+3.20", "docker.io/library/alpine:3.20"},
		{"oci-layout:/l:app:1", "app+1", "docker.io/library/app:1"},
		{"oci-archive:a.tar:docker.io/library/alpine:3.20", "x", "docker.io/library/alpine:3.20"},
		{"docker-archive:/d.tar:localhost:5000/x/y:2", "y", "localhost:5000/x/y:2"},
		{"docker-archive:d.tar:tools/x:2", "tools+x+2.sqsh", "docker.io/tools/x:2"},
		{"oci-layout:/srv/l:docker.io/library/alpine:3.20", "a", "docker.io/library/alpine:3.20"},
		{"oci-layout:/l:v1", "v1", "v1"},
		{"oci-layout:/l", "Base", "localhost/base"},
		{"docker-archive:/d.tar", "tools/dock.sqsh", "localhost/dock.sqsh"},
	} {
		if got := ImageName(tc.ref, tc.file); got != tc.want {
			t.Errorf("ImageName(%q, %q) = %q, want %q", tc.ref, tc.file, got, tc.want)
		}
	}
}
