// Package localsrctest writes local image sources for tests: OCI image layouts
// (with go-containerregistry's layout writer), OCI archives (a tar of a
// layout) and docker archives in the formats `docker save` writes (the
// classic one with ID/layer.tar files, and the newer one with an OCI layout
// inside). Images are small and deterministic: the same variant gives the
// same digests.
package localsrctest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RefName is the annotation that names an image in an OCI layout.
const RefName = "org.opencontainers.image.ref.name"

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type entry struct {
	name, body, link string
	mode             int64
	hard             bool
}

func layer(entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case e.name[len(e.name)-1] == '/':
			h.Typeflag = tar.TypeDir
		case e.link != "" && e.hard:
			h.Typeflag, h.Linkname = tar.TypeLink, e.link
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, tarball.WithMediaType(types.OCILayer))
}

// Image returns a two-layer linux image for arch ("amd64", "arm64"): a base
// layer shared by all variants (directories, a symlink, a hard link, a
// setuid file) and a top layer that depends on variant (a changed file and
// a whiteout). Env, entrypoint and working directory are set.
func Image(variant int, arch string) (v1.Image, error) {
	base, err := layer([]entry{
		{name: "bin/", mode: 0o755},
		{name: "bin/hello", mode: 0o755, body: "#!/bin/sh\necho hello\n"},
		{name: "bin/su-helper", mode: 0o4755, body: "setuid\n"},
		{name: "bin/hello-link", link: "bin/hello", hard: true},
		{name: "etc/", mode: 0o755},
		{name: "etc/os-release", mode: 0o644, body: "ID=local\n"},
		{name: "etc/obsolete.conf", mode: 0o644, body: "gone in the next layer\n"},
		{name: "usr/", mode: 0o755},
		{name: "usr/bin", link: "../bin"},
	})
	if err != nil {
		return nil, err
	}
	top, err := layer([]entry{
		{name: "etc/", mode: 0o755},
		{name: "etc/.wh.obsolete.conf", mode: 0o644},
		{name: "etc/variant", mode: 0o644, body: fmt.Sprintf("variant %d %s\n", variant, arch)},
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, base, top)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello local"}
	cf.Config.Entrypoint = []string{"/bin/hello"}
	cf.Config.WorkingDir = "/etc"
	cf.Created = v1.Time{Time: epoch.Add(time.Duration(variant) * time.Second)}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	return mutate.ConfigMediaType(img, types.OCIConfigJSON), nil
}

// MustImage is Image for tests: it fails tb on an error.
func MustImage(tb testing.TB, variant int, arch string) v1.Image {
	tb.Helper()
	img, err := Image(variant, arch)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

// Named is an image and the name it is stored under (a ref.name
// annotation in a layout, a RepoTag in a docker archive; "" = none).
type Named struct {
	Name  string
	Image v1.Image
}

// NamedIndex is a multi-platform index and its name.
type NamedIndex struct {
	Name  string
	Index v1.ImageIndex
}

// Index returns an OCI index of the images of variant for each arch.
func Index(variant int, archs ...string) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, a := range archs {
		img, err := Image(variant, a)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: a}}})
	}
	return idx, nil
}

// WriteLayout writes (or replaces) an OCI image layout at dir holding the
// images and indexes, each annotated with its name when it has one.
func WriteLayout(dir string, images []Named, indexes ...NamedIndex) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	for _, n := range images {
		var opts []layout.Option
		if n.Name != "" {
			opts = append(opts, layout.WithAnnotations(map[string]string{RefName: n.Name}))
		}
		if err := p.AppendImage(n.Image, opts...); err != nil {
			return err
		}
	}
	for _, n := range indexes {
		var opts []layout.Option
		if n.Name != "" {
			opts = append(opts, layout.WithAnnotations(map[string]string{RefName: n.Name}))
		}
		if err := p.AppendIndex(n.Index, opts...); err != nil {
			return err
		}
	}
	return nil
}

// TarDir writes the files under dir to a tar at file (sorted, fixed times),
// e.g. an OCI layout to an OCI archive.
func TarDir(dir, file string) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	out := map[string][]byte{}
	var order []string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return err
		}
		out[f] = b
		order = append(order, f)
	}
	return writeTar(file, order, out, nil)
}

