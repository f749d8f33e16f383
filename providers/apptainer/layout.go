package apptainer

import (
	"archive/tar"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/cachectl/cachectl/providers/rootfs"
)

// Where the runtime's files land in an image's tree, and with which owner
// and mode. Both runtimes write them into the unpacked root file system
// with ordinary file operations (mkdir -p, create or truncate, chmod,
// symlink unless the path exists); what they give for paths the image
// already has, seen with Apptainer 1.5.3 and SingularityCE 4.5.1:
//
//   - A file they write that the image has keeps its owner; its mode
//     becomes the runtime's (0755 for scripts, 0644 for /etc/hosts and
//     /etc/resolv.conf) except for labels.json and env/94-appsbase.sh,
//     which keep the image's mode. The image's /.singularity.d/Singularity
//     moves to /.singularity.d/bootstrap_history/<Apptainer|Singularity>N.
//   - Paths are followed through symlinks: /etc/resolv.conf -> ../run/x
//     writes /run/x, an /etc -> usr/etc link puts the files in /usr/etc,
//     /var -> usr/var gets /usr/var/tmp. Here links are always resolved
//     inside the root (an absolute target from the root, ".." stops at the
//     root); the runtimes resolve absolute targets on the build host
//     (Apptainer) or refuse them (SingularityCE).
//   - A directory path the image has (as anything that resolves) is kept.
//     Where the runtime puts a link (/environment, /singularity, /.run,
//     /.exec, /.shell, /.test), anything but a symlink is kept; a symlink
//     is replaced (SingularityCE) or kept when it resolves (Apptainer,
//     which fails the build on a dangling one; here it is replaced).
//
// Where both runtimes fail the build (a dangling /etc/resolv.conf link, an
// /etc/hosts directory), the path itself is replaced with an empty file.

// maxSymlinks bounds the links followed in one path (Linux's limit).
const maxSymlinks = 40

// imageTree is what layout reads of the flattened image: entries by path
// (lstat semantics) and directory listings (*rootfs.Tree).
type imageTree interface {
	Lookup(p string) (rootfs.Entry, bool)
	Children(p string) []string
}

// treeIndex answers path questions about the image.
type treeIndex struct{ t imageTree }

// get returns the entry at p, without following symlinks.
func (ix treeIndex) get(p string) (rootfs.Entry, bool) {
	if p == "" {
		return rootfs.Entry{Type: tar.TypeDir}, true // the root
	}
	return ix.t.Lookup(p)
}

// resolve returns where p (clean, relative) leads when its symlinks are
// followed inside the root: every parent, and the last component too when
// followLast. Components after a missing one are taken as they are. ok is
// false when a parent is not a directory or there are too many links.
func (ix treeIndex) resolve(p string, followLast bool) (string, bool) {
	todo := strings.Split(p, "/")
	cur := ""
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = parentDir(cur)
			continue
		}
		next := path.Join(cur, c)
		e, ok := ix.get(next)
		if !ok {
			// Missing: the rest cannot hold links.
			return path.Join(append([]string{next}, todo...)...), true
		}
		last := len(todo) == 0
		if e.Type == tar.TypeSymlink && (!last || followLast) {
			if links++; links > maxSymlinks {
				return "", false
			}
			if strings.HasPrefix(e.Linkname, "/") {
				cur = ""
			}
			todo = append(strings.Split(e.Linkname, "/"), todo...)
			continue
		}
		if !last && e.Type != tar.TypeDir {
			return "", false
		}
		cur = next
	}
	return cur, true
}

func parentDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// exists reports whether p resolves (following every link) to an entry.
func (ix treeIndex) exists(p string) bool {
	r, ok := ix.resolve(p, true)
	if !ok {
		return false
	}
	_, found := ix.get(r)
	return found
}

// genFile is one file the runtime writes.
type genFile struct {
	path    string // relative to the root (".singularity.d/runscript")
	mode    int64
	content []byte
	// keepMode: an existing file keeps its mode (written without chmod).
	keepMode bool
}

