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

// TestOwnershipNeedsPrivilege runs the real binary as an unprivileged user
// (uid 65534): a plan that must chown to root is refused at plan time with
// what is needed, before anything is pulled or written.
func TestOwnershipNeedsPrivilege(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the binary as another user")
	}
	bin, err := exec.LookPath("cachectl")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "cachectl-priv-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	exe := filepath.Join(dir, "cachectl")
	in, _ := os.Open(bin)
	out, _ := os.OpenFile(exe, os.O_CREATE|os.O_WRONLY, 0o755)
	io.Copy(out, in)
	in.Close()
	out.Close()
	spec := filepath.Join(dir, "spec.hcl")
	os.WriteFile(spec, []byte(`
cache "sif" {
  runtime = "apptainer"
  root    = "`+dir+`/sif"
  images  = ["alpine:3.20"]
  owner   = "root"
  group   = "root"
}
`), 0o644)
	cmd := exec.Command(exe, "-f", spec, "plan", "--refresh=false")
	cmd.Env = []string{"HOME=" + dir, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err = cmd.Run()
	if err == nil || !strings.Contains(buf.String(), `owner root (uid 0) can only be set by root (CAP_CHOWN)`) {
		t.Fatalf("want a privilege error, got %v:\n%s", err, buf.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "sif")); !os.IsNotExist(err) {
		t.Fatalf("plan created the root: %v", err)
	}
	// apply takes the roots' locks before it plans: it must not create a
	// root (and a state directory of the wrong owner) it may not own.
	store := filepath.Join(dir, "store")
	os.Mkdir(store, 0o755)
	os.Chown(store, 65534, 65534)
	cmd = exec.Command(exe, "-f", spec, "apply", "--refresh=false", "--auto-approve")
	cmd.Env = []string{"HOME=" + dir, "PATH=/usr/bin:/bin", "CACHECTL_STORE=" + store}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	buf.Reset()
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err == nil || !strings.Contains(buf.String(), `owner root (uid 0) can only be set by root (CAP_CHOWN)`) {
		t.Fatalf("apply: want a privilege error, got %v:\n%s", err, buf.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "sif")); !os.IsNotExist(err) {
		t.Fatalf("apply created a root it may not own: %v", err)
	}
}
