package rootfs

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// crossImages are multi-layer images exercising every rule at once.
func crossImages(t *testing.T) map[string][][]te {
	t.Helper()
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	return map[string][][]te{
		"mixed": {
			L(
				te{name: "bin", typ: tar.TypeDir, mode: 0o755},
				te{name: "bin/busybox", body: "busybox v1", mode: 0o755, mtime: old},
				hardlink("bin/sh", "bin/busybox"),
				te{name: "bin/su", body: "setuid", mode: 0o4755},
				te{name: "bin/wall", body: "setgid", mode: 0o2711, gid: 5},
				te{name: "tmp", typ: tar.TypeDir, mode: 0o1777},
				te{name: "home", typ: tar.TypeDir, mode: 0o755},
				te{name: "home/user", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1000},
				te{name: "home/user/.profile", body: "PS1=x", mode: 0o640, uid: 1000, gid: 1000},
				te{name: "etc", typ: tar.TypeDir, mode: 0o755},
				te{name: "etc/passwd", body: "root:x:0:0", mode: 0o644},
				te{name: "etc/hostname", body: "box"},
				sym("etc/mtab", "/proc/self/mounts"),
				sym("etc/escape", "../../../../etc/shadow"),
				te{name: "etc/data", body: "data v1", mode: 0o600},
				te{name: "etc/gone", body: "will be whited out"},
				te{name: "var", typ: tar.TypeDir, mode: 0o755},
				te{name: "var/cache", typ: tar.TypeDir, mode: 0o755},
				te{name: "var/cache/a", body: "cache a"},
				te{name: "var/cache/sub", typ: tar.TypeDir, mode: 0o755},
				te{name: "var/cache/sub/b", body: "cache b"},
				te{name: "opt", typ: tar.TypeDir, mode: 0o755},
				te{name: "opt/tool", body: "tool v1", mode: 0o755},
				te{name: "lib", typ: tar.TypeDir, mode: 0o755},
				te{name: "lib/libx.so.1", body: "libx"},
				sym("lib/libx.so", "libx.so.1"),
				te{name: "run", typ: tar.TypeDir, mode: 0o755},
				te{name: "run/fifo", typ: tar.TypeFifo, mode: 0o620},
			),
			L(
				wh("etc/.wh.gone"),
				wh("var/cache/.wh..wh..opq"),
				te{name: "var/cache/new", body: "fresh cache", uid: 33, gid: 33},
				wh("lib/.wh.libx.so"),
				te{name: "lib/libx.so", body: "now a file"},
				te{name: "opt", typ: tar.TypeDir, mode: 0o711, uid: 2},
				wh("opt/.wh.tool"),
				hardlink("etc/data.bak", "etc/data"),
				hardlink("usr/bin/busybox-link", "bin/busybox"),
				hardlink("usr/bin/su2", "bin/su"),
				te{name: "home/user", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000},
			),
			L(
				te{name: "etc/data", body: "data v2, longer", mode: 0o644},
				te{name: "bin/busybox", body: "busybox v2", mode: 0o755},
				wh("bin/.wh.sh"),
				te{name: "etc/hostname", typ: tar.TypeDir, mode: 0o755},
				te{name: "etc/hostname/now-a-dir", body: "x"},
				wh("home/.wh.user"),
				te{name: "usr/share/doc", typ: tar.TypeDir, mode: 0o755},
				te{name: "usr/share/doc/README", body: "readme"},
			),
		},
		"parent-symlinks": {
			L(
				te{name: "usr/lib/libold.so", body: "old"},
				sym("lib", "usr/lib"),
				te{name: "real/f", body: "f"},
				te{name: "real/gone", body: "gone"},
				te{name: "real/sub/in", body: "in"},
				sym("s", "real"),
				sym("abs", "/real/sub"),
				sym("up", "../../real"),
				sym("chain", "s/sub"),
				sym("dangling", "nowhere/deeper"),
			),
			L(
				te{name: "lib/libnew.so", body: "new"},
				wh("s/.wh.gone"),
				hardlink("hl", "s/f"),
				te{name: "abs/via-abs", body: "via abs"},
				te{name: "up/via-up", body: "via up"},
				te{name: "chain/via-chain", body: "via chain"},
				te{name: "dangling/made", body: "made"},
			),
			L(
				wh("chain/.wh..wh..opq"),
				te{name: "chain/after-opaque", body: "after"},
			),
		},
		"links": {
			L(
				te{name: "a", typ: tar.TypeDir, mode: 0o755},
				te{name: "a/target", body: "target contents", mode: 0o755},
				hardlink("a/l1", "a/target"),
				hardlink("a/l2", "a/target"),
				te{name: "b", typ: tar.TypeDir, mode: 0o755},
				sym("b/dirlink", "../a"),
				sym("b/abs", "/a/target"),
				te{name: "k/orig", body: "kept group", mode: 0o4750, uid: 3, gid: 4},
				te{name: "m/z-orig", body: "primary moves"},
				te{name: "deep/" + strings.Repeat("n", 120) + "/" + strings.Repeat("m", 150) + "/ünïcode-файл", body: "long name"},
				hardlink("m/a-link", "m/z-orig"),
			),
			L(
				hardlink("b/from-lower", "a/target"),
				hardlink("k/copy", "k/orig"),
				wh("a/.wh.target"),
				te{name: "c", typ: tar.TypeDir, mode: 0o755},
				te{name: "c/x", body: "x"},
			),
			L(
				wh("a/.wh..wh..opq"),
				te{name: "a/fresh", body: "fresh"},
			),
		},
	}
}

