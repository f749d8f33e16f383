package main

import (
	"os"
	"path/filepath"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cachectl/cachectl/providers/localsrc/localsrctest"
)

// localSrcCmd writes local image sources for the e2e scripts
// (testdata/script/e2e/local_*.txtar). Images are providers/localsrc/localsrctest's
// deterministic two-layer images; VARIANT changes the top layer.
//
//	localsrc layout DIR NAME VARIANT [NAME VARIANT ...]   an OCI image layout (NAME "-": unnamed)
//	localsrc ociarchive FILE NAME VARIANT                 an OCI archive (tar of a layout)
//	localsrc dockerarchive FILE NAME VARIANT              a docker save archive (NAME "-": untagged)
//	localsrc corrupt DIR NAME                             flip a byte of the top layer of NAME in a layout
func localSrcCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("localsrc does not support !")
	}
	if len(args) < 3 {
		ts.Fatalf("usage: localsrc layout|ociarchive|dockerarchive|corrupt PATH NAME [VARIANT] ...")
	}
	named := func(pairs []string) []localsrctest.Named {
		if len(pairs)%2 != 0 {
			ts.Fatalf("localsrc: NAME VARIANT pairs expected, got %q", pairs)
		}
		var out []localsrctest.Named
		for i := 0; i < len(pairs); i += 2 {
			v, err := strconv.Atoi(pairs[i+1])
			ts.Check(err)
			img, err := localsrctest.Image(v, "amd64")
			ts.Check(err)
			n := pairs[i]
			if n == "-" {
				n = ""
			}
			out = append(out, localsrctest.Named{Name: n, Image: img})
		}
		return out
	}
	p := ts.MkAbs(args[1])
	ts.Check(os.MkdirAll(filepath.Dir(p), 0o755))
	switch args[0] {
	case "layout":
		ts.Check(localsrctest.WriteLayout(p, named(args[2:])))
	case "ociarchive":
		tmp := p + ".layout"
		ts.Check(localsrctest.WriteLayout(tmp, named(args[2:])))
		ts.Check(localsrctest.TarDir(tmp, p))
		ts.Check(os.RemoveAll(tmp))
	case "dockerarchive":
		ts.Check(localsrctest.WriteDockerArchive(p, localsrctest.DockerClassic, named(args[2:])...))
	case "corrupt":
		ts.Check(corruptTopLayer(p, args[2]))
	default:
		ts.Fatalf("localsrc: unknown kind %q", args[0])
	}
}

// corruptTopLayer flips a byte in the last layer of the image named name in
// the OCI layout dir.
func corruptTopLayer(dir, name string) error {
	idx, err := readLayoutIndex(dir)
	if err != nil {
		return err
	}
	for _, d := range idx.Manifests {
		if d.Annotations[localsrctest.RefName] != name {
			continue
		}
		f, err := os.Open(filepath.Join(dir, "blobs", d.Digest.Algorithm, d.Digest.Hex))
		if err != nil {
			return err
		}
		m, err := v1.ParseManifest(f)
		f.Close()
		if err != nil {
			return err
		}
		top := m.Layers[len(m.Layers)-1].Digest
		p := filepath.Join(dir, "blobs", top.Algorithm, top.Hex)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b[len(b)/2] ^= 0xff
		return os.WriteFile(p, b, 0o644)
	}
	return os.ErrNotExist
}

func readLayoutIndex(dir string) (*v1.IndexManifest, error) {
	f, err := os.Open(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return v1.ParseIndexManifest(f)
}
