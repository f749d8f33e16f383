package main

// Attack tests, third round: what the first two rounds (attack_test.go,
// attack2_*_test.go) did not try. Same set-up (attack_env_test.go):
// cachectl runs as root, a real unprivileged member of the cache group
// does what such a member can do, victims are checked byte for byte,
// mode for mode and owner for owner.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cachectl/cachectl/providers/slurm/slurmtest"
	"github.com/cachectl/cachectl/spec"
)

// The attacker's extra steps of this round (attack_helper_test.go
// dispatches unknown commands to attack2Commands). Registered from a
// package variable's initialiser: that runs before every init function,
// so before the helper's init dispatches.
var _ = func() bool {
	// link OLD NEW: a hard link (the kernel's protected_hardlinks lets a
	// user link a file they own, or one they may read and write).
	attack2Commands["link"] = func(a []string) error { return os.Link(a[0], a[1]) }
	attack2Commands["rundirswap"] = runDirSwap
	// mkfifo PATH: a named pipe, mode 0644.
	attack2Commands["mkfifo"] = func(a []string) error { return unix.Mkfifo(a[0], 0o644) }
	return true
}()

// fsSysctl reports a setting of the kernel's fs.* (protected_hardlinks,
// protected_symlinks), "unknown" when it cannot be read.
func fsSysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/fs/" + name)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// TestAttackImportHardLink: "cachectl import CACHE FILE REF" (and
// manage-singularity-cache -i) takes FILE as a user hands it over,
// without asking whether the file has a second name elsewhere:
//
//   - in-place: FILE already sits at the artifact's final path, and import
//     adopts it there: it chowns it to the cache's owner and group and
//     chmods it to file_mode. The member hard-links another user's file
//     into a directory of the root (fs.protected_hardlinks=1 still lets
//     them link a file they may read and write: here a teammate's SIF in
//     a project directory, mode 0660, group the cache group) at the name
//     of an image the spec lists, and asks the admin to import "their file
//     in place": the teammate's file then belongs to root and is readable
//     by everyone.
//   - copy: FILE is a hard link in the member's own drop directory, and
//     import copies it into the cache with file_mode 0644. With
//     fs.protected_hardlinks=0 the member can link any file whose
//     directory they can search, also one they may not read (another
//     user's 0600 SIF): root's import then publishes it. (With
//     protected_hardlinks=1, as here, the member can link only what they
//     may read; the test shows the mechanism with the teammate's 0660
//     file.)
//
// adopt refuses a file with a second link ("a later chmod or replacement
// would change it too", docs/security.md); import must refuse it too
// (exit 1, saying which file and why), and change and place nothing.
func TestAttackImportHardLink(t *testing.T) {
	const teammate = 65534 // nobody: another user, not the attacker
	setUp := func(t *testing.T) (e *attackEnv, root, model string, v *victims) {
		e = newAttackEnv(t)
		root = e.path("cache", "sif")
		for _, d := range []string{root, filepath.Join(root, "crafted")} {
			victimDir(t, d, 0o775)
			must(t, os.Chown(d, 0, e.gid))
		}
		e.writeSpec(sifCache("sif", root, "0644", []string{"crafted/app:1"}))
		// The teammate's project directory and SIF (group-shared, not for
		// everyone).
		project := e.path("projects", "bob")
		victimDir(t, project, 0o755)
		must(t, os.Chown(project, teammate, teammate))
		model = filepath.Join(project, "model.sif")
		craftedSIF(t, model, func([]byte) {})
		must(t, os.Chown(model, teammate, e.gid))
		must(t, os.Chmod(model, 0o660))
		return e, root, model, watchVictims(t, project)
	}
	refused := func(t *testing.T, r result) {
		t.Helper()
		checkClean(t, r, 0, 1)
		t.Logf("import: exit %d: %s", r.code, errorLine(r.out))
		if r.code != 1 || !strings.Contains(r.out, "hard link") {
			t.Errorf("import of a file with a second hard link (fs.protected_hardlinks=%s) was not refused as such:\n%s", fsSysctl("protected_hardlinks"), r)
		}
	}

	t.Run("in-place", func(t *testing.T) {
		e, root, model, v := setUp(t)
		placed := filepath.Join(root, "crafted", "app:1")
		e.attack("link", model, placed)
		r := e.cachectl("import", "sif", placed, "crafted/app:1")
		v.check(fmt.Sprintf("import in place of a hard link to the teammate's file (fs.protected_hardlinks=%s)", fsSysctl("protected_hardlinks")))
		refused(t, r)
	})

	t.Run("copy", func(t *testing.T) {
		e, root, model, v := setUp(t)
		drop := e.path("drop")
		must(t, os.Mkdir(drop, 0o755))
		must(t, os.Chown(drop, e.uid, e.gid))
		handed := filepath.Join(drop, "app.sif")
		e.attack("link", model, handed)
		for _, r := range []result{
			e.cachectl("import", "sif", handed, "crafted/app:1"),
			e.compat("manage-singularity-cache", "-i", handed, "crafted/app:1"),
		} {
			v.check("import of a hard link to the teammate's file")
			refused(t, r)
			if _, err := os.Lstat(filepath.Join(root, "crafted", "app:1")); err == nil {
				t.Fatalf("import placed a copy of the teammate's file in the cache")
			}
		}
	})
}

