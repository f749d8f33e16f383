package main

// The set-up of the attack tests (attack_test.go, issue 9): a real
// unprivileged member of the cache group, a root-owned working directory
// both can reach, the real cachectl binary run as root, victims outside the
// cache root watched with inotify and compared byte for byte, mode for mode,
// owner for owner.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The test user and group. They are created (idempotently) the first time
// an attack test runs as root and left in place afterwards: a system
// account without a home, a password or a login shell, in a group that
// owns nothing outside the tests' temporary directories.
const (
	attackerUser  = "cachectl-attacker"
	attackerGroup = "cachectl-hpc"
)

var (
	attackerOnce sync.Once
	attackerErr  error
	attackerUID  int
	attackerGID  int
)

// ensureAttacker creates the group and the user when missing (groupadd -f,
// useradd --system) and returns their ids.
func ensureAttacker() (uid, gid int, err error) {
	attackerOnce.Do(func() {
		attackerUID, attackerGID, attackerErr = createAttacker()
	})
	return attackerUID, attackerGID, attackerErr
}

func createAttacker() (int, int, error) {
	var last error
	for try := 0; try < 5; try++ { // another test process may hold /etc/passwd's lock
		if _, err := user.LookupGroup(attackerGroup); err != nil {
			if out, err := exec.Command("groupadd", "-f", "--system", attackerGroup).CombinedOutput(); err != nil {
				last = fmt.Errorf("groupadd %s: %v: %s", attackerGroup, err, out)
				time.Sleep(200 * time.Millisecond)
				continue
			}
		}
		if _, err := user.Lookup(attackerUser); err != nil {
			out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
				"--shell", "/usr/sbin/nologin", "--gid", attackerGroup, attackerUser).CombinedOutput()
			if err != nil {
				last = fmt.Errorf("useradd %s: %v: %s", attackerUser, err, out)
				time.Sleep(200 * time.Millisecond)
				continue
			}
		}
		u, err := user.Lookup(attackerUser)
		if err != nil {
			last = err
			continue
		}
		g, err := user.LookupGroup(attackerGroup)
		if err != nil {
			last = err
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(g.Gid)
		if uid == 0 {
			return 0, 0, fmt.Errorf("%s has uid 0", attackerUser)
		}
		return uid, gid, nil
	}
	return 0, 0, last
}

// attackEnv is one attack test's world.
type attackEnv struct {
	t      *testing.T
	base   string // root-owned 0755, removed at the end
	uid    int    // the attacker
	gid    int    // the cache group (the attacker's primary group)
	bin    string // the cachectl binary (the re-executed test binary)
	helper string // the test binary, reachable by the attacker (attack_helper_test.go)
	store  string
	spec   string
	// limit bounds each cachectl run (default two minutes).
	limit time.Duration
}

// newAttackEnv skips unless running as root, creates the test user and a
// fresh working directory that the user can traverse.
func newAttackEnv(t *testing.T) *attackEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("attack tests skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("attack tests need root: they run cachectl as root while a real unprivileged member of the cache group (created with useradd) attacks; run the tests as root")
	}
	uid, gid, err := ensureAttacker()
	if err != nil {
		t.Fatalf("creating the test user %s in group %s: %v", attackerUser, attackerGroup, err)
	}
	bin, err := exec.LookPath("cachectl")
	if err != nil {
		t.Fatalf("cachectl test binary not on PATH: %v", err)
	}
	base, err := os.MkdirTemp("", "cachectl-attack-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	must(t, os.Chmod(base, 0o755))
	for d := filepath.Dir(base); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Fatalf("the test user cannot reach %s: %s is not searchable by others; set TMPDIR to a directory they can traverse (e.g. /tmp)", base, d)
		}
		if d == "/" {
			break
		}
	}
	e := &attackEnv{t: t, base: base, uid: uid, gid: gid, bin: bin, store: filepath.Join(base, "store"), spec: filepath.Join(base, "spec.hcl")}
	e.helper = e.installHelper()
	return e
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newPlainEnv is an environment without the test user, for tests that do
// not need root (the leftovers of killed commands).
func newPlainEnv(t *testing.T) *attackEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	bin, err := exec.LookPath("cachectl")
	if err != nil {
		t.Fatalf("cachectl test binary not on PATH: %v", err)
	}
	base := t.TempDir()
	return &attackEnv{t: t, base: base, uid: -1, gid: -1, bin: bin, store: filepath.Join(base, "store"), spec: filepath.Join(base, "spec.hcl")}
}

// installHelper makes the test binary executable by the attacker: a hard
// link (or a copy) in a directory the attacker can traverse.
func (e *attackEnv) installHelper() string {
	self, err := os.Executable()
	must(e.t, err)
	dir := filepath.Join(e.base, "bin")
	must(e.t, os.Mkdir(dir, 0o755))
	p := filepath.Join(dir, "attack-helper")
	if err := os.Link(self, p); err != nil {
		in, err := os.Open(self)
		must(e.t, err)
		defer in.Close()
		out, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
		must(e.t, err)
		_, err = io.Copy(out, in)
		must(e.t, err)
		must(e.t, out.Close())
	}
	must(e.t, os.Chmod(p, 0o755))
	return p
}

