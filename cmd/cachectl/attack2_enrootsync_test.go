package main

// enroot-sync against a file name a member of the cache group chose (the
// critic's review after issue 9). It fails on the code it was written
// against, by design: it shows the hole.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestAttackEnrootSyncDotName: enroot-sync makes a container for every
// *.sqsh directly in the root, named after the file without ".sqsh" —
// whoever put the file there. With dir_mode "3775" (docs/security.md:
// when group members must add files by hand) a member drops a valid
// squashfs named "...sqsh": its container name is "..". A user who runs
// "cachectl enroot-sync --force ROOT" (to take over containers of the same
// names made by hand) then runs "enroot create --force --name .. FILE",
// and Enroot resolves ENROOT_DATA_PATH/.. and removes it with rm -rf before
// unpacking the image there: with the default data path
// (~/.local/share/enroot) the user loses ~/.local/share; with
// ENROOT_DATA_PATH=$HOME/enroot, their home directory. ("..sqsh" names
// "." and wipes every container.)
//
// enroot-sync must skip (with a message) a file whose container name is
// not one Enroot can hold under the data path ("", ".", "..", a leading
// "-"), and never pass one to enroot.
func TestAttackEnrootSyncDotName(t *testing.T) {
	e := newAttackEnv(t)
	if _, err := os.Stat(peersEnvFile); err != nil {
		t.Skipf("the reference runtimes are not installed (%s missing): skipping the enroot-sync test against Enroot", peersEnvFile)
	}
	for _, tool := range []string{"mksquashfs", "/bin/busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is needed: %v", tool, err)
		}
	}
	env := peersEnviron(t)
	exe := e.path("bin", "cachectl")
	copyFile(t, e.bin, exe, 0o755)

	// The cache root: root's, group-writable with the sticky bit.
	root := e.path("enroot")
	must(t, os.Mkdir(root, 0o755))
	must(t, os.Chown(root, 0, e.gid))
	must(t, os.Chmod(root, 0o3775))
	rootfs := e.path("rootfs")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp"} {
		must(t, os.MkdirAll(filepath.Join(rootfs, d), 0o755))
	}
	copyFile(t, "/bin/busybox", filepath.Join(rootfs, "bin", "busybox"), 0o755)
	os.Symlink("busybox", filepath.Join(rootfs, "bin", "sh"))
	img := filepath.Join(root, "team+tool+1.sqsh")
	if out, err := exec.Command("mksquashfs", rootfs, img, "-all-root", "-comp", "lzo", "-noD", "-quiet").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	must(t, os.Chmod(img, 0o644))
	planted := e.path("planted.sqsh")
	copyFile(t, img, planted, 0o644)
	e.attack("copy", planted, filepath.Join(root, "...sqsh"))

	// The user (uid 65534) and what they keep beside their Enroot data.
	const uid = 65534
	home := e.path("home")
	share := filepath.Join(home, ".local", "share")
	precious := filepath.Join(share, "keyrings", "login.keyring")
	must(t, os.MkdirAll(filepath.Dir(precious), 0o755))
	must(t, os.WriteFile(precious, []byte("the user's keyring\n"), 0o600))
	for _, p := range []string{home, filepath.Join(home, ".local"), share, filepath.Dir(precious), precious} {
		must(t, os.Chown(p, uid, uid))
	}
	userEnv := []string{"HOME=" + home, "PATH=" + env["PATH"]}
	for _, k := range []string{"ENROOT_RUNTIME_PATH", "ENROOT_CACHE_PATH", "ENROOT_TEMP_PATH", "ENROOT_CONFIG_PATH"} {
		p := filepath.Join(home, strings.ToLower(k))
		must(t, os.Mkdir(p, 0o755))
		must(t, os.Chown(p, uid, uid))
		userEnv = append(userEnv, k+"="+p)
	}
	asUser := func(args ...string) (string, error) {
		cmd := exec.Command(exe, args...)
		cmd.Env = userEnv
		cmd.Dir = home
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := cmd.Run()
		return buf.String(), err
	}
	out, err := asUser("enroot-sync", root)
	t.Logf("enroot-sync: %v\n%s", err, out)
	if _, err := os.Stat(filepath.Join(share, "enroot", "team+tool+1")); err != nil {
		t.Fatalf("set-up: the first sync made no container team+tool+1: %v", err)
	}
	out, err = asUser("enroot-sync", "--force", root)
	t.Logf("enroot-sync --force: %v\n%s", err, out)
	if _, err := os.Stat(precious); err != nil {
		ents, _ := os.ReadDir(share)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("after \"enroot-sync --force\" over a root where a member left \"...sqsh\", the user's %s is gone (%v): Enroot removed %s (the data path's parent) and unpacked the member's image there (it now holds %v)",
			precious, err, share, names)
	}
}