// ociLayout writes img as an OCI image layout tagged "test".
func ociLayout(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "oci")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": "test",
	})); err != nil {
		t.Fatal(err)
	}
	return dir
}

func crossImage(t *testing.T, layers [][]te) v1.Image {
	t.Helper()
	base, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{Env: []string{"PATH=/bin"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ls []v1.Layer
	for _, m := range layers {
		ls = append(ls, newLayer(t, m...))
	}
	img, err := mutate.AppendLayers(base, ls...)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	return mutate.ConfigMediaType(img, types.OCIConfigJSON)
}

// fsDesc describes a directory tree on disk, path → "TYPE MODE [UID:GID] INFO",
// and returns its hard-link groups (sorted path lists).
func fsDesc(t *testing.T, root string, owners bool) (map[string]string, [][]string) {
	t.Helper()
	desc := map[string]string{}
	inodes := map[uint64][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		var typ byte
		info := ""
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			typ = tar.TypeReg
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			info = hex.EncodeToString(h[:])
			if st.Nlink > 1 {
				inodes[st.Ino] = append(inodes[st.Ino], rel)
			}
		case syscall.S_IFDIR:
			typ = tar.TypeDir
		case syscall.S_IFLNK:
			typ = tar.TypeSymlink
			info, err = os.Readlink(p)
			if err != nil {
				return err
			}
		case syscall.S_IFIFO:
			typ = tar.TypeFifo
		case syscall.S_IFCHR:
			typ = tar.TypeChar
			info = fmt.Sprintf("%d,%d", unixMajor(st.Rdev), unixMinor(st.Rdev))
		case syscall.S_IFBLK:
			typ = tar.TypeBlock
			info = fmt.Sprintf("%d,%d", unixMajor(st.Rdev), unixMinor(st.Rdev))
		}
		desc[rel] = descLine(typ, int64(st.Mode&0o7777), int(st.Uid), int(st.Gid), owners, info)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var groups [][]string
	for _, g := range inodes {
		slices.Sort(g)
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	return desc, groups
}

func unixMajor(dev uint64) uint64 { return ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xfffff000) }
func unixMinor(dev uint64) uint64 { return (dev & 0xff) | ((dev >> 12) & 0xffffff00) }

func descLine(typ byte, mode int64, uid, gid int, owners bool, info string) string {
	s := fmt.Sprintf("%c %04o", typ, mode)
	if owners {
		s += fmt.Sprintf(" %d:%d", uid, gid)
	}
	if typ == tar.TypeSymlink {
		// Symlink permissions are not meaningful.
		s = fmt.Sprintf("%c", typ)
	}
	return s + " " + info
}

// treeDesc describes the flattened tree the same way, with contents taken
// from a WriteTar stream.
func treeDesc(t *testing.T, tree *Tree, owners bool) (map[string]string, [][]string) {
	t.Helper()
	out, _ := writeTar(t, tree, TarOptions{})
	desc := map[string]string{}
	linked := map[string][]string{}
	for _, e := range tree.Entries() {
		typ, info := e.Type, ""
		switch e.Type {
		case tar.TypeReg:
			info = sha(out[e.Path].body)
		case tar.TypeLink:
			typ = tar.TypeReg
			info = sha(out[e.Linkname].body)
			linked[e.Linkname] = append(linked[e.Linkname], e.Path)
		case tar.TypeSymlink:
			info = e.Linkname
		case tar.TypeChar, tar.TypeBlock:
			info = fmt.Sprintf("%d,%d", e.Devmajor, e.Devminor)
		}
		mode, uid, gid := e.Mode, e.Uid, e.Gid
		if e.Type == tar.TypeLink {
			pe := entriesByPath(tree.Entries())[e.Linkname]
			mode, uid, gid = pe.Mode, pe.Uid, pe.Gid
		}
		desc[e.Path] = descLine(typ, mode, uid, gid, owners, info)
	}
	var groups [][]string
	for first, rest := range linked {
		g := append([]string{first}, rest...)
		slices.Sort(g)
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	return desc, groups
}

func compareDesc(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for _, p := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: missing %s (want %s)", what, p, want[p])
		} else if g != want[p] {
			t.Errorf("%s: %s = %q, want %q", what, p, g, want[p])
		}
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected %s (%s)", what, p, got[p])
		}
	}
}

