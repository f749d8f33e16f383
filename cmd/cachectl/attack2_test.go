package main

// Attack tests, second round (the critic's review after the host-safety
// work of issue 9 landed): what the first round did not try. Same set-up
// (attack_env_test.go): cachectl runs as root, a real unprivileged member
// of the cache group does what such a member can do, victims are checked
// byte for byte.
//
// These tests fail on the code they were written against, by design: they
// show the holes.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// sifCacheDirMode is sifCache with a dir_mode of the test's choosing.
func sifCacheDirMode(name, root, dirMode string, images []string) string {
	return strings.Replace(sifCache(name, root, "0644", images), `dir_mode  = "2775"`, fmt.Sprintf("dir_mode  = %q", dirMode), 1)
}

// compat runs "cachectl compat ARGS…" as root with the environment's spec
// and no Determined master configuration.
func (e *attackEnv) compat(args ...string) result {
	e.t.Helper()
	c, out := e.cachectlCmd(e.t.Context(), append([]string{"compat"}, args...)...)
	c.Env = append(c.Env, "CACHECTL_SPEC="+e.spec, "CACHECTL_DETERMINED_MASTER_CONFIG="+e.path("no-master.yaml"))
	err := c.Run()
	r := result{args: append([]string{"compat"}, args...), out: out.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		e.t.Fatalf("running cachectl compat %v: %v", args, err)
	}
	return r
}

func fileSHA256(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// indexEntry returns the index entry of name in the root (as JSON).
func indexEntry(t testing.TB, root, name string) map[string]any {
	t.Helper()
	ix := readJSON(t, filepath.Join(root, ".cachectl", "index.json"))
	entries, _ := ix["entries"].([]any)
	for _, e := range entries {
		if en := e.(map[string]any); en["name"] == name {
			return en
		}
	}
	return nil
}

// TestAttackSquattedDirectory: docs/security.md recommends dir_mode
// "3775" (sticky) when group members must add files by hand, and says the
// sticky bit keeps them from renaming or replacing what cachectl placed.
// But a member may create directories in such a root, and cachectl puts
// its files into whatever directory already sits on an image's path: it
// checks that each one is a real directory, not whose it is. The member
// creates <root>/REGISTRY/squat (their own 0775 directory) before the
// image under it is first applied; root's image then lands in the member's
// directory, where the member can replace it at will (the sticky bit does
// not bind a directory's owner), after every apply again.
//
// Control: an image under a directory cachectl created (<root>/REGISTRY/ctl)
// cannot be replaced by the member. Apply must either refuse to place a
// file into a directory that another user owns (exit 1, saying which), or
// place it where the member cannot replace it.
func TestAttackSquattedDirectory(t *testing.T) {
	e := newAttackEnv(t)
	srv := e.registry()
	ctl, squat := srv.Ref("ctl/app:1"), srv.Ref("squat/app:1")
	pushSmall(t, ctl, 50)
	pushSmall(t, squat, 51)
	root := e.path("cache", "sif")
	e.writeSpec(sifCacheDirMode("sif", root, "3775", []string{ctl}))
	e.mustApply()
	reg := filepath.Join(root, srv.Addr)
	if fi, err := os.Stat(reg); err != nil || fi.Mode()&os.ModeSticky == 0 {
		t.Fatalf("set-up: %s is not a sticky directory: %v %v", reg, fi, err)
	}

	e.attack("mkdir", filepath.Join(reg, "squat"))
	e.writeSpec(sifCacheDirMode("sif", root, "3775", []string{ctl, squat}))
	r := e.cachectl(applyArgs...)
	checkClean(t, r, 0, 1)
	t.Logf("apply with %s/squat owned by the member: exit %d", reg, r.code)

	payload := []byte("#!/bin/sh\necho the member's code runs in every job\n")
	try := func(p string) error {
		c := e.attackerCmd("renameover", p)
		c.Stdin = bytes.NewReader(payload)
		out, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
		}
		return nil
	}
	if err := try(filepath.Join(reg, "ctl", "app:1")); err == nil {
		t.Fatalf("control: the member replaced an image in a directory cachectl created under a sticky dir_mode; the set-up is wrong")
	}
	placed := filepath.Join(reg, "squat", "app:1")
	if _, err := os.Lstat(placed); err != nil {
		if r.code == 1 {
			return // refused, nothing placed in the member's directory
		}
		t.Fatalf("apply exited 0 but %s is missing: %v\n%s", placed, err, r)
	}
	if en := indexEntry(t, root, srv.Addr+"/squat/app:1"); en == nil {
		t.Fatalf("%s exists but is not in the index", placed)
	}
	if err := try(placed); err == nil {
		st, _ := os.Stat(filepath.Dir(placed))
		t.Errorf("the member replaced root's image %s (dir_mode 3775, sticky): apply (exit %d) placed it in %s, a directory the member owns (uid %d, mode %v), and never claimed or refused that directory; jobs now run the member's file until the next apply, and again after it",
			placed, r.code, filepath.Dir(placed), st.Sys().(*syscall.Stat_t).Uid, st.Mode())
	}
}

