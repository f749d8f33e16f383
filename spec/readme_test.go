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

// TestDocsDirModes keeps the mode advice of docs/spec.md and
// docs/security.md in line with validate: a dir_mode row may name a mode
// validate warns about only while saying that validate warns.
func TestDocsDirModes(t *testing.T) {
	mode := regexp.MustCompile(`"([0-7]{4})"`)
	for _, doc := range []string{"../docs/spec.md", "../docs/security.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		rows := 0
		for _, row := range regexp.MustCompile("(?m)^\\| `dir_mode` \\|.*$").FindAllString(string(b), -1) {
			rows++
			for _, m := range mode.FindAllStringSubmatch(row, -1) {
				src := `cache "c" {
  runtime  = "apptainer"
  root     = "/shared/sif"
  group    = "hpc"
  dir_mode = "` + m[1] + `"
  images   = ["alpine:3.20"]
}
`
				_, diags := LoadSources([]Source{{Filename: "doc.hcl", Bytes: []byte(src)}}, Options{})
				if diags.HasErrors() {
					t.Errorf("%s: dir_mode %q does not load: %s", doc, m[1], diags.Error())
					continue
				}
				if _, warns := diags.Counts(); warns > 0 && !regexp.MustCompile("validate`? warn").MatchString(row) {
					t.Errorf("%s recommends dir_mode %q, which validate warns about (%s), and does not say so:\n%s", doc, m[1], diags.Error(), row)
				}
			}
		}
		if rows == 0 {
			t.Errorf("%s has no dir_mode row", doc)
		}
	}
}
