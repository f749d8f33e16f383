package conformance

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apptainer/sif/v2/pkg/sif"

	"github.com/cachectl/cachectl/conformance/corpus"
)

// fsNode is one path of a root file system as a tar stream describes it.
type fsNode struct {
	typ      byte // tar type; hard links resolved to their group's type
	mode     int64
	uid, gid int
	size     int64
	sha      string
	link     string // symlink target
	major    int64
	minor    int64
	xattrs   map[string]string
	mtime    time.Time
	content  []byte // regular files up to maxContent bytes
	group    string // hard-link group: the smallest path of the group
}

const maxContent = 1 << 20

// fsTree is a root file system: clean relative paths ("etc/rc") → node.
type fsTree map[string]*fsNode

// readTar reads a tar stream of a root file system (sqfs2tar, podman
// export). Hard links get the metadata and content of their target and a
// group name.
func readTar(r io.Reader) (fsTree, error) {
	tr := tar.NewReader(r)
	t := fsTree{}
	links := map[string]string{} // path → target path
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		p := strings.Trim(strings.TrimPrefix(h.Name, "./"), "/")
		if p == "." {
			p = ""
		}
		n := &fsNode{typ: h.Typeflag, mode: h.Mode & 0o7777, uid: h.Uid, gid: h.Gid, mtime: h.ModTime,
			link: h.Linkname, major: h.Devmajor, minor: h.Devminor}
		if n.typ == tar.TypeRegA {
			n.typ = tar.TypeReg
		}
		for k, v := range h.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if n.xattrs == nil {
					n.xattrs = map[string]string{}
				}
				n.xattrs[name] = v
			}
		}
		switch n.typ {
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, err
			}
			n.size = int64(len(b))
			s := sha256.Sum256(b)
			n.sha = hex.EncodeToString(s[:])
			if len(b) <= maxContent {
				n.content = b
			}
		case tar.TypeLink:
			links[p] = strings.Trim(strings.TrimPrefix(h.Linkname, "./"), "/")
			continue
		}
		t[p] = n
	}
	for p, target := range links {
		tn, ok := t[target]
		if !ok {
			return nil, fmt.Errorf("hard link %q to missing %q", p, target)
		}
		c := *tn
		t[p] = &c
	}
	// Groups: every path of a hard-linked inode names the smallest path.
	groups := map[string][]string{}
	for p, target := range links {
		groups[target] = append(groups[target], p)
	}
	for target, ps := range groups {
		ps = append(ps, target)
		first := slices.Min(ps)
		for _, p := range ps {
			t[p].group = first
		}
	}
	return t, nil
}

