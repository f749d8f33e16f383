package planner

import (
	"archive/tar"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/cachectl/cachectl/providers/podman"
	"github.com/cachectl/cachectl/spec"
)

// TestImportRefusesSeveralImages: an OCI archive of two images is a valid
// archive, but a cache file holds one image: import refuses it, having
// read the very file it would place, and places nothing.
func TestImportRefusesSeveralImages(t *testing.T) {
	dir := t.TempDir()
	lp, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := lp.AppendImage(img); err != nil {
			t.Fatal(err)
		}
	}
	archive := filepath.Join(dir, "two.tar")
	writeTarOf(t, filepath.Join(dir, "layout"), archive)

	root := filepath.Join(dir, "cache")
	c := &spec.Cache{Name: "oci", Runtime: spec.RuntimePodman, Root: root, Platform: spec.DefaultPlatform, FileMode: 0o644, DirMode: 0o755}
	_, err = Import(context.Background(), c, podman.New(), archive, "example.com/app:1", "example.com+app+1", ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "holds 2 images") {
		t.Fatalf("import of a two-image archive: err = %v, want the refusal", err)
	}
	if _, err := os.Stat(filepath.Join(root, "example.com+app+1")); !os.IsNotExist(err) {
		t.Fatalf("something was placed: %v", err)
	}
}

// writeTarOf writes the files below dir into a tar archive at out, named
// relative to dir.
func writeTarOf(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(dir).(fs.FS)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}