// errorLine returns the "Error: …" line of a command's output ("" when
// there is none).
func errorLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "Error:") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// runDirSwap LOGDIR VICTIM DURATION: the member watches a Slurm log
// directory they may write (inotify) and, when cachectl makes a new run
// directory there, renames it aside and makes their own directory of the
// same name, holding a symbolic link to VICTIM under the name of the job's
// log (stage.log, and the first logs of a build array: JOBID_0.log for
// the next job ids). cachectl then writes its task list and script into
// the member's directory and submits the job, whose output Slurm opens as
// root at the path given. It prints what it did.
func runDirSwap(a []string) error {
	logDir, victim := a[0], a[1]
	stop, err := until(a[2])
	if err != nil {
		return err
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, logDir, unix.IN_CREATE|unix.IN_ONLYDIR); err != nil {
		return err
	}
	fmt.Println("ready")
	n := 0
	buf := make([]byte, 4096)
	for !stopped(stop) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if k, _ := unix.Poll(pfd, 10); k <= 0 {
			continue
		}
		k, err := unix.Read(fd, buf)
		if err != nil || k <= 0 {
			continue
		}
		for off := 0; off+unix.SizeofInotifyEvent <= k; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_ISDIR == 0 || strings.HasSuffix(name, ".moved") {
				continue
			}
			d := filepath.Join(logDir, name)
			if err := os.Rename(d, d+".moved"); err != nil {
				fmt.Printf("rename %s: %v\n", name, err)
				continue
			}
			if err := os.Mkdir(d, 0o777); err != nil {
				fmt.Printf("mkdir %s: %v\n", name, err)
				continue
			}
			os.Chmod(d, 0o777)
			os.Symlink(victim, filepath.Join(d, "stage.log"))
			n++
			fmt.Printf("swapped %s\n", name)
		}
	}
	fmt.Printf("run directories swapped: %d\n", n)
	return nil
}

