package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestEnrootSyncAsUser runs enroot-sync as an unprivileged user (uid
// 65534) over a cache that root keeps (its .cachectl state directory
// root-owned 0700): the user reads the .sqsh files, not the index, and
// gets containers of their own that the real Enroot starts. Root running
// it for a data path of that user is refused.
func TestEnrootSyncAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the binary as another user")
	}
	if _, err := os.Stat(peersEnvFile); err != nil {
		t.Skipf("the reference runtimes are not installed (%s missing): skipping the enroot-sync test against Enroot", peersEnvFile)
	}
	for _, tool := range []string{"mksquashfs", "/bin/busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is needed: %v", tool, err)
		}
	}
	env := peersEnviron(t)
	dir, exe := binaryForOthers(t)

	// A cache root kept by root: an image and a root-only state directory.
	root := filepath.Join(dir, "enroot")
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{root, rootfs + "/bin", rootfs + "/etc", rootfs + "/proc", rootfs + "/sys", rootfs + "/dev", rootfs + "/tmp"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, "/bin/busybox", rootfs+"/bin/busybox", 0o755)
	for _, a := range []string{"sh", "cat", "echo"} {
		os.Symlink("busybox", rootfs+"/bin/"+a)
	}
	os.WriteFile(rootfs+"/etc/variant", []byte("shared image 1\n"), 0o644)
	img := filepath.Join(root, "team+tool+1.sqsh")
	if out, err := exec.Command("mksquashfs", rootfs, img, "-all-root", "-comp", "lzo", "-noD", "-quiet").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	os.Chmod(img, 0o644)
	if err := os.Mkdir(filepath.Join(root, ".cachectl"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, ".cachectl", "index.json"), []byte(`{"version":1,"entries":[]}`), 0o600)

	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o755)
	os.Chown(home, 65534, 65534)
	userEnv := []string{"HOME=" + home, "PATH=" + env["PATH"]}
	for _, k := range []string{"ENROOT_DATA_PATH", "ENROOT_RUNTIME_PATH", "ENROOT_CACHE_PATH", "ENROOT_TEMP_PATH", "ENROOT_CONFIG_PATH"} {
		p := filepath.Join(home, strings.ToLower(k))
		os.Mkdir(p, 0o755)
		os.Chown(p, 65534, 65534)
		userEnv = append(userEnv, k+"="+p)
	}
	data := filepath.Join(home, "enroot_data_path")
	asUser := func(args ...string) (string, error) {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = userEnv
		cmd.Dir = home
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := cmd.Run()
		return buf.String(), err
	}
	out, err := asUser(exe, "enroot-sync", root)
	if err != nil || !strings.Contains(out, "create team+tool+1 from "+img) {
		t.Fatalf("enroot-sync as uid 65534: %v\n%s", err, out)
	}
	fi, err := os.Stat(filepath.Join(data, "team+tool+1"))
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Fatalf("the container is not the user's: %v", err)
	}
	enroot := ""
	for _, d := range filepath.SplitList(env["PATH"]) {
		if _, err := os.Stat(filepath.Join(d, "enroot")); err == nil && enroot == "" {
			enroot = filepath.Join(d, "enroot")
		}
	}
	if out, err := asUser(enroot, "start", "team+tool+1", "cat", "/etc/variant"); err != nil || !strings.Contains(out, "shared image 1") {
		t.Fatalf("enroot start: %v\n%s", err, out)
	}
	if out, err := asUser(exe, "enroot-sync", root); err != nil || !strings.Contains(out, "keep team+tool+1") {
		t.Fatalf("second sync: %v\n%s", err, out)
	}

	// Root never makes containers in another user's data path.
	cmd := exec.Command(exe, "enroot-sync", "--data-path", data, root)
	cmd.Env = append(userEnv[:0:0], userEnv...)
	out2, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out2), "belongs to uid 65534, not to uid 0 who runs this") {
		t.Fatalf("root syncing a user's data path: %v\n%s", err, out2)
	}
}

// binaryForOthers copies the cachectl binary into a new directory that
// other users may enter (below /tmp, not the test's 0700 temporary
// directory), removed when the test ends.
func binaryForOthers(t *testing.T) (dir, exe string) {
	t.Helper()
	bin, err := exec.LookPath("cachectl")
	if err != nil {
		t.Fatal(err)
	}
	if dir, err = os.MkdirTemp("", "cachectl-enrootsync-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	exe = filepath.Join(dir, "cachectl")
	copyFile(t, bin, exe, 0o755)
	return dir, exe
}

// exitStatus is the exit status of a command that ran (err from Run or
// CombinedOutput); a command that did not run fails the test.
func exitStatus(t *testing.T, err error) int {
	t.Helper()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestEnrootSyncUnreadable: a .sqsh the user may not read (a cache whose
// file_mode is 0600) is not "would create" in a dry run: both the dry run
// and the real one say the file cannot be read and what the cache's
// file_mode must allow, exit 1, and make nothing. Runs as uid 65534; needs
// no Enroot (nothing gets as far as running it).
func TestEnrootSyncUnreadable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the binary as another user")
	}
	dir, exe := binaryForOthers(t)
	root := filepath.Join(dir, "enroot")
	os.Mkdir(root, 0o755)
	secret := filepath.Join(root, "team+secret+1.sqsh")
	os.WriteFile(secret, []byte("root's only"), 0o600)
	open := filepath.Join(root, "team+open+1.sqsh")
	os.WriteFile(open, []byte("for all"), 0o644)
	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o755)
	os.Chown(home, 65534, 65534)
	data := filepath.Join(home, "data")
	run := func(args ...string) (string, int) {
		cmd := exec.Command(exe, args...)
		cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin", "ENROOT_DATA_PATH=" + data}
		cmd.Dir = home
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		return string(out), exitStatus(t, err)
	}
	want := "cannot read " + secret + ": the cache's file_mode must let users read it (e.g. 0644)"
	out, code := run("enroot-sync", "--dry-run", root)
	if code != 1 || !strings.Contains(out, "cannot create team+secret+1 from "+secret+" ("+want+")") ||
		!strings.Contains(out, "would create team+open+1 from "+open) || strings.Contains(out, "would create team+secret+1") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "Error: "+want) {
		t.Errorf("dry run: no error %q:\n%s", want, out)
	}
	out, code = run("enroot-sync", root, "team+secret+1.sqsh")
	if code != 1 || !strings.Contains(out, "Error: "+want) || strings.Contains(out, "permission denied") {
		t.Fatalf("sync: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(data, "team+secret+1")); err == nil {
		t.Error("a container was made from the unreadable image")
	}
}
