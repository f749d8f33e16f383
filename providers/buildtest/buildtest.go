// Package buildtest holds what the builders' tests share: the rule for
// external tools, golden files, and small images built from tar members.
// It is imported by tests only.
package buildtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// RequireTools skips the test unless every named program is on PATH; when
// CACHECTL_REQUIRE_TOOLS is set (as in CI) it fails instead.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		registrytest.RequireTool(t, n)
	}
}

// Golden compares got with testdata/name; with update it rewrites the file.
func Golden(t testing.TB, name, got string, update bool) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from golden file:\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

// Member is one tar entry of a test layer.
type Member struct {
	Name     string
	Type     byte
	Mode     int64
	UID, GID int
	Body     string
	Link     string
}

// Reg is a regular file member.
func Reg(name string, mode int64, body string) Member {
	return Member{Name: name, Type: tar.TypeReg, Mode: mode, Body: body}
}

// Dir is a directory member.
func Dir(name string, mode int64) Member { return Member{Name: name, Type: tar.TypeDir, Mode: mode} }

// Symlink is a symbolic link member.
func Symlink(name, target string) Member {
	return Member{Name: name, Type: tar.TypeSymlink, Mode: 0o777, Link: target}
}

// LayerTime is the mtime of every member.
var LayerTime = time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)

// Layer returns a gzip layer holding ms, in order.
func Layer(t testing.TB, ms ...Member) v1.Layer {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, m := range ms {
		h := &tar.Header{Name: m.Name, Typeflag: m.Type, Mode: m.Mode, Uid: m.UID, Gid: m.GID,
			Linkname: m.Link, Size: int64(len(m.Body)), ModTime: LayerTime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, m.Body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	data := gz.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Image returns a linux/amd64 image of layers with cfg.
func Image(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Config = cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