// TestAttackSlurmLogDir: the Slurm executor and "cachectl stage" make each
// job's run directory (task list, batch script, logs) under the spec's
// log_dir with os.Mkdir, write into it and hand its paths to sbatch —
// whatever log_dir's owner and mode. A site that keeps its cachectl logs
// in a directory of the cache group (chgrp hpc, 0775 or 2775, as it
// does its caches) lets a member rename each new run directory aside and put their
// own in its place, with a symbolic link at the job's output file: Slurm
// (slurmstepd, as root, the job's submitter) opens --output=RUNDIR/stage.log
// through it and truncates and writes any file on the host — here a
// root-owned victim. (The member may also replace the batch script
// before sbatch reads it: the job then runs their script as root on every
// node.)
//
// stage (and apply --executor slurm) must refuse a log directory that
// others may write (or one owned by another user), before anything is
// submitted, saying which directory and how to fix it.
func TestAttackSlurmLogDir(t *testing.T) {
	srv := newAttackRegistry(t)
	ref := srv.Ref("logdir/app:1")
	pushSmall(t, ref, 300)
	e := newAttackEnv(t)
	cluster := slurmtest.Start(t, 1, 1)
	t.Setenv("SLURM_CONF", cluster.Conf)

	logDir := e.path("logs")
	victimDir(t, logDir, 0o775)
	must(t, os.Chown(logDir, 0, e.gid))
	root := e.path("cache", "sqsh")
	e.writeSpec(fmt.Sprintf(`
cachectl {
  slurm {
    log_dir        = %q
    poll_interval  = "200ms"
    result_timeout = "5s"
  }
}

cache "sqsh" {
  runtime   = "enroot"
  root      = %q
  images    = [%q]
  owner     = "root"
  group     = %q
  file_mode = "0644"
  dir_mode  = "2755"
}

node_cache "local" {
  from      = "sqsh"
  root      = %q
  partition = %q
}
`, logDir, root, ref, attackerGroup, e.path("local", "%n"), cluster.Partition))
	e.mustApply()

	victim := e.path("victim")
	victimDir(t, victim, 0o755)
	victimFile(t, filepath.Join(victim, "shadow"), "root:$6$not-for-anyone$:19000:0:99999:7:::\n", 0o600)
	v := watchVictims(t, victim)

	stop := e.backgroundReady("rundirswap", logDir, filepath.Join(victim, "shadow"), "60s")
	r := e.cachectl("stage")
	t.Logf("member: %s", strings.TrimSpace(stop()))
	checkClean(t, r, 0, 1)
	t.Logf("stage: exit %d: %s", r.code, errorLine(r.out))
	if !v.check("stage with a log_dir the cache group may write") {
		t.Logf("%s", r)
	}
	if r.code == 0 {
		t.Errorf("stage ran with log_dir %s writable by group %s (mode 0775):\n%s", logDir, attackerGroup, r)
	} else if !strings.Contains(r.out, logDir) {
		t.Errorf("the refusal should name the log directory %s:\n%s", logDir, r)
	}

	// apply --executor slurm makes its run directories there too: it
	// must refuse before it changes anything.
	must(t, os.RemoveAll(root))
	r = e.cachectl(append(applyArgs, "--executor", "slurm")...)
	checkClean(t, r, 0, 1)
	t.Logf("apply --executor slurm: exit %d: %s", r.code, errorLine(r.out))
	if r.code == 0 || !strings.Contains(r.out, logDir) {
		t.Errorf("apply --executor slurm with log_dir %s writable by group %s should refuse, naming it:\n%s", logDir, attackerGroup, r)
	}
	if _, err := os.Lstat(root); err == nil {
		t.Errorf("the refused apply created %s", root)
	}
	v.check("apply --executor slurm with a log_dir the cache group may write")
}

