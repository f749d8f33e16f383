// Package corpus generates the image shapes of the conformance suite
// (conformance/): small OCI images, deterministic in every byte except the
// kit layer, each exercising what public bug reports of Apptainer,
// SingularityCE, Enroot, Podman and image tools found hard: odd ENV values
// and labels, shell characters in ENTRYPOINT/CMD/WORKDIR/VOLUME/USER,
// whiteouts and opaque directories, hard links across layers, symlinked
// directories (also /etc -> usr/etc) and members written through a lower
// layer's symlinked directory, restrictive modes, many layers, odd file
// names and extended attributes, tar entries as GNU tar writes them (root
// entries, duplicates, GNU long names, sparse files, times outside 32
// bits), OCI media types with uncompressed and zstd layers, empty layers
// and config fields the runtimes mostly ignore.
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
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
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
	// Format is the tar header format; zero means PAX. FormatGNU writes
	// long names as GNU 'L' records and non-ASCII names raw.
	Format tar.Format
	// Sparse, when set, stores the regular file Body as a PAX 1.0 sparse
	// file (GNU tar's --sparse format): only these data regions are stored,
	// the rest of Body must be zero bytes.
	Sparse []SparseRegion
}

// SparseRegion is a data region of a sparse file: Length bytes at Offset.
type SparseRegion struct{ Offset, Length int64 }

// Encoding is how a layer's tar is stored as a blob, with its media type.
type Encoding int

const (
	// Gzip: gzip at the default level ("tar+gzip", Docker's
	// "rootfs.diff.tar.gzip").
	Gzip Encoding = iota
	// Uncompressed: the tar itself ("tar", Docker's "rootfs.diff.tar").
	Uncompressed
	// Zstd: zstd ("tar+zstd", OCI media types only).
	Zstd
)

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
	// OCI selects OCI media types for the manifest, config and layers
	// instead of Docker's.
	OCI bool
	// Encodings are the blob encodings of Layers, by index; missing
	// entries mean Gzip. The kit layer is always gzip.
	Encodings []Encoding
	// EmptyLayerHistory adds `empty_layer` history entries (as Dockerfile
	// ENV/CMD steps do) before the first and after every layer's entry.
	EmptyLayerHistory bool
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

// TarBytes returns the uncompressed tar stream of ms, as the corpus
// writes its layers (providers/rootfs tests sparse files with it).
func TarBytes(ms []Member) ([]byte, error) { return tarBytes(ms) }

// tarBytes returns the tar stream of ms.
func tarBytes(ms []Member) ([]byte, error) {
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
		format := m.Format
		if format == 0 {
			format = tar.FormatPAX
		}
		h := &tar.Header{Typeflag: typ, Name: name, Linkname: m.Link, Mode: mode, Uid: m.UID, Gid: m.GID,
			ModTime: mt, Devmajor: m.Major, Devminor: m.Minor, Format: format}
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
		if m.Sparse != nil {
			// archive/tar writes no sparse files: the blocks are made here
			// and written through the writer's underlying stream.
			if err := tw.Flush(); err != nil {
				return nil, err
			}
			b, err := sparseMember(h, m.Body, m.Sparse)
			if err != nil {
				return nil, fmt.Errorf("member %q: %w", m.Name, err)
			}
			raw.Write(b)
			continue
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
	return raw.Bytes(), nil
}

// layerBytes returns the blob of ms in encoding enc. Gzip at the default
// level with no name and no mtime in its header, and zstd with one
// encoder thread, are deterministic.
func layerBytes(ms []Member, enc Encoding) ([]byte, error) {
	raw, err := tarBytes(ms)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	var w io.WriteCloser
	switch enc {
	case Uncompressed:
		return raw, nil
	case Zstd:
		if w, err = zstd.NewWriter(&out, zstd.WithEncoderConcurrency(1)); err != nil {
			return nil, err
		}
	default:
		w = gzip.NewWriter(&out)
	}
	if _, err := w.Write(raw); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// mediaType is the layer media type of enc in an OCI or a Docker
// manifest.
func mediaType(enc Encoding, oci bool) (types.MediaType, error) {
	switch {
	case enc == Gzip && oci:
		return types.OCILayer, nil
	case enc == Gzip:
		return types.DockerLayer, nil
	case enc == Uncompressed && oci:
		return types.OCIUncompressedLayer, nil
	case enc == Uncompressed:
		return types.DockerUncompressedLayer, nil
	case enc == Zstd && oci:
		return types.OCILayerZStd, nil
	}
	return "", fmt.Errorf("encoding %d has no Docker media type", enc)
}

// blobLayer is a layer of fixed blob bytes.
type blobLayer struct {
	blob, raw []byte
	mt        types.MediaType
}

func (l *blobLayer) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(l.blob))
	return h, err
}
func (l *blobLayer) DiffID() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(l.raw))
	return h, err
}
func (l *blobLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.blob)), nil
}
func (l *blobLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.raw)), nil
}
func (l *blobLayer) Size() (int64, error)                { return int64(len(l.blob)), nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return l.mt, nil }

func layer(ms []Member, enc Encoding, oci bool) (v1.Layer, error) {
	mt, err := mediaType(enc, oci)
	if err != nil {
		return nil, err
	}
	raw, err := tarBytes(ms)
	if err != nil {
		return nil, err
	}
	blob, err := layerBytes(ms, enc)
	if err != nil {
		return nil, err
	}
	return &blobLayer{blob: blob, raw: raw, mt: mt}, nil
}