// TestCrossCheckUmoci unpacks the same images with Debian's umoci and
// compares its rootfs with the flattened tree and its tar stream.
func TestCrossCheckUmoci(t *testing.T) {
	umoci := needTool(t, "umoci")
	root := os.Geteuid() == 0
	for name, layers := range crossImages(t) {
		t.Run(name, func(t *testing.T) {
			img := crossImage(t, layers)
			dir := ociLayout(t, img)
			bundle := filepath.Join(t.TempDir(), "bundle")
			args := []string{"unpack", "--image", dir + ":test", bundle}
			if !root {
				args = []string{"unpack", "--rootless", "--image", dir + ":test", bundle}
			}
			if out, err := exec.Command(umoci, args...).CombinedOutput(); err != nil {
				t.Fatalf("umoci %v: %v\n%s", args, err, out)
			}
			// As root umoci keeps owners; rootless it maps them all to us.
			want, wantGroups := fsDesc(t, filepath.Join(bundle, "rootfs"), root)
			tree, err := Flatten(context.Background(), img, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, gotGroups := treeDesc(t, tree, root)
			compareDesc(t, "flattened vs umoci", got, want)
			if !slices.EqualFunc(gotGroups, wantGroups, slices.Equal) {
				t.Errorf("hard-link groups: got %v, umoci %v", gotGroups, wantGroups)
			}
		})
	}
}

// TestMksquashfsAcceptsStream pipes WriteTar into the real mksquashfs and
// checks the image with unsquashfs: the listing, and an extraction compared
// path by path (contents, hard links) with the flattened tree.
func TestMksquashfsAcceptsStream(t *testing.T) {
	mksquashfs := needTool(t, "mksquashfs")
	unsquashfs := needTool(t, "unsquashfs")
	for name, layers := range crossImages(t) {
		t.Run(name, func(t *testing.T) {
			tree, err := Flatten(context.Background(), crossImage(t, layers), Options{})
			if err != nil {
				t.Fatal(err)
			}
			sqsh := filepath.Join(t.TempDir(), "out.sqsh")
			runMksquashfs(t, mksquashfs, tree, TarOptions{}, sqsh)

			listing := unsquashfsList(t, unsquashfs, sqsh)
			want := map[string]string{}
			es := tree.Entries()
			byPath := entriesByPath(es)
			for _, e := range es {
				path := e.Path
				if e.Type == tar.TypeLink {
					e = byPath[e.Linkname]
				}
				line := fmt.Sprintf("%s %d/%d", modeString(e.Type, e.Mode), e.Uid, e.Gid)
				if e.Type == tar.TypeSymlink {
					line += " -> " + e.Linkname
				}
				if e.Type == tar.TypeReg {
					line += fmt.Sprintf(" %d", e.Size)
				}
				want[path] = line
			}
			compareDesc(t, "unsquashfs -lln vs flattened", listing, want)

			ex := filepath.Join(t.TempDir(), "x")
			if out, err := exec.Command(unsquashfs, "-no-progress", "-d", ex, sqsh).CombinedOutput(); err != nil {
				t.Fatalf("unsquashfs: %v\n%s", err, out)
			}
			root := os.Geteuid() == 0
			gotFS, gotGroups := fsDesc(t, ex, root)
			wantFS, wantGroups := treeDesc(t, tree, root)
			compareDesc(t, "unsquashfs extraction vs flattened", gotFS, wantFS)
			if !slices.EqualFunc(gotGroups, wantGroups, slices.Equal) {
				t.Errorf("hard-link groups: squashfs %v, flattened %v", gotGroups, wantGroups)
			}
		})
	}
}

// TestMksquashfsEnrootOptions checks the stream with the enroot-style
// options (Extra files, emptied /dev, no devices, all root) in mksquashfs.
func TestMksquashfsEnrootOptions(t *testing.T) {
	mksquashfs := needTool(t, "mksquashfs")
	unsquashfs := needTool(t, "unsquashfs")
	tree := flatten(t,
		L(dir("dev"), te{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666}, dir("etc"),
			te{name: "etc/shadow", body: "s", mode: 0o640, gid: 42}, te{name: "p", typ: tar.TypeFifo},
			te{name: "ping", body: "cap", mode: 0o755, xattrs: map[string]string{"user.test": "v", "security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}}),
		L(hardlink("etc/shadow-", "etc/shadow"), te{name: "etc/shadow", body: "new shadow", mode: 0o640, gid: 42}),
	)
	sqsh := filepath.Join(t.TempDir(), "e.sqsh")
	runMksquashfs(t, mksquashfs, tree, TarOptions{
		EmptyDirs: []string{"dev"}, DropDevices: true, AllRoot: true,
		Extra: []Entry{{Path: "etc/rc", Type: tar.TypeReg, Mode: 0o755, Content: []byte("#!/bin/sh\nexec \"$@\"\n")}},
	}, sqsh)
	got := unsquashfsList(t, unsquashfs, sqsh)
	want := map[string]string{
		"dev": "drwxr-xr-x 0/0", "etc": "drwxr-xr-x 0/0", "etc/shadow": "-rw-r----- 0/0 10",
		"etc/shadow-": "-rw-r----- 0/0 1", "etc/rc": "-rwxr-xr-x 0/0 20", "ping": "-rwxr-xr-x 0/0 3",
	}
	compareDesc(t, "enroot-style squashfs", got, want)
}

func runMksquashfs(t *testing.T, mksquashfs string, tree *Tree, opts TarOptions, out string) {
	t.Helper()
	pr, pw := io.Pipe()
	cmd := exec.Command(mksquashfs, "-", out, "-tar", "-noappend", "-root-mode", "755", "-quiet", "-no-progress", "-processors", "1")
	cmd.Stdin = pr
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() {
		err := tree.WriteTar(context.Background(), pw, opts)
		pw.CloseWithError(err)
		werr <- err
	}()
	err := cmd.Wait()
	pr.Close()
	if e := <-werr; e != nil {
		t.Fatalf("WriteTar: %v", e)
	}
	if err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, stderr.String())
	}
}

// unsquashfsList parses `unsquashfs -lln`: path → "MODE UID/GID [-> TARGET] [SIZE]".
func unsquashfsList(t *testing.T, unsquashfs, sqsh string) map[string]string {
	t.Helper()
	out, err := exec.Command(unsquashfs, "-lln", sqsh).Output()
	if err != nil {
		t.Fatalf("unsquashfs -lln: %v", err)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		i := slices.IndexFunc(f, func(s string) bool { return s == "squashfs-root" || strings.HasPrefix(s, "squashfs-root/") })
		if i < 0 || f[i] == "squashfs-root" {
			continue
		}
		p := strings.TrimPrefix(f[i], "squashfs-root/")
		line := f[0] + " " + f[1]
		switch f[0][0] {
		case 'l':
			line += " -> " + strings.Join(f[i+2:], " ")
		case '-':
			if _, err := strconv.Atoi(f[2]); err != nil {
				t.Fatalf("bad listing line %q", sc.Text())
			}
			line += " " + f[2]
		}
		got[p] = line
	}
	return got
}

// modeString renders a type and mode like ls -l.
func modeString(typ byte, mode int64) string {
	tc := map[byte]byte{tar.TypeReg: '-', tar.TypeDir: 'd', tar.TypeSymlink: 'l', tar.TypeChar: 'c', tar.TypeBlock: 'b', tar.TypeFifo: 'p'}[typ]
	b := []byte{tc}
	rwx := "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if mode&(1<<(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	special := func(pos int, bit int64, set, unset byte) {
		if mode&bit != 0 {
			if b[pos] == 'x' {
				b[pos] = set
			} else {
				b[pos] = unset
			}
		}
	}
	special(3, 0o4000, 's', 'S')
	special(6, 0o2000, 's', 'S')
	special(9, 0o1000, 't', 'T')
	if typ == tar.TypeSymlink {
		return "lrwxrwxrwx"
	}
	return string(b)
}