// path joins the working directory and rel.
func (e *attackEnv) path(rel ...string) string {
	return filepath.Join(append([]string{e.base}, rel...)...)
}

// writeSpec writes the spec file (root-owned 0644).
func (e *attackEnv) writeSpec(text string) {
	e.t.Helper()
	must(e.t, os.WriteFile(e.spec, []byte(text), 0o644))
}

// sifCache returns the spec text of an apptainer cache in the README's
// natural shared set-up: group-owned by the cache group, directories
// 2775, prune on.
func sifCache(name, root, fileMode string, images []string) string {
	var q []string
	for _, i := range images {
		q = append(q, strconv.Quote(i))
	}
	return fmt.Sprintf(`
cache %q {
  runtime   = "apptainer"
  root      = %q
  images    = [%s]
  owner     = "root"
  group     = %q
  file_mode = %q
  dir_mode  = "2775"
  prune     = true
}
`, name, root, strings.Join(q, ", "), attackerGroup, fileMode)
}

// result is one cachectl run.
type result struct {
	args []string
	out  string
	code int
	took time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("cachectl %s → exit %d after %s:\n%s", strings.Join(r.args, " "), r.code, r.took.Round(time.Millisecond), r.out)
}

// cachectl runs the real binary as root with the spec and store of the
// environment (bounded by e.limit).
func (e *attackEnv) cachectl(args ...string) result {
	e.t.Helper()
	return e.cachectlCtx(context.Background(), args...)
}

func (e *attackEnv) cachectlCmd(ctx context.Context, args ...string) (*exec.Cmd, *bytes.Buffer) {
	full := append([]string{"-f", e.spec}, args...)
	c := exec.CommandContext(ctx, e.bin, full...)
	c.Env = append(os.Environ(), "CACHECTL_STORE="+e.store, "NO_COLOR=1")
	c.Dir = e.base
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	return c, &out
}

func (e *attackEnv) cachectlCtx(ctx context.Context, args ...string) result {
	e.t.Helper()
	limit := e.limit
	if limit == 0 {
		limit = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	c, out := e.cachectlCmd(ctx, args...)
	start := time.Now()
	err := c.Run()
	r := result{args: args, out: out.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		e.t.Fatalf("running cachectl %v: %v", args, err)
	}
	return r
}

// checkClean reports a panic, a stack trace or exit code 2 (monitoring
// reads it as "drift") from a command that is not plan/report with
// --detailed-exitcode, and any exit code outside want.
func checkClean(t testing.TB, r result, want ...int) {
	t.Helper()
	if strings.Contains(r.out, "panic:") || strings.Contains(r.out, "goroutine ") {
		t.Errorf("cachectl panicked:\n%s", r)
		return
	}
	for _, w := range want {
		if r.code == w {
			return
		}
	}
	t.Errorf("exit code %d, want one of %v:\n%s", r.code, want, r)
}

// attacker runs the helper program (attack_helper_test.go) as the test
// user with the cache group.
func (e *attackEnv) attackerCmd(args ...string) *exec.Cmd {
	c := exec.Command(e.helper, args...)
	c.Env = []string{attackHelperEnv + "=1", "PATH=/usr/bin:/bin", "HOME=/nonexistent"}
	c.Dir = "/"
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
		Uid: uint32(e.uid), Gid: uint32(e.gid), Groups: []uint32{uint32(e.gid)},
	}}
	return c
}

// attack runs one attacker step and fails the test when it fails: the
// attack must be possible for the test to mean anything.
func (e *attackEnv) attack(args ...string) string {
	e.t.Helper()
	c := e.attackerCmd(args...)
	out, err := c.CombinedOutput()
	if err != nil {
		e.t.Fatalf("attacker step %v failed: %v\n%s", args, err, out)
	}
	return string(out)
}

// attackStdin runs an attacker step with data on stdin.
func (e *attackEnv) attackStdin(data []byte, args ...string) {
	e.t.Helper()
	c := e.attackerCmd(args...)
	c.Stdin = bytes.NewReader(data)
	if out, err := c.CombinedOutput(); err != nil {
		e.t.Fatalf("attacker step %v failed: %v\n%s", args, err, out)
	}
}

// background starts a long attacker step (a racing loop); stop ends it
// (SIGTERM, then waits) and returns its output.
func (e *attackEnv) background(args ...string) (stop func() string) {
	e.t.Helper()
	c := e.attackerCmd(args...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	must(e.t, c.Start())
	var once sync.Once
	var res string
	stop = func() string {
		once.Do(func() {
			c.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				c.Process.Kill()
				<-done
			}
			res = out.String()
		})
		return res
	}
	e.t.Cleanup(func() { stop() })
	return stop
}

// ---- victims ----

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