// TestAttackInodeReuse: cachectl recognises the files it placed by inode
// number, size and modification time, and acts (chmod, chown, delete) on a
// file only when they match ("update acts on the opened file only when it
// is that inode"). In a root with dir_mode "2775" (no sticky bit) a member
// deletes a placed image and creates files until the file system (ext4,
// which reuses a freed inode at once) hands the same inode number out
// again, writes their own content of the same size into it, sets the old
// mtime (an owner may) and renames it into place. Nothing cachectl
// recorded tells the two apart: plan sees no replaced file, only an owner
// and group to fix, and apply chowns the member's file to root and keeps
// it as its own (without --verify, it is never found out).
//
// Apply must report the file as replaced and rebuild it: after it, the
// path holds cachectl's content (the sha256 it recorded), not the
// member's. (What the member cannot forge: the inode's change time and
// birth time, statx btime, both set by the kernel.)
func TestAttackInodeReuse(t *testing.T) {
	e := newAttackEnv(t)
	srv := e.registry()
	ref := srv.Ref("reuse/app:1")
	pushSmall(t, ref, 60)
	root := e.path("cache", "sif")
	e.writeSpec(sifCache("sif", root, "0644", []string{ref}))
	e.mustApply()
	name := srv.Addr + "/reuse/app:1"
	placed := filepath.Join(root, name)
	en := indexEntry(t, root, name)
	if en == nil {
		t.Fatalf("%s is not in the index", name)
	}
	want := strings.TrimPrefix(fmt.Sprint(en["sha256"]), "sha256:")
	if got := fileSHA256(t, placed); got != want {
		t.Fatalf("set-up: %s has sha256 %s, the index %s", placed, got, want)
	}

	c := e.attackerCmd("inodereuse", placed, "2000")
	c.Stdin = strings.NewReader("#!/bin/sh\necho the member's code runs in every job\n")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Skipf("the file system of %s did not hand the inode out again (%v: %s); this attack needs one that reuses inodes, such as ext4", root, err, bytes.TrimSpace(out))
	}
	t.Logf("member: %s", bytes.TrimSpace(out))
	forged := fileSHA256(t, placed)
	if forged == want {
		t.Fatal("set-up: the member's file has cachectl's content")
	}

	plan := e.cachectl("plan", "--detailed-exitcode")
	checkClean(t, plan, 2)
	r := e.cachectl(applyArgs...)
	checkClean(t, r, 0, 1)
	fi, err := os.Lstat(placed)
	if err != nil {
		t.Fatalf("after apply %s is gone: %v\n%s", placed, err, r)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if got := fileSHA256(t, placed); got == forged {
		t.Errorf("after apply (exit %d) %s still holds the member's content, now owned %d:%d mode %v, and the index takes it for the file cachectl placed (inode %d, size and mtime forged); plan said:\n%s",
			r.code, placed, st.Uid, st.Gid, fi.Mode(), st.Ino, plan.out)
	}
}

