package main

// Victims of the attack tests (attack_test.go): root-owned files and
// directories outside the cache root, snapshotted (content, mode, owner,
// the names in each directory) and watched with inotify, so that a change
// that was made and undone while cachectl ran is seen too.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// victimFile creates a root-owned file with content and mode (parents
// root-owned 0755 unless they exist).
func victimFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(content), mode))
	must(t, os.Chmod(path, mode))
	must(t, os.Lchown(path, 0, 0))
}

// victimDir creates a root-owned directory with mode.
func victimDir(t testing.TB, path string, mode os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(path, 0o755))
	must(t, os.Chmod(path, mode))
	must(t, os.Lchown(path, 0, 0))
}

// nodeState is what a snapshot records of one file system entry.
type nodeState struct {
	mode     fs.FileMode
	uid, gid uint32
	size     int64
	mtime    time.Time // regular files
	sum      string    // regular files
	link     string    // symlinks
	entries  string    // directories: the sorted names
}

func (n nodeState) String() string {
	s := fmt.Sprintf("%v %d:%d", n.mode, n.uid, n.gid)
	switch {
	case n.mode.IsRegular():
		s += fmt.Sprintf(" %d bytes sha256:%.12s mtime %s", n.size, n.sum, n.mtime.Format(time.RFC3339Nano))
	case n.mode&fs.ModeSymlink != 0:
		s += " → " + n.link
	case n.mode.IsDir():
		s += " [" + n.entries + "]"
	}
	return s
}

// snapshot records every entry under the given paths (not following
// symlinks), skipping entries named in skip (e.g. ".cachectl").
func snapshot(t testing.TB, skip map[string]bool, paths ...string) map[string]nodeState {
	t.Helper()
	snap := map[string]nodeState{}
	for _, root := range paths {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			if skip[d.Name()] && p != root {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			n := nodeState{mode: fi.Mode(), uid: st.Uid, gid: st.Gid, size: fi.Size()}
			switch {
			case fi.Mode().IsRegular():
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				h := sha256.Sum256(b)
				n.sum, n.mtime = hex.EncodeToString(h[:]), fi.ModTime()
			case fi.Mode()&fs.ModeSymlink != 0:
				n.link, _ = os.Readlink(p)
			case fi.IsDir():
				ents, err := os.ReadDir(p)
				if err != nil {
					return err
				}
				var names []string
				for _, e := range ents {
					if !skip[e.Name()] {
						names = append(names, e.Name())
					}
				}
				n.entries = strings.Join(names, " ")
				n.size = 0 // directory sizes grow and never shrink on ext4
			}
			snap[p] = n
			return nil
		})
		if err != nil {
			t.Fatalf("snapshot %s: %v", root, err)
		}
	}
	return snap
}

// diffSnapshots lists what changed between two snapshots.
func diffSnapshots(before, after map[string]nodeState) []string {
	var out []string
	for p, b := range before {
		a, ok := after[p]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: removed (was %s)", p, b))
		case a != b:
			out = append(out, fmt.Sprintf("%s: %s → %s", p, b, a))
		}
	}
	for p, a := range after {
		if _, ok := before[p]; !ok {
			out = append(out, fmt.Sprintf("%s: appeared (%s)", p, a))
		}
	}
	sort.Strings(out)
	return out
}

// victims are root-owned files and directories outside the cache root:
// a snapshot to compare with and inotify watches on every directory, which
// also catch what was changed and changed back (a work directory created
// and removed, a chmod undone) while cachectl ran.
type victims struct {
	t     testing.TB
	paths []string
	snap  map[string]nodeState
	fd    int
	wds   map[int32]string
	// orig and data are the first snapshot and the files' bytes, for restore.
	orig map[string]nodeState
	data map[string][]byte
}

const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_ATTRIB |
	unix.IN_MODIFY | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// watchVictims snapshots the victim paths and watches their directories.
func watchVictims(t testing.TB, paths ...string) *victims {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	must(t, err)
	v := &victims{t: t, paths: paths, fd: fd, wds: map[int32]string{}, data: map[string][]byte{}}
	t.Cleanup(func() { unix.Close(fd) })
	v.rearm()
	v.orig = v.snap
	for p, n := range v.orig {
		if n.mode.IsRegular() {
			b, err := os.ReadFile(p)
			must(t, err)
			v.data[p] = b
		}
	}
	return v
}

