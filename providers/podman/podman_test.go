package podman

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachectl/cachectl/providers/buildtest"
	"github.com/cachectl/cachectl/providers/image"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cachectl/cachectl/providers"
)

const refName = "docker.io/library/app:1.0"

func testImage(t *testing.T) v1.Image {
	t.Helper()
	l1 := buildtest.Layer(t, buildtest.Dir("etc/", 0o755), buildtest.Reg("etc/os-release", 0o644, "ID=test\n"), buildtest.Dir("bin/", 0o755), buildtest.Reg("bin/hello", 0o755, "#!/bin/sh\necho hi\n"))
	l2 := buildtest.Layer(t, buildtest.Reg("etc/.wh.os-release", 0, ""), buildtest.Reg("etc/motd", 0o644, "welcome\n"))
	return buildtest.Image(t, v1.Config{Env: []string{"PATH=/bin"}, Cmd: []string{"/bin/hello"}, WorkingDir: "/w"}, l1, l2)
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func TestConvertDockerToOCI(t *testing.T) {
	img := testImage(t)
	if mt, _ := img.MediaType(); mt != types.DockerManifestSchema2 {
		t.Fatalf("test image is %s, want a Docker manifest", mt)
	}
	conv, err := Convert(img)
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := img.Digest()
	if conv.ManifestDigest == orig {
		t.Error("manifest digest unchanged by conversion")
	}
	if conv.Manifest.MediaType != types.OCIManifestSchema1 || conv.Manifest.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types %s / %s", conv.Manifest.MediaType, conv.Manifest.Config.MediaType)
	}
	m, _ := img.Manifest()
	for i, l := range conv.Manifest.Layers {
		if l.MediaType != types.OCILayer || l.Digest != m.Layers[i].Digest || l.Size != m.Layers[i].Size {
			t.Errorf("layer %d: %+v (was %+v)", i, l, m.Layers[i])
		}
	}
	cfgName, _ := img.ConfigName()
	if conv.Manifest.Config.Digest != cfgName {
		t.Error("config digest changed")
	}
}

