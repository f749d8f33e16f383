package enrootsync

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultDataPath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"ENROOT_DATA_PATH": "/d", "HOME": "/h"}, "/d"},
		{map[string]string{"XDG_DATA_HOME": "/x", "HOME": "/h"}, "/x/enroot"},
		{map[string]string{"HOME": "/h"}, "/h/.local/share/enroot"},
	} {
		if got := DefaultDataPath(env(tc.env)); got != tc.want {
			t.Errorf("DefaultDataPath(%v) = %s, want %s", tc.env, got, tc.want)
		}
	}
	if ContainerName("determinedai+pytorch-ngc+0.38.1.sqsh") != "determinedai+pytorch-ngc+0.38.1" {
		t.Error("ContainerName")
	}
}

// A marker that is not one (bad JSON, or a name that does not match) is
// ignored: it cannot make the sync remove or skip anything.
func TestReadMarkersIgnoresStrangers(t *testing.T) {
	data := t.TempDir()
	os.MkdirAll(filepath.Join(data, MarkerDir), 0o700)
	writeMarker(data, marker{Container: "a", Root: "/r", Image: "a.sqsh", SHA256: "sha256:1"})
	os.WriteFile(filepath.Join(data, MarkerDir, "b.json"), []byte("{not json"), 0o600)
	os.WriteFile(filepath.Join(data, MarkerDir, "c.json"), []byte(`{"container":"other"}`), 0o600)
	m, err := readMarkers(data)
	if err != nil || len(m) != 1 || m["a"].Image != "a.sqsh" {
		t.Fatalf("readMarkers = %v, %v", m, err)
	}
	ents, _ := os.ReadDir(filepath.Join(data, MarkerDir))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp") {
			t.Fatalf("a temporary marker file was left: %s", e.Name())
		}
	}
}
