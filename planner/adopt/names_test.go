package adopt

import (
	"reflect"
	"testing"

	"github.com/cachectl/cachectl/spec"
)

func TestReadings(t *testing.T) {
	for _, tc := range []struct {
		base string
		want []string
	}{
		{"alpine", []string{"alpine"}},
		{"alpine+3.20", []string{"alpine:3.20", "alpine/3.20"}},
		{"determinedai+environments+cpu-1", []string{"determinedai/environments:cpu-1", "determinedai/environments/cpu-1"}},
		{"localhost+5000+app+1", []string{"localhost/5000/app:1", "localhost/5000/app/1", "localhost:5000/app:1", "localhost:5000/app/1"}},
		{"127.0.0.1+5077+library+busy+1", []string{"127.0.0.1/5077/library/busy:1", "127.0.0.1/5077/library/busy/1", "127.0.0.1:5077/library/busy:1", "127.0.0.1:5077/library/busy/1"}},
		{"nvcr.io+nvidia+pytorch+24.01-py3", []string{"nvcr.io/nvidia/pytorch:24.01-py3", "nvcr.io/nvidia/pytorch/24.01-py3"}},
		{"Upper+Case", nil},
		{"a@sha256+0123456789012345678901234567890123456789012345678901234567890123", []string{"a@sha256:0123456789012345678901234567890123456789012345678901234567890123"}},
	} {
		if got := Readings(tc.base); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Readings(%q) = %q, want %q", tc.base, got, tc.want)
		}
	}
}

func TestSameImage(t *testing.T) {
	if !SameImage("alpine:3.20", "docker.io/library/alpine:3.20") || !SameImage("alpine", "alpine:latest") {
		t.Error("normalized names differ")
	}
	if SameImage("alpine:3.20", "alpine:3.21") || SameImage("x:1", "Not A Ref") {
		t.Error("different images are the same")
	}
}

func TestLikely(t *testing.T) {
	for base, want := range map[string]string{
		"determinedai+environments+cpu-1": "determinedai/environments:cpu-1",
		"127.0.0.1+5077+library+busy+1":   "127.0.0.1:5077/library/busy:1",
		"localhost+5000+app":              "localhost:5000/app",
		"alpine":                          "alpine",
		"Bad+Name":                        "",
	} {
		if got := Likely(base); got != want {
			t.Errorf("Likely(%q) = %q, want %q", base, got, want)
		}
	}
}

// TestInferSIFThroughMirror: a SIF at the launcher's path whose labels name
// the mirror it was pulled through is adopted as the path's reference (what
// jobs ask for), not as the mirror's.
func TestInferSIFThroughMirror(t *testing.T) {
	f := &File{Name: "demo/base:1.0", fileRef: "127.0.0.1:5000/demo/base:1.0"}
	inferSIF(f, spec.RuntimeApptainer)
	if f.Status != StatusAdopt || f.Ref != "demo/base:1.0" || f.CustomName {
		t.Fatalf("adopted as %q (status %v, custom name %v): %s", f.Ref, f.Status, f.CustomName, f.Reason)
	}
	if !SameImageAnyHost("demo/app:2.1", "mirror:5000/demo/app:2.1") || SameImageAnyHost("demo/app:2.1", "demo/base:1.0") {
		t.Fatal("SameImageAnyHost")
	}
}