func TestConvertKeepsOCI(t *testing.T) {
	img := mutate.MediaType(testImage(t), types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	conv, err := Convert(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Convert(img); err != nil {
		t.Fatal(err)
	}
	if conv.Manifest.MediaType != types.OCIManifestSchema1 {
		t.Error(conv.Manifest.MediaType)
	}
}

func TestBuildSkopeoUmoci(t *testing.T) {
	buildtest.RequireTools(t, "skopeo", "umoci")
	ctx := context.Background()
	dir := t.TempDir()
	out := filepath.Join(dir, "app+1.0")
	img := testImage(t)
	b := New()
	if err := b.Build(ctx, img, providers.BuildRequest{Ref: "app:1.0", NormalizedName: refName}, out); err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(ctx, out); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	conv, _ := Convert(img)
	cfgName, _ := img.ConfigName()
	m, _ := img.Manifest()

	// skopeo inspect oci-archive:FILE
	var insp struct {
		Digest string
		Layers []string
		Env    []string
	}
	if err := json.Unmarshal(run(t, "skopeo", "--insecure-policy", "inspect", "oci-archive:"+out), &insp); err != nil {
		t.Fatal(err)
	}
	if insp.Digest != conv.ManifestDigest.String() {
		t.Errorf("skopeo digest %s, want %s", insp.Digest, conv.ManifestDigest)
	}
	if len(insp.Layers) != 2 || insp.Layers[0] != m.Layers[0].Digest.String() || insp.Layers[1] != m.Layers[1].Digest.String() {
		t.Errorf("skopeo layers %v", insp.Layers)
	}
	var cfg v1.ConfigFile
	if err := json.Unmarshal(run(t, "skopeo", "--insecure-policy", "inspect", "--config", "oci-archive:"+out), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Config.WorkingDir != "/w" {
		t.Errorf("config %+v", cfg.Config)
	}

	// skopeo copy oci-archive:FILE oci:DIR:tag keeps config and layer digests.
	layout := filepath.Join(dir, "layout")
	run(t, "skopeo", "--insecure-policy", "copy", "-q", "oci-archive:"+out, "oci:"+layout+":app")
	var idx v1.IndexManifest
	readJSON(t, filepath.Join(layout, "index.json"), &idx)
	if len(idx.Manifests) != 1 {
		t.Fatalf("index %+v", idx)
	}
	var got v1.Manifest
	readJSON(t, filepath.Join(layout, "blobs", "sha256", idx.Manifests[0].Digest.Hex), &got)
	if got.Config.Digest != cfgName {
		t.Errorf("config digest %s, want %s", got.Config.Digest, cfgName)
	}
	for i, l := range got.Layers {
		if l.Digest != m.Layers[i].Digest || l.MediaType != types.OCILayer {
			t.Errorf("layer %d: %+v", i, l)
		}
	}

	// umoci unpacks the copied layout.
	bundle := filepath.Join(dir, "bundle")
	run(t, "umoci", "unpack", "--rootless", "--image", layout+":app", bundle)
	if b, err := os.ReadFile(filepath.Join(bundle, "rootfs", "etc", "motd")); err != nil || string(b) != "welcome\n" {
		t.Errorf("motd: %q %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(bundle, "rootfs", "etc", "os-release")); !os.IsNotExist(err) {
		t.Errorf("whiteout not applied: %v", err)
	}
}

func TestArchiveLayout(t *testing.T) {
	var buf bytes.Buffer
	img := testImage(t)
	if err := New().Write(context.Background(), img, refName, &buf); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	var names []string
	var index []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name == "index.json" {
			index, _ = io.ReadAll(tr)
		}
	}
	if names[0] != "blobs/" || names[1] != "blobs/sha256/" || names[len(names)-2] != "index.json" || names[len(names)-1] != "oci-layout" {
		t.Errorf("entries %v", names)
	}
	if len(names) != 2+4+2 { // dirs, manifest+config+2 layers, index, layout
		t.Errorf("entries %v", names)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(index, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Annotations[image.RefNameAnnotation] != refName || idx.Manifests[0].MediaType != types.OCIManifestSchema1 {
		t.Errorf("index %s", index)
	}
	if err := VerifyArchive(context.Background(), bytes.NewReader(buf.Bytes())); err != nil {
		t.Errorf("VerifyArchive: %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	var buf bytes.Buffer
	if err := New().Write(context.Background(), testImage(t), refName, &buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	ctx := context.Background()

	// Flip the first non-zero byte from the middle on (blob content or a header).
	corrupt := append([]byte(nil), good...)
	for j := len(corrupt) / 2; j < len(corrupt); j++ {
		if corrupt[j] != 0 {
			corrupt[j] ^= 0xff
			break
		}
	}
	if err := VerifyArchive(ctx, bytes.NewReader(corrupt)); err == nil {
		t.Error("corrupted archive verified")
	}
	if err := VerifyArchive(ctx, strings.NewReader("not a tar")); err == nil {
		t.Error("garbage verified")
	}
	// Without oci-layout.
	var noLayout bytes.Buffer
	tw := tar.NewWriter(&noLayout)
	tr := tar.NewReader(bytes.NewReader(good))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Name == "oci-layout" {
			continue
		}
		tw.WriteHeader(h)
		io.Copy(tw, tr)
	}
	tw.Close()
	if err := VerifyArchive(ctx, &noLayout); err == nil || !strings.Contains(err.Error(), "oci-layout") {
		t.Errorf("missing oci-layout: %v", err)
	}
}

func TestBuildFailureLeavesNothing(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x")
	img := testImage(t)
	// A layer whose bytes do not match its digest.
	bad := &badLayerImage{Image: img}
	if err := New().Build(context.Background(), bad, providers.BuildRequest{NormalizedName: refName}, out); err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Lstat(out); !os.IsNotExist(err) {
		t.Errorf("output left behind: %v", err)
	}
}

type badLayerImage struct{ v1.Image }

func (b *badLayerImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := b.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return &badLayer{Layer: l}, nil
}

type badLayer struct{ v1.Layer }

func (b *badLayer) Compressed() (io.ReadCloser, error) {
	rc, err := b.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	data[len(data)-1] ^= 1
	return io.NopCloser(bytes.NewReader(data)), nil
}

func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