// layout returns the Extra and IfMissing entries that put the runtime's
// files, directories and links into the tree ix, as the runtime does.
func (m *Meta) layout(ix treeIndex, now time.Time) (extra, ifMissing []rootfs.Entry, err error) {
	const sd = ".singularity.d/"
	static, err := m.rt.staticFiles()
	if err != nil {
		return nil, nil, err
	}
	for _, d := range []string{"dev", "proc", "root", "var/tmp", "tmp", "etc", "sys", "home", sd + "libs"} {
		r, ok := ix.resolve(d, true)
		if !ok {
			continue // a parent is not a directory: nothing can be made there
		}
		ifMissing = append(ifMissing, rootfs.Entry{Path: r, Type: tar.TypeDir, Mode: 0o755, ModTime: now})
	}
	// write puts f at path at; fresh: as a new file even where the image
	// has one.
	write := func(f genFile, at string, fresh bool) {
		e := rootfs.Entry{Path: at, Type: tar.TypeReg, Mode: f.mode, ModTime: now, Content: f.content}
		if old, ok := ix.get(at); ok && old.Type == tar.TypeReg && !fresh {
			e.Uid, e.Gid = old.Uid, old.Gid
			if f.keepMode {
				e.Mode = old.Mode
			}
		}
		extra = append(extra, e)
	}
	// /etc/hosts and /etc/resolv.conf, through links, into an existing
	// directory (or the /etc made above).
	etc, _ := ix.resolve("etc", true)
	for _, p := range []string{"etc/hosts", "etc/resolv.conf"} {
		r, ok := ix.resolve(p, true)
		old, exists := ix.get(r)
		dir, dirExists := ix.get(parentDir(r))
		if !ok || exists && old.Type != tar.TypeReg || !(dirExists && dir.Type == tar.TypeDir || parentDir(r) == etc) {
			r = p // the runtimes fail here: replace the path itself
		}
		write(genFile{path: p, mode: 0o644}, r, false)
	}
	// The image's definition goes to bootstrap_history (a hard link keeps
	// its inode, owner and mode).
	movedDef := false
	if old, ok := ix.get(sd + "Singularity"); ok && old.Type == tar.TypeReg {
		n := len(ix.t.Children(sd + "bootstrap_history"))
		extra = append(extra, rootfs.Entry{
			Path: fmt.Sprintf("%sbootstrap_history/%s%d", sd, m.rt.historyName, n), Type: tar.TypeLink, Linkname: sd + "Singularity",
		})
		movedDef = true
	}
	for _, f := range static {
		write(genFile{path: sd + f.path, mode: 0o755, content: f.content, keepMode: f.path == "env/94-appsbase.sh"}, sd+f.path, false)
	}
	for _, f := range []genFile{
		{path: sd + "env/10-docker2singularity.sh", mode: 0o755, content: []byte(m.EnvScript)},
		{path: sd + "runscript", mode: 0o755, content: []byte(m.Runscript)},
		{path: sd + "labels.json", mode: 0o644, content: m.LabelsJSON, keepMode: true},
		{path: sd + "Singularity", mode: 0o644, content: []byte(m.Deffile)},
	} {
		// The runtime writes a new definition after moving the image's.
		write(f, f.path, movedDef && f.path == sd+"Singularity")
	}
	for _, l := range []struct{ path, target string }{
		{"singularity", sd + "runscript"},
		{".run", sd + "actions/run"},
		{".exec", sd + "actions/exec"},
		{".test", sd + "actions/test"},
		{".shell", sd + "actions/shell"},
		{"environment", sd + "env/90-environment.sh"},
	} {
		e := rootfs.Entry{Path: l.path, Type: tar.TypeSymlink, Linkname: l.target, Mode: 0o777, ModTime: now}
		old, ok := ix.get(l.path)
		switch {
		case !ok:
			ifMissing = append(ifMissing, e)
		case old.Type == tar.TypeSymlink && (m.rt.replacesLinks || !ix.exists(l.path)):
			extra = append(extra, e)
		}
	}
	return extra, ifMissing, nil
}