// readSquashfs reads the squashfs image in file at offset off with
// squashfs-tools-ng's sqfs2tar (which keeps owners, xattrs and hard links
// without privileges).
func readSquashfs(t *testing.T, file string, off, size int64) fsTree {
	t.Helper()
	src := file
	if off > 0 {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		src = filepath.Join(t.TempDir(), "part.sqfs")
		out, err := os.Create(src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, io.NewSectionReader(f, off, size)); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("sqfs2tar", "--root-becomes", ".", src)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tree, rerr := readTar(stdout)
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil || rerr != nil {
		t.Fatalf("sqfs2tar %s: %v %v\n%s", file, err, rerr, stderr.String())
	}
	return tree
}

// sifObject is one SIF descriptor.
type sifObject struct {
	dataType string
	name     string
	partInfo string // "fs=Squashfs part=Primary arch=amd64" for partitions
	data     []byte // non-partition objects
	off      int64
	size     int64
}

// readSIF returns the SIF's launch script and descriptors in order.
func readSIF(t *testing.T, file string) (string, []sifObject) {
	t.Helper()
	f, err := sif.LoadContainerFromPath(file, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	defer f.UnloadContainer()
	var objs []sifObject
	var derr error
	f.WithDescriptors(func(d sif.Descriptor) bool {
		o := sifObject{dataType: d.DataType().String(), name: d.Name(), off: d.Offset(), size: d.Size()}
		if d.DataType() == sif.DataPartition {
			fs, pt, arch, err := d.PartitionMetadata()
			if err != nil {
				derr = err
				return true
			}
			o.partInfo = fmt.Sprintf("fs=%s part=%s arch=%s", fs, pt, arch)
		} else {
			o.data, derr = d.GetData()
		}
		objs = append(objs, o)
		return derr != nil
	})
	if derr != nil {
		t.Fatalf("%s: %v", file, derr)
	}
	return f.LaunchScript(), objs
}

// sifRoot reads the primary partition of a SIF.
func sifRoot(t *testing.T, file string, objs []sifObject) fsTree {
	t.Helper()
	for _, o := range objs {
		if o.partInfo != "" {
			return readSquashfs(t, file, o.off, o.size)
		}
	}
	t.Fatalf("%s: no partition", file)
	return nil
}

// isKit reports whether p is one of the kit layer's paths, whose bytes
// depend on the machine.
func isKit(p string) bool { return slices.Contains(corpus.KitPaths, p) }

// buildEra and buildEnd: times between them are a build's, not the
// corpus's (whose times are in 2024, or at 0, before 1970 and decades
// ahead: tar-odd).
var (
	buildEra = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	buildEnd = time.Now().Add(24 * time.Hour)
)

// describeOpts select what a tree description leaves out.
type describeOpts struct {
	// skip returns true for paths (and their subtrees) described elsewhere
	// or not compared.
	skip func(p string) bool
	// mtimes adds every modification time; by default only those of
	// non-directories, and a build's times as "build".
	mtimes bool
}

// describe renders the tree one path per line, sorted:
// "PATH TYPE MODE UID:GID [size=N sha256=H] [-> TARGET] [dev=MAJ,MIN] [link-group=P] [xattr K=V]... [mtime=T]".
// Paths and targets are quoted (%q). Kit files get "kit" instead of size and hash.
func (t fsTree) describe(o describeOpts) string {
	paths := make([]string, 0, len(t))
	for p := range t {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b strings.Builder
	for _, p := range paths {
		if o.skip != nil && p != "" && o.skip(p) {
			continue
		}
		n := t[p]
		name := p
		if name == "" {
			name = "/"
		}
		if n.typ == tar.TypeSymlink {
			// Symlink permissions mean nothing (always 0777 on Linux).
			fmt.Fprintf(&b, "%q %c %d:%d", name, n.typ, n.uid, n.gid)
		} else {
			fmt.Fprintf(&b, "%q %c %04o %d:%d", name, n.typ, n.mode, n.uid, n.gid)
		}
		switch n.typ {
		case tar.TypeReg:
			if isKit(p) {
				b.WriteString(" kit")
			} else {
				fmt.Fprintf(&b, " size=%d sha256=%.16s", n.size, n.sha)
			}
		case tar.TypeSymlink:
			fmt.Fprintf(&b, " -> %q", n.link)
		case tar.TypeChar, tar.TypeBlock:
			fmt.Fprintf(&b, " dev=%d,%d", n.major, n.minor)
		}
		if n.group != "" {
			fmt.Fprintf(&b, " link-group=%q", n.group)
		}
		keys := make([]string, 0, len(n.xattrs))
		for k := range n.xattrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, " xattr %s=%q", k, n.xattrs[k])
		}
		switch {
		case o.mtimes:
			fmt.Fprintf(&b, " mtime=%s", n.mtime.UTC().Format(time.RFC3339))
		case n.typ == tar.TypeDir:
			// Directory times are the build's (docs/conformance.md).
		case n.mtime.Before(buildEra) || n.mtime.After(buildEnd):
			fmt.Fprintf(&b, " mtime=%s", n.mtime.UTC().Format(time.RFC3339))
		default:
			b.WriteString(" mtime=build")
		}
		b.WriteByte('\n')
	}
	return b.String()
}