// TestAttackPlanFileOwner: "apply PLANFILE refuses a plan file writable by
// group or others" — but not one that another user owns, and "plan -out"
// writes into whatever is at the path (os.WriteFile: following a symlink,
// keeping an existing file's owner and mode). With the plan written to a
// directory the cache group can write (a shared ops or CI workspace):
//
//   - symlink: the member puts a symlink there under the plan's name, and
//     root's plan -out overwrites the file it points to (any file on the
//     host: /etc/..., here a root-owned victim).
//   - owner: the member creates the plan file first (their own, 0644);
//     root's plan -out fills it, the member then edits the digest to an
//     older image of the same repository (its tag has moved since), and
//     root's apply of the plan places that old image: a saved plan picks
//     the digests it fetches, and the only guard, the mode check, passes.
//
// plan -out must never write through a symlink or into another user's
// file (write a new file and rename it into place), and apply must refuse
// a plan file that is not the runner's (or root's).
func TestAttackPlanFileOwner(t *testing.T) {
	srv := newAttackRegistry(t)
	ref := srv.Ref("planfile/app:1")
	old := pushSmall(t, ref, 70).String()
	cur := pushSmall(t, ref, 71).String() // the tag moved on

	setUp := func(t *testing.T) (*attackEnv, string) {
		e := newAttackEnv(t)
		ops := e.path("ops")
		victimDir(t, ops, 0o2775)
		must(t, os.Chown(ops, 0, e.gid))
		e.writeSpec(sifCache("sif", e.path("cache", "sif"), "0644", []string{ref}))
		return e, ops
	}

	t.Run("symlink", func(t *testing.T) {
		e, ops := setUp(t)
		victim := e.path("victim")
		victimDir(t, victim, 0o755)
		victimFile(t, filepath.Join(victim, "sudoers"), "root ALL=(ALL:ALL) ALL\n", 0o440)
		v := watchVictims(t, victim)
		planFile := filepath.Join(ops, "cache.plan")
		e.attack("symlink", filepath.Join(victim, "sudoers"), planFile)
		r := e.cachectl("plan", "-out", planFile)
		checkClean(t, r, 0, 1)
		v.check("plan -out onto a symlink the member put in its place")
	})

	t.Run("owner", func(t *testing.T) {
		e, ops := setUp(t)
		planFile := filepath.Join(ops, "cache.plan")
		e.attack("create", planFile)
		r := e.cachectl("plan", "-out", planFile)
		checkClean(t, r, 0, 1)
		if r.code != 0 {
			return // refused to write into the member's file
		}
		fi, err := os.Stat(planFile)
		must(t, err)
		st := fi.Sys().(*syscall.Stat_t)
		t.Logf("plan file after plan -out: owner %d, mode %v", st.Uid, fi.Mode())
		if int(st.Uid) != e.uid && fi.Mode().Perm()&0o022 == 0 {
			return // plan -out replaced the member's file with one of its own: nothing left to edit
		}
		if !bytes.Contains(mustRead(t, planFile), []byte(cur)) {
			t.Fatalf("the plan does not name the tag's current digest %s", cur)
		}
		t.Logf("member: %s", strings.TrimSpace(e.attack("replacetext", planFile, strings.TrimPrefix(cur, "sha256:"), strings.TrimPrefix(old, "sha256:"))))
		r = e.cachectl("apply", planFile, "--progress", "none")
		checkClean(t, r, 0, 1)
		name := srv.Addr + "/planfile/app:1"
		en := indexEntry(t, e.path("cache", "sif"), name)
		if r.code == 0 && en != nil && en["manifest"] == old {
			t.Errorf("apply of a plan file owned by the member (uid %d) placed the older image %s, not %s that %s points at now:\n%s", st.Uid, old, cur, ref, r)
		}
	})
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return b
}

// TestAttackImportThroughSymlink: "cachectl import CACHE FILE REF" (and
// manage-singularity-cache -i FILE REF, the launcher's way to put a SIF a
// user hands over into the cache) opens FILE with O_NOFOLLOW on its last
// component only; every directory on the way is followed as root. A user
// who owns a directory on that path (their home, a drop directory) makes
// one component a symlink into a directory only root may read, and asks
// the admin to import "their" file: root copies a root-only SIF (another
// cache's licensed image, mode 0600 in a 0700 directory) into the shared
// cache with the cache's file_mode 0644, readable by everyone.
//
// import must not read a file through a symlink that someone other than
// root controls (or must tell the admin where the path really leads and
// refuse): the root-only content must not come out readable by others.
func TestAttackImportThroughSymlink(t *testing.T) {
	e := newAttackEnv(t)
	srv := e.registry()
	ref := srv.Ref("licensed/tool:1")
	pushSmall(t, ref, 80)
	// A SIF only root may read, kept outside any cache root.
	lic := e.path("licensed-cache")
	e.writeSpec(sifCache("lic", lic, "0600", []string{ref}))
	e.mustApply()
	restricted := e.path("restricted")
	victimDir(t, restricted, 0o700)
	secret := filepath.Join(restricted, "licensed.sif")
	copyFile(t, filepath.Join(lic, srv.Addr, "licensed", "tool:1"), secret, 0o600)
	must(t, os.Chown(secret, 0, 0))
	v := watchVictims(t, restricted)

	// The user's drop directory, where they "put the SIF".
	drop := e.path("drop")
	must(t, os.Mkdir(drop, 0o755))
	must(t, os.Chown(drop, e.uid, e.gid))
	e.attack("symlink", restricted, filepath.Join(drop, "tool"))

	pub := e.path("cache", "sif")
	e.writeSpec(sifCache("sif", pub, "0644", nil))
	handed := filepath.Join(drop, "tool", "licensed.sif")
	r := e.cachectl("import", "sif", handed, "alice/tool:1")
	checkClean(t, r, 0, 1)
	v.check("import of a path through the user's symlink")
	placed := filepath.Join(pub, "alice", "tool:1")
	fi, err := os.Stat(placed)
	if err == nil && fi.Mode().Perm()&0o004 != 0 && fileSHA256(t, placed) == fileSHA256(t, secret) {
		t.Errorf("import (exit %d) of %s, a path through %s (a symlink the user owns), copied root-only %s (0600 in a 0700 directory) into the shared cache as %s, mode %v: readable by everyone",
			r.code, handed, filepath.Join(drop, "tool"), secret, placed, fi.Mode())
	}
}

