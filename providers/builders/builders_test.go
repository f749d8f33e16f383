package builders

import (
	"testing"

	"github.com/cachectl/cachectl/providers/apptainer"
)

// TestSIFRuntimes: each SIF runtime gets the builder of its own runtime
// (issue 10: a singularity cache held Apptainer's files), with distinct
// versions so that switching a cache's runtime rebuilds its files.
func TestSIFRuntimes(t *testing.T) {
	versions := map[string]bool{}
	for name, want := range map[string]*apptainer.Runtime{"apptainer": apptainer.Apptainer, "singularity": apptainer.SingularityCE} {
		b, err := For(name)
		if err != nil {
			t.Fatal(err)
		}
		sb, ok := b.(*apptainer.Builder)
		if !ok || sb.Runtime() != want || b.Format() != "sif" {
			t.Errorf("%s: %T %v", name, b, b.Format())
			continue
		}
		if b.Version() == "1" || versions[b.Version()] {
			t.Errorf("%s: builder version %q (old, or shared with the other runtime)", name, b.Version())
		}
		versions[b.Version()] = true
	}
	if _, err := For("docker"); err == nil {
		t.Error("unknown runtime accepted")
	}
}