// writeTar writes files (in order) and symlinks (name → target) to file.
func writeTar(file string, order []string, files map[string][]byte, links map[string]string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	dirs := map[string]bool{}
	mkdirs := func(n string) error {
		for d := path.Dir(n); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
		return nil
	}
	for _, n := range order {
		mkdirs(n)
	}
	var dl []string
	for d := range dirs {
		dl = append(dl, d)
	}
	sort.Strings(dl)
	for _, d := range dl {
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	for _, n := range order {
		if target, ok := links[n]; ok {
			if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777, ModTime: epoch}); err != nil {
				return err
			}
			continue
		}
		b := files[n]
		if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// DockerFormat selects the docker archive layout.
type DockerFormat int

const (
	// DockerClassic is what docker save wrote up to Docker 24: ID/layer.tar
	// (uncompressed), ID/json, ID/VERSION, CONFIGHEX.json, manifest.json,
	// repositories. A layer shared with an earlier image is a symlink to it.
	DockerClassic DockerFormat = iota
	// DockerOCI is what Docker 25+ writes: an OCI layout (blobs/sha256/...,
	// uncompressed layers) plus manifest.json naming blobs by path.
	DockerOCI
)

// WriteDockerArchive writes the images to file as docker save would, each
// with its Name as RepoTag ("" = untagged).
func WriteDockerArchive(file string, format DockerFormat, images ...Named) error {
	type mEntry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	files := map[string][]byte{}
	links := map[string]string{}
	var order []string
	add := func(n string, b []byte) {
		if _, ok := files[n]; !ok {
			order = append(order, n)
		}
		files[n] = b
	}
	var manifest []mEntry
	repos := map[string]map[string]string{}
	layerByDiff := map[string]string{} // diff_id → path of its first copy
	var ociIndex v1.IndexManifest
	ociIndex.SchemaVersion = 2
	ociIndex.MediaType = types.OCIImageIndex
	for i, n := range images {
		cfg, err := n.Image.RawConfigFile()
		if err != nil {
			return err
		}
		cfgDigest, _, err := v1.SHA256(bytes.NewReader(cfg))
		if err != nil {
			return err
		}
		e := mEntry{}
		if n.Name != "" {
			e.RepoTags = []string{n.Name}
		}
		if format == DockerOCI {
			e.Config = "blobs/sha256/" + cfgDigest.Hex
		} else {
			e.Config = cfgDigest.Hex + ".json"
		}
		add(e.Config, cfg)
		layers, err := n.Image.Layers()
		if err != nil {
			return err
		}
		var descs []v1.Descriptor
		var lastID string
		for li, l := range layers {
			diff, err := l.DiffID()
			if err != nil {
				return err
			}
			rc, err := l.Uncompressed()
			if err != nil {
				return err
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return err
			}
			descs = append(descs, v1.Descriptor{MediaType: types.OCIUncompressedLayer, Size: int64(len(b)), Digest: diff})
			var p string
			if format == DockerOCI {
				p = "blobs/sha256/" + diff.Hex
				add(p, b)
			} else {
				// v1 layer IDs differ per image (they chain the config), as in
				// docker save; a layer seen before becomes a symlink.
				sum := sha256.Sum256([]byte(fmt.Sprintf("%d/%d/%s", i, li, diff)))
				id := hex.EncodeToString(sum[:])
				p = id + "/layer.tar"
				if first, ok := layerByDiff[diff.Hex]; ok {
					links[p] = "../" + first
					order = append(order, p)
				} else {
					layerByDiff[diff.Hex] = p
					add(p, b)
				}
				add(id+"/VERSION", []byte("1.0"))
				js, _ := json.Marshal(map[string]any{"id": id, "parent": lastID, "created": epoch})
				add(id+"/json", js)
				lastID = id
			}
			e.Layers = append(e.Layers, p)
		}
		if format == DockerOCI {
			m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
				Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cfg)), Digest: cfgDigest}, Layers: descs}
			raw, err := json.Marshal(m)
			if err != nil {
				return err
			}
			md, _, _ := v1.SHA256(bytes.NewReader(raw))
			add("blobs/sha256/"+md.Hex, raw)
			d := v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(raw)), Digest: md}
			if n.Name != "" {
				d.Annotations = map[string]string{"io.containerd.image.name": n.Name, RefName: n.Name}
			}
			ociIndex.Manifests = append(ociIndex.Manifests, d)
		} else if n.Name != "" {
			repo, tag := n.Name, "latest"
			if j := lastColon(n.Name); j >= 0 {
				repo, tag = n.Name[:j], n.Name[j+1:]
			}
			if repos[repo] == nil {
				repos[repo] = map[string]string{}
			}
			repos[repo][tag] = lastID
		}
		manifest = append(manifest, e)
	}
	mj, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	add("manifest.json", mj)
	if format == DockerOCI {
		ij, _ := json.Marshal(ociIndex)
		add("index.json", ij)
		add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	} else {
		rj, _ := json.Marshal(repos)
		add("repositories", rj)
	}
	return writeTar(file, order, files, links)
}

func lastColon(s string) int {
	for i := len(s) - 1; i >= 0 && s[i] != '/'; i-- {
		if s[i] == ':' {
			return i
		}
	}
	return -1
}