// stageTask writes a stage job's task file (as stage does: root's, 0600,
// in a root-only run directory) for node cache "local" of the enroot cache
// at shared, with the local root and the wanted artifact, and runs
// "cachectl stage-task" as the node's Slurm task would (SLURMD_NODENAME
// n1).
func (e *attackEnv) stageTask(shared, local, name, ref string) result {
	e.t.Helper()
	run := e.path(fmt.Sprintf("run-%d", time.Now().UnixNano()))
	must(e.t, os.Mkdir(run, 0o700))
	file := filepath.Join(run, "stage.json")
	sf := map[string]any{
		"version": 1, "node_cache": "local", "shared_root": shared, "runtime": "enroot", "root": local,
		"uid": 0, "gid": e.gid, "file_mode": "0644", "dir_mode": "0755",
		"wanted": []map[string]string{{"name": name, "ref": ref}},
	}
	must(e.t, os.WriteFile(file, marshalJSON(e.t, sf), 0o600))
	c, out := e.cachectlCmd(e.t.Context(), "stage-task", "--file", file)
	c.Env = append(c.Env, "SLURMD_NODENAME=n1")
	err := c.Run()
	r := result{args: []string{"stage-task", "--file", file}, out: out.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// TestAttackNodeRootSquat: a node cache's root is made by "cachectl stage"
// on each node's local disk, typically under a scratch directory every
// user may write (/local, /scratch, /tmp: mode 1777). Wherever it does
// not exist yet (a new or reinstalled node), a user of that node can make
// it first:
//
//   - squat: their own directory at the root's path. The stage task (root)
//     opens it, trusts it as "the root directory's owner", and places the
//     image there; its owner then replaces the image at will, and every
//     job on the node that runs srun --container-image=<local root>/….sqsh
//     (what "cachectl list --determined" tells users) runs the member's
//     file as that job's user.
//   - symlink (only while fs.protected_symlinks is 0; it is 1 on most
//     distributions): a symbolic link at the root's path to a root-owned
//     directory, where the stage task then creates .cachectl/ and the
//     image.
//
// The stage task must refuse a local root (or a directory on its path)
// that someone other than root, the runner or the node cache's owner made
// or could replace, saying which and how to fix it, and place nothing.
func TestAttackNodeRootSquat(t *testing.T) {
	srv := newAttackRegistry(t)
	ref := srv.Ref("squat/app:1")
	pushSmall(t, ref, 310)
	name := strings.NewReplacer("/", "+", ":", "+").Replace(ref) + ".sqsh"

	setUp := func(t *testing.T) (*attackEnv, string, string) {
		e := newAttackEnv(t)
		shared := e.path("shared", "enroot")
		e.writeSpec(fmt.Sprintf(`
cache "sqsh" {
  runtime   = "enroot"
  root      = %q
  images    = [%q]
  owner     = "root"
  group     = %q
  file_mode = "0644"
  dir_mode  = "2755"
}
`, shared, ref, attackerGroup))
		e.mustApply()
		scratch := e.path("local")
		victimDir(t, scratch, 0o1777|os.ModeSticky)
		must(t, os.Chmod(scratch, 0o777|os.ModeSticky))
		return e, shared, scratch
	}

	t.Run("squat", func(t *testing.T) {
		e, shared, scratch := setUp(t)
		local := filepath.Join(scratch, "enroot")
		e.attack("mkdir", local)
		r := e.stageTask(shared, local, name, ref)
		checkClean(t, r, 0, 1)
		t.Logf("stage-task: exit %d: %s", r.code, errorLine(r.out))
		if _, err := os.Lstat(filepath.Join(local, spec.IndexDir)); err == nil {
			t.Errorf("the stage task (exit %d) made its state directory in %s, a directory the member made, and left it there", r.code, local)
		}
		placed := filepath.Join(local, name)
		if _, err := os.Lstat(placed); err != nil {
			if r.code == 0 {
				t.Errorf("stage-task exited 0 but placed nothing at %s:\n%s", placed, r)
			}
			return
		}
		c := e.attackerCmd("renameover", placed)
		c.Stdin = strings.NewReader("hsqs: the member's image, run by every job on the node\n")
		if out, err := c.CombinedOutput(); err == nil {
			t.Errorf("the stage task (exit %d) placed root's image in %s, a directory the member made; the member then replaced %s (jobs on the node run it)", r.code, local, placed)
		} else {
			t.Logf("member could not replace %s: %v %s", placed, err, out)
		}
	})

	t.Run("symlink", func(t *testing.T) {
		e, shared, scratch := setUp(t)
		victim := e.path("victim")
		victimDir(t, victim, 0o755)
		victimFile(t, filepath.Join(victim, "keep"), "root's file\n", 0o644)
		v := watchVictims(t, victim)
		local := filepath.Join(scratch, "enroot")
		e.attack("symlink", victim, local)
		r := e.stageTask(shared, local, name, ref)
		checkClean(t, r, 0, 1)
		t.Logf("stage-task (fs.protected_symlinks=%s): exit %d: %s", fsSysctl("protected_symlinks"), r.code, errorLine(r.out))
		v.check(fmt.Sprintf("stage-task with the local root a member's symlink (fs.protected_symlinks=%s)", fsSysctl("protected_symlinks")))
	})
}

// TestAttackImportFIFO: a user hands the admin "their SIF" to import
// (cachectl import, manage-singularity-cache -i), and it is a named pipe.
// import checks what image the file says it holds before anything else,
// opening it by its path without O_NONBLOCK: the open waits for a writer
// that never comes, and the admin's import (or the cron job or launcher
// script running it, holding nothing yet) hangs for good. It must answer
// at once that the file is not a regular file (exit 1).
func TestAttackImportFIFO(t *testing.T) {
	e := newAttackEnv(t)
	e.limit = 20 * time.Second
	drop := e.path("drop")
	must(t, os.Mkdir(drop, 0o755))
	must(t, os.Chown(drop, e.uid, e.gid))
	fifo := filepath.Join(drop, "tool.sif")
	e.attack("mkfifo", fifo)
	e.writeSpec(sifCache("sif", e.path("cache", "sif"), "0644", []string{"alice/tool:1"}))
	for _, args := range [][]string{{"import", "sif", fifo, "alice/tool:1"}} {
		start := time.Now()
		r := e.cachectl(args...)
		t.Logf("%s: exit %d after %s: %s", args[0], r.code, time.Since(start).Round(time.Millisecond), errorLine(r.out))
		checkClean(t, r, 1)
	}
	r := e.compat("manage-singularity-cache", "-i", fifo, "alice/tool:1")
	t.Logf("manage-singularity-cache -i: exit %d: %s", r.code, errorLine(r.out))
	checkClean(t, r, 1)
}

// TestAttackEscapesInNames: round two made plan and list print file names
// escaped (TestCraftedFileNameInOutput). Other commands print the names
// of files a member of the cache group left in a root as they are:
// "cachectl enroot-sync" (which every user runs, over roots members may
// add to: dir_mode "3775"), "cachectl adopt" (the admin, over a root
// members have written) and "manage-enroot-cache -l". The member's file
// name holds terminal control sequences (erase lines, move the cursor, a
// forged line, retitle the window): none may reach the terminal raw.
func TestAttackEscapesInNames(t *testing.T) {
	e := newAttackEnv(t)
	root := e.path("enroot")
	victimDir(t, root, 0o775)
	must(t, os.Chown(root, 0, e.gid))
	must(t, os.Chmod(root, 0o775|os.ModeSticky))
	evil := "x\x1b[1A\x1b[2K\rkeep team+tool+1 (up to date)\x1b]0;title\x07.sqsh"
	planted := e.path("member.sqsh")
	must(t, os.WriteFile(planted, []byte("hsqs: the member's file\n"), 0o644))
	e.attack("copy", planted, filepath.Join(root, evil))
	e.writeSpec(fmt.Sprintf(`
cache "enroot" {
  runtime   = "enroot"
  root      = %q
  images    = []
  file_mode = "0644"
  dir_mode  = "3775"
}
`, root))
	data := e.path("data")
	must(t, os.Mkdir(data, 0o700))
	for _, run := range []struct {
		what string
		r    result
	}{
		{"enroot-sync --dry-run", e.cachectl("enroot-sync", root, "--dry-run", "--data-path", data)},
		{"enroot-sync", e.cachectl("enroot-sync", root, "--data-path", data)},
		{"adopt --dry-run", e.cachectl("adopt", "enroot", "--dry-run", "--offline")},
		{"manage-enroot-cache -l", e.compat("manage-enroot-cache", "-s", root, "-l")},
	} {
		checkClean(t, run.r, 0, 1)
		if strings.ContainsAny(run.r.out, "\x1b\x07") {
			t.Errorf("cachectl %s printed a member's file name with its control characters raw: %q", run.what, run.r.out)
		}
	}
}

// TestAttackCompatRootThroughUserSymlink: "manage-enroot-cache -s DIR
// REF" (and a spec root) may name a directory below one a user owns — a
// project's or a user's own cache directory they asked the admin to fill.
// cachectl opens the root by its path as written, following symbolic
// links ("the root's parent directories: owned by root", docs/security.md
// asks, but nothing checks it), and trusts whatever directory it reaches.
// The user makes DIR a symbolic link to a root-owned directory; the
// admin's command then creates .cachectl/ and the image there.
//
// A root whose path holds another user's symbolic link, or a directory
// above it that another user owns or may write (not sticky), must be
// refused before anything is created, saying which and how to fix it.
func TestAttackCompatRootThroughUserSymlink(t *testing.T) {
	e := newAttackEnv(t)
	srv := e.registry()
	ref := srv.Ref("user/app:1")
	pushSmall(t, ref, 320)
	e.writeSpec(sifCache("sif", e.path("cache", "sif"), "0644", nil))

	home := e.path("project", "alice")
	victimDir(t, home, 0o755)
	must(t, os.Chown(home, e.uid, e.gid))
	victim := e.path("victim")
	victimDir(t, victim, 0o755)
	victimFile(t, filepath.Join(victim, "keep"), "root's file\n", 0o644)
	v := watchVictims(t, victim)
	dir := filepath.Join(home, "enroot")
	e.attack("symlink", victim, dir)

	r := e.compat("manage-enroot-cache", "-s", dir, "--nocreate", ref)
	checkClean(t, r, 0, 1)
	t.Logf("manage-enroot-cache -s %s: exit %d: %s", dir, r.code, errorLine(r.out))
	v.check("manage-enroot-cache -s DIR with DIR the user's symlink to a root-owned directory")
	if r.code == 1 && !strings.Contains(r.out, dir) {
		t.Errorf("the refusal should name %s:\n%s", dir, r)
	}
}

// TestAttackStoreThroughSymlink: the blob store directory itself may be a
// symbolic link ("to a bigger disk", store.Open follows it), and nothing
// checks the directories above it. A site that keeps the store beside its
// caches, in a directory of the cache group (/shared/cachectl, 0775 or
// 2775, group hpc), lets a member rename the store away and put a
// symbolic link to a root-owned directory in its place: the next apply
// creates blobs/, tmp/ and lock there and writes blobs into it. apply
// must refuse a store whose path holds another user's symbolic link or a
// directory above it that others may write (not sticky), before creating
// anything, naming it.
func TestAttackStoreThroughSymlink(t *testing.T) {
	e := newAttackEnv(t)
	srv := e.registry()
	ref := srv.Ref("store/app:1")
	pushSmall(t, ref, 330)
	shared := e.path("shared")
	victimDir(t, shared, 0o775)
	must(t, os.Chown(shared, 0, e.gid))
	e.store = filepath.Join(shared, "store")
	must(t, os.Mkdir(e.store, 0o755))
	root := e.path("cache", "sif")
	e.writeSpec(sifCache("sif", root, "0644", []string{ref}))

	victim := e.path("victim")
	victimDir(t, victim, 0o755)
	victimFile(t, filepath.Join(victim, "keep"), "root's file\n", 0o644)
	v := watchVictims(t, victim)
	e.attack("rename", e.store, e.store+".old")
	e.attack("symlink", victim, e.store)
	for _, args := range [][]string{applyArgs, {"gc"}} {
		r := e.cachectl(args...)
		checkClean(t, r, 0, 1)
		t.Logf("%s: exit %d: %s", args[0], r.code, errorLine(r.out))
		v.check(args[0] + " with the store a member's symlink to a root-owned directory")
		if r.code == 1 && !strings.Contains(r.out, e.store) {
			t.Errorf("the refusal should name %s:\n%s", e.store, r)
		}
	}
}
