package spec

import (
	"os"
	"regexp"
	"testing"
)

// TestREADMESpecs keeps the README true: every ```hcl block in it loads
// without errors.
func TestREADMESpecs(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```hcl\n(.*?)```").FindAllSubmatch(b, -1)
	if len(blocks) == 0 {
		t.Fatal("no hcl block in README.md")
	}
	for i, blk := range blocks {
		m, diags := LoadSources([]Source{{Filename: "README.md", Bytes: blk[1]}}, Options{})
		if diags.HasErrors() || m == nil {
			t.Errorf("README hcl block %d does not load: %s", i+1, diags.Error())
		}
	}
}
