package spec

import (
	"strings"
	"testing"
)

// AddToImageList keeps the rest of the file (comments, other blocks, an
// odd spacing it then formats), sorts the list, and changes nothing when
// the image is there.
func TestAddToImageList(t *testing.T) {
	src := []byte("# the site's spec\ncache \"sif\" {\n  runtime = \"apptainer\" # why\n  root = \"/c\"\n  images = [\"b:1\"]\n}\n")
	out, changed, err := AddToImageList(src, "s.hcl", "cache", "sif", nil, "a:1")
	if err != nil || !changed {
		t.Fatalf("changed %v, %v", changed, err)
	}
	for _, want := range []string{"# the site's spec", "# why", "images = [\n    \"a:1\",\n    \"b:1\",\n  ]"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("result lacks %q:\n%s", want, out)
		}
	}
	if f, _ := Format(out, "s.hcl"); string(f) != string(out) {
		t.Errorf("result is not fmt-clean:\n%s", out)
	}
	again, changed, err := AddToImageList(out, "s.hcl", "cache", "sif", nil, "b:1")
	if err != nil || changed || string(again) != string(out) {
		t.Errorf("adding an image already there: changed %v, %v", changed, err)
	}
	out, _, err = AddToImageList(out, "s.hcl", "cache", "new", []Attr{{"runtime", "enroot"}, {"root", "/e"}}, "c:1")
	if err != nil || !strings.Contains(string(out), "cache \"new\" {\n  runtime = \"enroot\"\n  root    = \"/e\"\n  images = [\n    \"c:1\",\n  ]\n}") {
		t.Errorf("new block: %v\n%s", err, out)
	}
	if _, _, err := AddToImageList([]byte("cache \"x\" {\n  images = var.list\n}\n"), "s.hcl", "cache", "x", nil, "y:1"); err == nil || !strings.Contains(err.Error(), "not a plain list") {
		t.Errorf("an expression list: %v", err)
	}
}
