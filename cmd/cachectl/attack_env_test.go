package main

// The set-up of the attack tests (attack_test.go, issue 9): a real
// unprivileged member of the cache group, a root-owned working directory
// both can reach, the real cachectl binary run as root. The victims are in
// victims_test.go, the attacker's program in attack_helper_test.go.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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

// readyOutput collects a background step's output and says when a line
// "ready" came (a step that must be in place before cachectl runs).
type readyOutput struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	once  sync.Once
	ready chan struct{}
}

func (o *readyOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.buf.Write(p)
	if strings.Contains(o.buf.String(), "ready\n") {
		o.once.Do(func() { close(o.ready) })
	}
	return n, err
}

func (o *readyOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// backgroundReady is background for a step that prints "ready" once it is
// in place (a watch set): it returns once that line came, and fails the
// test if it does not within 30 s.
func (e *attackEnv) backgroundReady(args ...string) (stop func() string) {
	e.t.Helper()
	stop, out := e.startBackground(args...)
	select {
	case <-out.ready:
	case <-time.After(30 * time.Second):
		e.t.Fatalf("attacker step %v not ready after 30 s:\n%s", args, stop())
	}
	return stop
}

// background starts a long attacker step (a racing loop); stop ends it
// (SIGTERM, then waits) and returns its output.
func (e *attackEnv) background(args ...string) (stop func() string) {
	e.t.Helper()
	stop, _ = e.startBackground(args...)
	return stop
}

func (e *attackEnv) startBackground(args ...string) (stop func() string, out *readyOutput) {
	e.t.Helper()
	c := e.attackerCmd(args...)
	out = &readyOutput{ready: make(chan struct{})}
	c.Stdout, c.Stderr = out, out
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
	return stop, out
}