// TestAttackCompatReusesSquattedFile: "manage-enroot-cache -s DIR REF"
// answers "REF: reusing DIR/NAME.sqsh" (and makes the caller's container
// from it) whenever something exists at the image's file name, without
// asking whether cachectl placed it. In an Enroot root with dir_mode
// "3775" (docs/security.md: group members may add files; the sticky bit
// keeps them from replacing cachectl's) a member creates the file of an
// image the admin has not added yet, e.g. the next Determined default
// image. The admin's manage-enroot-cache then exits 0, adds nothing to the
// spec, and jobs (Pyxis's --container-image=DIR/NAME.sqsh, every user's
// enroot-sync) run the member's file as that image. cachectl apply, asked
// the same, refuses: "exists and was not placed by cachectl".
//
// The command must refuse a file at the name that the cache's index does
// not hold (or, for a user who cannot read the index, one not owned by the
// cache's owner), saying whose it is, and never report it as the image.
func TestAttackCompatReusesSquattedFile(t *testing.T) {
	e := newAttackEnv(t)
	srv := e.registry()
	ref := srv.Ref("next/default:1")
	pushSmall(t, ref, 90)
	root := e.path("enroot")
	e.writeSpec(fmt.Sprintf(`
cache "enroot" {
  runtime   = "enroot"
  root      = %q
  images    = []
  owner     = "root"
  group     = %q
  file_mode = "0644"
  dir_mode  = "3775"
}
`, root, attackerGroup))
	e.mustApply()
	name := strings.NewReplacer("/", "+", ":", "+").Replace(ref) + ".sqsh"
	planted := e.path("member.sqsh")
	must(t, os.WriteFile(planted, []byte("hsqs: the member's image\n"), 0o644))
	e.attack("copy", planted, filepath.Join(root, name))

	r := e.compat("manage-enroot-cache", "-s", root, "--nocreate", ref)
	checkClean(t, r, 0, 1)
	fi, err := os.Lstat(filepath.Join(root, name))
	must(t, err)
	if r.code == 0 && indexEntry(t, root, name) == nil {
		t.Errorf("manage-enroot-cache exited 0 for %s with %s, a file the member (uid %d) put there, not cachectl's:\n%s",
			ref, filepath.Join(root, name), fi.Sys().(*syscall.Stat_t).Uid, r)
	}
}

// TestAttackGroupWritableStore: the blob store verifies a blob's digest
// when it is written, not each time it is read, so whoever can create an
// entry in blobs/sha256 decides what the caches hold. A site that shares
// the store with its cache group (chgrp hpc, 2775, as it does its cache
// roots) lets a member plant a layer of their own under the digest of an
// image's real layer before root fetches it (digests of public images are
// public). apply must refuse such a store before it reads from it, say
// which directory and how to fix it, and place nothing.
func TestAttackGroupWritableStore(t *testing.T) {
	e := newAttackEnv(t)
	srv := e.registry()
	ref := srv.Ref("store/poison:1")
	img := registrytest.Image(t, 1, 8<<10, 90)
	registrytest.Push(t, img, ref)
	layers, err := img.Layers()
	must(t, err)
	dig, err := layers[0].Digest()
	must(t, err)
	planted, err := registrytest.Image(t, 1, 8<<10, 91).Layers()
	must(t, err)
	rc, err := planted[0].Compressed()
	must(t, err)
	poison, err := io.ReadAll(rc)
	must(t, err)
	rc.Close()

	for _, d := range []string{e.store, filepath.Join(e.store, "blobs"), filepath.Join(e.store, "blobs", "sha256"), filepath.Join(e.store, "tmp")} {
		must(t, os.MkdirAll(d, 0o755))
		must(t, os.Chown(d, 0, e.gid))
		must(t, os.Chmod(d, 0o2775))
	}
	e.attackStdin(poison, "write", filepath.Join(e.store, "blobs", "sha256", dig.Hex))

	root := e.path("cache", "sif")
	e.writeSpec(sifCache("sif", root, "0644", []string{ref}))
	r := e.cachectl(applyArgs...)
	checkClean(t, r, 1)
	placed := filepath.Join(root, srv.Addr, "store", "poison:1")
	if _, err := os.Lstat(placed); err == nil {
		t.Errorf("apply (exit %d) placed %s from a store its group can write, where a member had planted the layer %s:\n%s", r.code, placed, dig, r)
	}
	if !strings.Contains(r.out, "writable by group") || !strings.Contains(r.out, "chmod g-w") {
		t.Errorf("the refusal should name the group-writable store directory and the fix (chmod g-w):\n%s", r)
	}
}
