package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// TestWriteEstimateIsUpperBound: for a tiny image and one with a layer of
// random (incompressible) and one of repetitive (very compressible) data,
// the write estimate of plan is at least the size of the SIF, .sqsh and
// OCI archive apply then writes, and at most the unpacked layers plus
// 512 KiB: the unpacked sizes came from the layers' gzip trailers, read
// from the registry with Range requests (the store is empty at plan time).
func TestWriteEstimateIsUpperBound(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	registrytest.RequireTool(t, "mksquashfs")
	srv := registrytest.StartDistribution(t)
	if err := pushImage(srv.Addr+"/est/tiny:1", 0); err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 3<<20)
	rand.New(rand.NewSource(1)).Read(random)
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog\n"), 150000)
	var unpacked int64
	var layers []v1.Layer
	for i, body := range [][]byte{random, text} {
		l := tarLayer([]tarEntry{{name: fmt.Sprintf("data/%d", i), mode: 0o644, body: string(body)}})
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, rc)
		rc.Close()
		unpacked += n
		layers = append(layers, l)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, _ = mutate.ConfigFile(img, cf)
	registrytest.Push(t, img, srv.Addr+"/est/big:1")

	root := t.TempDir()
	specFile := filepath.Join(t.TempDir(), "est.hcl")
	os.WriteFile(specFile, []byte(fmt.Sprintf(`
cache "sif" {
  runtime = "apptainer"
  root    = "%[1]s/sif"
  images  = ["%[2]s/est/tiny:1", "%[2]s/est/big:1"]
}
cache "sqsh" {
  runtime = "enroot"
  root    = "%[1]s/sqsh"
  images  = ["%[2]s/est/tiny:1", "%[2]s/est/big:1"]
}
cache "oci" {
  runtime = "podman"
  root    = "%[1]s/oci"
  images  = ["%[2]s/est/tiny:1", "%[2]s/est/big:1"]
}
`, root, srv.Addr)), 0o644)
	t.Setenv("CACHECTL_STORE", filepath.Join(t.TempDir(), "store"))
	run := func(args ...string) string {
		var out, errb bytes.Buffer
		if code := Run(t.Context(), append([]string{"-f", specFile}, args...), nil, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
		return out.String()
	}
	var p planner.Plan
	if err := json.Unmarshal([]byte(run("plan", "--json")), &p); err != nil {
		t.Fatal(err)
	}
	run("apply", "--auto-approve", "--progress", "none")
	var items []planner.Item
	if err := json.Unmarshal([]byte(run("list", "--json")), &items); err != nil {
		t.Fatal(err)
	}
	size := map[string]int64{}
	for _, it := range items {
		size[fmt.Sprintf("%s %s", it.Cache, it.Ref)] = it.Size
	}
	n := 0
	for _, ch := range p.Changes {
		got := size[ch.Cache+" "+ch.Ref]
		t.Logf("%-60s estimate %9d, file %9d", ch.Address, ch.WriteBytes, got)
		if got == 0 {
			t.Errorf("%s: no file", ch.Address)
			continue
		}
		n++
		if ch.WriteBytes < got {
			t.Errorf("%s: estimate %d is below the file's %d bytes", ch.Address, ch.WriteBytes, got)
		}
		if strings.Contains(ch.Ref, "big") && ch.WriteBytes > unpacked+512<<10 {
			t.Errorf("%s: estimate %d is above the unpacked %d + 512 KiB: the gzip trailers were not read", ch.Address, ch.WriteBytes, unpacked)
		}
	}
	if n != 6 {
		t.Errorf("%d artifacts checked, want 6", n)
	}
}
