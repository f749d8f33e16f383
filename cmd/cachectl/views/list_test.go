package views

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/spec"
)

// list --determined: Determined's image keys (cpu, cuda — a flavor "gpu"
// is cuda — rocm; other flavors as comments), one task_container_defaults
// block from the first cache of each runtime kind, and a SIF with a name
// of its own given by its absolute path.
func TestDetermined(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "cachectl.hcl")
	os.WriteFile(f, []byte(`
flavor "gpu"      { images = ["team/gpu:1", "team/gpu-extra:1"] }
flavor "cpu"      { images = ["team/cpu:1"] }
flavor "teaching" { images = ["team/class:1"] }
cache "sif" {
  runtime = "apptainer"
  root    = "/shared/sif"
  flavors = ["gpu", "teaching"]
  image {
    ref  = "team/own:1"
    name = "own-name"
  }
}
cache "sif2" {
  runtime = "singularity"
  root    = "/shared/sif2"
  flavors = ["cpu"]
}
cache "sqsh" {
  runtime = "enroot"
  root    = "/shared/sqsh"
  flavors = ["cpu", "gpu"]
}
`), 0o644)
	m, diags := spec.Load(f, spec.Options{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	var items []planner.Item
	for _, c := range m.Caches {
		for _, a := range c.Artifacts {
			items = append(items, planner.Item{Cache: c.Name, Runtime: string(c.Runtime), Status: planner.StatusOK, Ref: a.Ref, Name: a.Name, Path: spec.JoinRoot(c.Root, a.Name), Flavors: a.Flavors})
		}
	}
	var b strings.Builder
	if err := Determined(&b, m, items); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if n := strings.Count(out, "task_container_defaults:"); n != 1 {
		t.Fatalf("%d task_container_defaults blocks:\n%s", n, out)
	}
	var got struct {
		TaskContainerDefaults struct {
			Image map[string]string `yaml:"image"`
		} `yaml:"task_container_defaults"`
	}
	if err := yaml.Unmarshal([]byte(out[strings.Index(out, "task_container_defaults:"):]), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// cuda: the first image of flavor gpu in "sif", the first cache of the
	// apptainer/singularity kind; cpu: from "sqsh", the first enroot
	// cache ("sif2" is the second of its kind: the launcher reads one
	// singularity_image_root).
	want := map[string]string{"cuda": "team/gpu:1", "cpu": "team/cpu:1"}
	if len(got.TaskContainerDefaults.Image) != len(want) {
		t.Errorf("image keys %v, want %v\n%s", got.TaskContainerDefaults.Image, want, out)
	}
	for k, v := range want {
		if got.TaskContainerDefaults.Image[k] != v {
			t.Errorf("image.%s = %q, want %q\n%s", k, got.TaskContainerDefaults.Image[k], v, out)
		}
	}
	for _, w := range []string{
		`# flavor "teaching" is not one of Determined's keys (cpu, cuda, rocm): "team/class:1" from cache "sif" (apptainer)`,
		`environment.image: /shared/sif/own-name   (a name of its own`,
		`environment.image: team/gpu:1   (/shared/sif/team/gpu:1)`,
		`cache "sif" (apptainer/singularity), cache "sqsh" (enroot)`,
		`    cpu: "team/cpu:1"   # cache "sqsh" (enroot)`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	for _, bad := range []string{"    gpu:", "    teaching:"} {
		if strings.Contains(out, bad) {
			t.Errorf("output has key %q:\n%s", bad, out)
		}
	}
}
