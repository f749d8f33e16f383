// Package corpus generates the image shapes of the conformance suite
// (conformance/): small OCI images, deterministic in every byte except the
// kit layer, each exercising what public bug reports of Apptainer,
// SingularityCE, Enroot, Podman and image tools found hard: odd ENV values
// and labels, shell characters in ENTRYPOINT/CMD/WORKDIR/VOLUME/USER,
// whiteouts and opaque directories, hard links across layers, symlinked
// directories (also /etc -> usr/etc), restrictive modes, many layers, odd
// file names and extended attributes.
//
// Every image starts with the kit layer: a static busybox as /bin/sh (the
// runtimes' start scripts need a shell) and /probe, a static program that
// prints its arguments, environment, working directory and ids. The kit's
// bytes come from the host (busybox) and the Go toolchain (probe), so they
// are the one part that differs between machines; the suite describes kit
// files by path and type only.
package corpus

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Member is one tar entry of a layer.
type Member struct {
	Name string
	// Type is a tar type flag; 0 means a regular file.
	Type byte
	// Mode is the permission bits with setuid, setgid and sticky; 0 means
	// 0644 for files and 0755 for directories (use NoPerm for 0000).
	Mode         int64
	UID, GID     int
	Body         string
	Link         string
	Xattrs       map[string]string
	Major, Minor int64
	// ModTime; zero means Time.
	ModTime time.Time
}

// NoPerm is the Mode value that means 0000.
const NoPerm = -1

// Time is the default mtime of every member.
var Time = time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)

// Created is the image config's creation time.
var Created = time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)

// Shape is one image of the corpus.
type Shape struct {
	// Name is the repository name's last component ("env-odd").
	Name string
	// About says what the shape exercises and where it comes from.
	About string
	// Layers above the kit layer, oldest first.
	Layers [][]Member
	// Config is the image config (Env, Entrypoint, Cmd, ...).
	Config v1.Config
}

// Kit holds the bytes of the kit layer's two programs.
type Kit struct {
	// Busybox is a static busybox; /bin/sh links to it.
	Busybox []byte
	// Probe is the static probe program (conformance/probe).
	Probe []byte
}

// KitPaths are the paths the kit layer adds (the suite describes their
// files by type only).
var KitPaths = []string{"bin", "bin/busybox", "bin/sh", "bin/env", "bin/cat", "bin/echo", "probe"}

// kitMembers returns the kit layer.
func (k Kit) members() []Member {
	return []Member{
		Dir("bin", 0o755),
		{Name: "bin/busybox", Mode: 0o755, Body: string(k.Busybox)},
		Symlink("bin/sh", "busybox"),
		Symlink("bin/env", "busybox"),
		Symlink("bin/cat", "busybox"),
		Symlink("bin/echo", "busybox"),
		{Name: "probe", Mode: 0o755, Body: string(k.Probe)},
	}
}

// Reg is a regular file.
func Reg(name string, mode int64, body string) Member {
	return Member{Name: name, Type: tar.TypeReg, Mode: mode, Body: body}
}

// Dir is a directory.
func Dir(name string, mode int64) Member { return Member{Name: name, Type: tar.TypeDir, Mode: mode} }

// Symlink is a symbolic link.
func Symlink(name, target string) Member {
	return Member{Name: name, Type: tar.TypeSymlink, Mode: 0o777, Link: target}
}

// Hardlink is a hard link to target.
func Hardlink(name, target string) Member {
	return Member{Name: name, Type: tar.TypeLink, Link: target}
}

// Whiteout deletes name from lower layers (".wh." + base).
func Whiteout(name string) Member {
	dir, base := "", name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		dir, base = name[:i+1], name[i+1:]
	}
	return Member{Name: dir + ".wh." + base, Type: tar.TypeReg}
}

// Opaque hides what lower layers put in dir.
func Opaque(dir string) Member { return Member{Name: dir + "/.wh..wh..opq", Type: tar.TypeReg} }

// layerBytes returns the gzip-compressed tar of ms; gzip at default level
// with no name and no mtime in its header is deterministic.
func layerBytes(ms []Member) ([]byte, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, m := range ms {
		typ := m.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := m.Mode
		switch {
		case mode == NoPerm:
			mode = 0
		case mode == 0 && typ == tar.TypeDir:
			mode = 0o755
		case mode == 0:
			mode = 0o644
		}
		mt := m.ModTime
		if mt.IsZero() {
			mt = Time
		}
		name := m.Name
		if typ == tar.TypeDir && !strings.HasSuffix(name, "/") {
			name += "/"
		}
		h := &tar.Header{Typeflag: typ, Name: name, Linkname: m.Link, Mode: mode, Uid: m.UID, Gid: m.GID,
			ModTime: mt, Devmajor: m.Major, Devminor: m.Minor, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(m.Body))
		}
		if len(m.Xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			keys := make([]string, 0, len(m.Xattrs))
			for k := range m.Xattrs {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				h.PAXRecords["SCHILY.xattr."+k] = m.Xattrs[k]
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("member %q: %w", m.Name, err)
		}
		if typ == tar.TypeReg {
			if _, err := io.WriteString(tw, m.Body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return gz.Bytes(), nil
}

func layer(ms []Member) (v1.Layer, error) {
	data, err := layerBytes(ms)
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.DockerLayer))
}

// Image returns the shape as a linux/amd64 image with Docker media types
// (Enroot pulls only those from Debian's docker-registry): the kit layer,
// then the shape's layers.
func (s Shape) Image(kit Kit) (v1.Image, error) {
	all := append([][]Member{kit.members()}, s.Layers...)
	img := mutate.MediaType(empty.Image, types.DockerManifestSchema2)
	img = mutate.ConfigMediaType(img, types.DockerConfigJSON)
	for i, ms := range all {
		l, err := layer(ms)
		if err != nil {
			return nil, fmt.Errorf("%s: layer %d: %w", s.Name, i, err)
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, MediaType: types.DockerLayer,
			History: v1.History{Created: v1.Time{Time: Created}, CreatedBy: fmt.Sprintf("conformance layer %d", i)}})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: Created}
	cf.Config = s.Config
	return mutate.ConfigFile(img, cf)
}
