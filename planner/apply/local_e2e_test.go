package apply

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/builders"
	"github.com/cachectl/cachectl/providers/localsrc"
	"github.com/cachectl/cachectl/providers/localsrc/localsrctest"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/providers/store"
	"github.com/cachectl/cachectl/spec"
)

func realBuilder(rt spec.Runtime) (providers.Builder, error) { return builders.For(string(rt)) }

func realBuilderInfo(rt spec.Runtime) planner.BuilderInfo {
	b, _ := realBuilder(rt)
	return planner.BuilderInfo{Format: b.Format(), Version: b.Version()}
}

// TestLocalSourcesEndToEnd applies images from an OCI layout, an OCI
// archive and a docker archive (relative paths, resolved against the spec's
// directory) into Apptainer, Enroot and Podman caches with the real
// builders (mksquashfs), checks the artifacts with the builders' Verify and
// unsquashfs, then changes the layout's image: the plan replaces exactly the
// artifacts made from it, and after the apply the next plan has no changes.
// No network is involved.
func TestLocalSourcesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped with -short")
	}
	registrytest.RequireTool(t, "mksquashfs")
	unsquashfs := registrytest.RequireTool(t, "unsquashfs")
	ctx := context.Background()
	tmp := t.TempDir()
	write := func(variant int) {
		t.Helper()
		app, err := localsrctest.Image(variant, "amd64")
		if err != nil {
			t.Fatal(err)
		}
		tools, err := localsrctest.Image(100, "amd64")
		if err != nil {
			t.Fatal(err)
		}
		if err := localsrctest.WriteLayout(filepath.Join(tmp, "src", "layout"), []localsrctest.Named{{Name: "app:1", Image: app}, {Name: "tools:2", Image: tools}}); err != nil {
			t.Fatal(err)
		}
	}
	write(1)
	arch, err := localsrctest.Image(200, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if err := localsrctest.WriteLayout(filepath.Join(tmp, "src", "for-archive"), []localsrctest.Named{{Name: "docker.io/library/arch:3", Image: arch}}); err != nil {
		t.Fatal(err)
	}
	if err := localsrctest.TarDir(filepath.Join(tmp, "src", "for-archive"), filepath.Join(tmp, "src", "oci.tar")); err != nil {
		t.Fatal(err)
	}
	dock, err := localsrctest.Image(300, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if err := localsrctest.WriteDockerArchive(filepath.Join(tmp, "src", "docker.tar"), localsrctest.DockerClassic, localsrctest.Named{Name: "dock:4", Image: dock}); err != nil {
		t.Fatal(err)
	}
	hcl := `
flavor "air" {
  images = [
    "oci-layout:src/layout:app:1",
    "oci-archive:src/oci.tar:docker.io/library/arch:3",
    "docker-archive:src/docker.tar",
  ]
}
cache "sif" {
  runtime = "apptainer"
  root    = "ROOT/sif"
  flavors = ["air"]
  image {
    ref  = "docker-archive:src/docker.tar"
    name = "dock/4"
  }
}
cache "sqsh" {
  runtime = "enroot"
  root    = "ROOT/enroot"
  flavors = ["air"]
  image {
    ref  = "docker-archive:src/docker.tar"
    name = "dock.sqsh"
  }
}
cache "oci" {
  runtime = "podman"
  root    = "ROOT/oci"
  flavors = ["air"]
  image {
    ref  = "docker-archive:src/docker.tar"
    name = "dock"
  }
}
`
	m, d := spec.LoadSources([]spec.Source{{Filename: filepath.Join(tmp, "cachectl.hcl"), Bytes: []byte(strings.ReplaceAll(hcl, "ROOT", tmp))}}, spec.Options{})
	if d.HasErrors() {
		t.Fatal(d.Error())
	}
	st, err := store.Open(filepath.Join(tmp, "store"))
	if err != nil {
		t.Fatal(err)
	}
	src := source.NewMulti(spec.IsLocalRef, localsrc.NewImageSource(st, planner.LocalRefs(m)), nil) // no registry: nothing may reach one
	plan := func(refresh bool) *planner.Plan {
		t.Helper()
		p, err := planner.MakePlan(ctx, m, src, planner.Options{Refresh: refresh, Builder: realBuilderInfo})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	apply := func(p *planner.Plan) {
		t.Helper()
		if _, err := Run(ctx, p, Deps{Resolver: src, Fetcher: src, Builder: realBuilder}, Options{Spec: m, BuilderInfo: realBuilderInfo}); err != nil {
			t.Fatal(err)
		}
	}
	p := plan(true)
	if p.Summary.Add != 9 {
		t.Fatalf("first plan: %+v", p.Summary)
	}
	apply(p)
	files := map[string]spec.Runtime{
		"sif/app:1": spec.RuntimeApptainer, "sif/docker.io/library/arch:3": spec.RuntimeApptainer, "sif/dock/4": spec.RuntimeApptainer,
		"enroot/app+1.sqsh": spec.RuntimeEnroot, "enroot/docker.io+library+arch+3.sqsh": spec.RuntimeEnroot, "enroot/dock.sqsh": spec.RuntimeEnroot,
		"oci/app+1": spec.RuntimePodman, "oci/docker.io+library+arch+3": spec.RuntimePodman, "oci/dock": spec.RuntimePodman,
	}
	for f, rt := range files {
		b, _ := realBuilder(rt)
		if err := b.Verify(ctx, filepath.Join(tmp, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	variant := func(f string) string {
		t.Helper()
		out, err := exec.Command(unsquashfs, "-cat", filepath.Join(tmp, f), "etc/variant").Output()
		if err != nil {
			t.Fatalf("unsquashfs -cat %s: %v", f, err)
		}
		return string(out)
	}
	for f, want := range map[string]string{"enroot/app+1.sqsh": "variant 1 amd64\n", "enroot/docker.io+library+arch+3.sqsh": "variant 200 amd64\n", "enroot/dock.sqsh": "variant 300 amd64\n"} {
		if got := variant(f); got != want {
			t.Errorf("%s: etc/variant = %q, want %q", f, got, want)
		}
	}
	if p := plan(true); p.HasChanges() {
		t.Fatalf("plan after apply has changes: %+v", p.Summary)
	}
	if p := plan(false); p.HasChanges() {
		t.Fatalf("offline plan after apply has changes: %+v", p.Summary)
	}

	// A new image under the same name in the layout: exactly the three
	// artifacts made from it are replaced.
	write(2)
	p = plan(true)
	var replaced []string
	for _, ch := range p.Changes {
		if ch.Action == planner.ActionReplace {
			replaced = append(replaced, ch.Address)
			if len(ch.Reasons) != 1 || ch.Reasons[0].Code != planner.ReasonSourceChanged {
				t.Errorf("%s: reasons %+v", ch.Address, ch.Reasons)
			}
		} else if ch.Action != planner.ActionNoop {
			t.Errorf("%s: unexpected %s", ch.Address, ch.Action)
		}
	}
	if len(replaced) != 3 {
		t.Fatalf("replaced %q, want the three layout artifacts", replaced)
	}
	for _, a := range replaced {
		if !strings.Contains(a, "oci-layout:src/layout:app:1") {
			t.Errorf("replaced %s", a)
		}
	}
	// Offline, the change is not seen.
	if p := plan(false); p.HasChanges() {
		t.Errorf("offline plan sees the source change: %+v", p.Summary)
	}
	apply(p)
	if got := variant("enroot/app+1.sqsh"); got != "variant 2 amd64\n" {
		t.Errorf("after the replace etc/variant = %q", got)
	}
	for f, rt := range files {
		b, _ := realBuilder(rt)
		if err := b.Verify(ctx, filepath.Join(tmp, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if p := plan(true); p.HasChanges() {
		t.Fatalf("plan after the second apply has changes: %+v", p.Summary)
	}
}