// Image returns the shape as a linux/amd64 image with Docker media types
// (Enroot pulls only those from Debian's docker-registry), or OCI ones
// with OCI: the kit layer, then the shape's layers.
func (s Shape) Image(kit Kit) (v1.Image, error) {
	all := append([][]Member{kit.members()}, s.Layers...)
	img := mutate.MediaType(empty.Image, types.DockerManifestSchema2)
	img = mutate.ConfigMediaType(img, types.DockerConfigJSON)
	if s.OCI {
		img = mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	for i, ms := range all {
		enc := Gzip
		if i > 0 && i-1 < len(s.Encodings) {
			enc = s.Encodings[i-1]
		}
		l, err := layer(ms, enc, s.OCI)
		if err != nil {
			return nil, fmt.Errorf("%s: layer %d: %w", s.Name, i, err)
		}
		mt, _ := l.MediaType()
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, MediaType: mt,
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
	if s.EmptyLayerHistory {
		empty := func(n int) v1.History {
			return v1.History{Created: v1.Time{Time: Created}, CreatedBy: fmt.Sprintf("conformance config %d", n), EmptyLayer: true}
		}
		h := []v1.History{empty(0)}
		for i, e := range cf.History {
			h = append(h, e, empty(i+1))
		}
		cf.History = h
	}
	return mutate.ConfigFile(img, cf)
}

// sparseMember returns the tar blocks of a PAX 1.0 sparse file, as GNU
// tar --sparse (format pax, sparse version 1.0, GNU tar's manual "Storing
// Sparse Files") writes it: an extended header with GNU.sparse.major=1,
// GNU.sparse.minor=0, GNU.sparse.name and GNU.sparse.realsize, then a
// member named DIR/GNUSparseFile.0/BASE whose data is the sparse map (the
// number of regions, then offset and length of each, one decimal number a
// line, padded to 512 bytes) followed by the regions' bytes.
// archive/tar reads this format but does not write it. GNU tar reads each
// region's bytes in whole 512-byte blocks (it writes regions of whole
// blocks, but the last), so regions but the last must start and end on a
// block boundary, as in the archives GNU tar writes.
func sparseMember(h *tar.Header, body string, regions []SparseRegion) ([]byte, error) {
	if h.Typeflag != tar.TypeReg {
		return nil, fmt.Errorf("only regular files can be sparse")
	}
	var sparseMap, data strings.Builder
	fmt.Fprintf(&sparseMap, "%d\n", len(regions))
	stored := []byte(body)
	for _, r := range regions {
		if r.Offset < 0 || r.Length < 0 || r.Offset+r.Length > int64(len(body)) {
			return nil, fmt.Errorf("sparse region %+v outside the %d-byte body", r, len(body))
		}
		if r.Offset%512 != 0 || (r.Length%512 != 0 && r != regions[len(regions)-1]) {
			return nil, fmt.Errorf("sparse region %+v: only the last region may end off a 512-byte block", r)
		}
		fmt.Fprintf(&sparseMap, "%d\n%d\n", r.Offset, r.Length)
		data.WriteString(body[r.Offset : r.Offset+r.Length])
		clear(stored[r.Offset : r.Offset+r.Length])
	}
	if strings.Trim(string(stored), "\x00") != "" {
		return nil, fmt.Errorf("the body has data outside its sparse regions")
	}
	m := sparseMap.String()
	m += strings.Repeat("\x00", (512-len(m)%512)%512)
	content := m + data.String()

	dir, base := "", h.Name
	if i := strings.LastIndexByte(h.Name, '/'); i >= 0 {
		dir, base = h.Name[:i+1], h.Name[i+1:]
	}
	var records strings.Builder
	for _, kv := range [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"},
		{"GNU.sparse.name", h.Name}, {"GNU.sparse.realsize", fmt.Sprint(len(body))}} {
		records.WriteString(paxRecord(kv[0], kv[1]))
	}
	// Both headers are written as ustar members, then the first becomes
	// the extended header ('x').
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	xh := &tar.Header{Typeflag: tar.TypeReg, Name: dir + "PaxHeaders.0/" + base, Mode: 0o644,
		ModTime: h.ModTime, Size: int64(records.Len()), Format: tar.FormatUSTAR}
	if err := tw.WriteHeader(xh); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(tw, records.String()); err != nil {
		return nil, err
	}
	fh := *h
	fh.Name, fh.Size, fh.Format, fh.PAXRecords = dir+"GNUSparseFile.0/"+base, int64(len(content)), tar.FormatUSTAR, nil
	if err := tw.WriteHeader(&fh); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(tw, content); err != nil {
		return nil, err
	}
	if err := tw.Flush(); err != nil {
		return nil, err
	}
	b := out.Bytes()
	b[156] = tar.TypeXHeader
	setChecksum(b[:512])
	return b, nil
}

// paxRecord is one "LEN KEY=VALUE\n" record; LEN counts the whole record.
func paxRecord(k, v string) string {
	size := len(k) + len(v) + 3
	size += len(fmt.Sprint(size))
	r := fmt.Sprintf("%d %s=%s\n", size, k, v)
	if len(r) != size { // the length gained a digit
		r = fmt.Sprintf("%d %s=%s\n", len(r), k, v)
	}
	return r
}

// setChecksum rewrites the checksum field of a ustar header block.
func setChecksum(blk []byte) {
	copy(blk[148:156], "        ")
	sum := 0
	for _, c := range blk {
		sum += int(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
}