// restore puts the victims back as they were when watched (after an
// attack got through, so that the next step starts from the same state)
// and rearms.
func (v *victims) restore() {
	v.t.Helper()
	now := snapshot(v.t, nil, v.paths...)
	var extra, orig []string
	for p := range now {
		if _, ok := v.orig[p]; !ok {
			extra = append(extra, p)
		}
	}
	for p := range v.orig {
		orig = append(orig, p)
	}
	sort.Slice(extra, func(i, j int) bool { return len(extra[i]) > len(extra[j]) })
	for _, p := range extra {
		must(v.t, os.RemoveAll(p))
	}
	sort.Strings(orig) // parents first
	for _, p := range orig {
		n := v.orig[p]
		switch {
		case n.mode.IsDir():
			if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
				os.RemoveAll(p)
				must(v.t, os.Mkdir(p, 0o700))
			}
		case n.mode.IsRegular():
			os.RemoveAll(p)
			must(v.t, os.WriteFile(p, v.data[p], 0o600))
			must(v.t, os.Chtimes(p, n.mtime, n.mtime))
		}
		must(v.t, os.Lchown(p, int(n.uid), int(n.gid)))
		must(v.t, os.Chmod(p, n.mode))
	}
	v.rearm()
	if d := diffSnapshots(v.orig, v.snap); len(d) > 0 {
		v.t.Fatalf("could not restore the victims: %v", d)
	}
}

// rearm re-snapshots and (re)watches every victim directory, forgetting
// pending events (after the test restored the victims itself).
func (v *victims) rearm() {
	v.t.Helper()
	for wd := range v.wds {
		unix.InotifyRmWatch(v.fd, uint32(wd))
	}
	v.wds = map[int32]string{}
	v.snap = snapshot(v.t, nil, v.paths...)
	for p, n := range v.snap {
		if n.mode.IsDir() {
			wd, err := unix.InotifyAddWatch(v.fd, p, watchMask|unix.IN_DONT_FOLLOW)
			must(v.t, err)
			v.wds[int32(wd)] = p
		}
	}
	v.events() // drain
}

// fsEvent is one inotify event on a victim.
type fsEvent struct {
	path string
	mask uint32
}

func (ev fsEvent) String() string { return ev.path + ": " + maskString(ev.mask) }

// events drains the pending inotify events.
func (v *victims) events() []fsEvent {
	var out []fsEvent
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(v.fd, buf)
		if n <= 0 || err != nil {
			return out
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := ""
			if ev.Len > 0 {
				name = strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_IGNORED != 0 {
				continue
			}
			out = append(out, fsEvent{filepath.Join(v.wds[ev.Wd], name), ev.Mask})
		}
	}
}

func maskString(m uint32) string {
	var s []string
	for _, f := range []struct {
		bit  uint32
		name string
	}{{unix.IN_CREATE, "created"}, {unix.IN_DELETE, "deleted"}, {unix.IN_MOVED_FROM, "moved away"},
		{unix.IN_MOVED_TO, "moved in"}, {unix.IN_ATTRIB, "attributes changed"}, {unix.IN_MODIFY, "written"},
		{unix.IN_DELETE_SELF, "itself deleted"}, {unix.IN_MOVE_SELF, "itself moved"}} {
		if m&f.bit != 0 {
			s = append(s, f.name)
		}
	}
	if m&unix.IN_ISDIR != 0 {
		s = append(s, "(directory)")
	}
	return strings.Join(s, ", ")
}

// harm returns every change to the victims since the last rearm: snapshot
// differences first, then the inotify events.
func (v *victims) harm() []string {
	v.t.Helper()
	_, details := v.harmKinds()
	return details
}

// harmKinds classifies what happened to the victims since the last rearm
// ("overwritten": a victim file's content or inode replaced; "chmod/chown":
// its mode or owner; "created": an entry appeared in a victim directory,
// even for a moment; "deleted") and describes it: snapshot differences
// first, then the inotify events.
func (v *victims) harmKinds() (kinds map[string]bool, details []string) {
	v.t.Helper()
	after := snapshot(v.t, nil, v.paths...)
	kinds = map[string]bool{}
	for p, b := range v.snap {
		a, ok := after[p]
		switch {
		case !ok:
			kinds["deleted"] = true
		case b.mode.IsRegular() && (a.sum != b.sum || a.size != b.size):
			kinds["overwritten"] = true
		case a.mode != b.mode || a.uid != b.uid || a.gid != b.gid:
			kinds["chmod/chown"] = true
		}
	}
	for p := range after {
		if _, ok := v.snap[p]; !ok {
			kinds["created"] = true
		}
	}
	evs := v.events()
	for _, ev := range evs {
		_, existed := v.snap[ev.path]
		switch {
		case ev.mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 && existed:
			kinds["overwritten"] = true // renamed over
		case ev.mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
			kinds["created"] = true
		case ev.mask&(unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_DELETE_SELF) != 0 && existed:
			kinds["deleted"] = true
		case ev.mask&unix.IN_MODIFY != 0:
			kinds["overwritten"] = true
		case ev.mask&unix.IN_ATTRIB != 0:
			kinds["chmod/chown"] = true
		}
	}
	details = diffSnapshots(v.snap, after)
	for _, ev := range evs {
		details = append(details, "inotify: "+ev.String())
	}
	return kinds, details
}

// check fails the test when a victim changed, with what happened, and
// then restores the victims for the next step.
func (v *victims) check(when string) bool {
	v.t.Helper()
	h := v.harm()
	if len(h) > 0 {
		v.t.Errorf("%s: victims outside the cache root were changed:\n  %s", when, strings.Join(h, "\n  "))
		v.restore()
		return false
	}
	return true
}
