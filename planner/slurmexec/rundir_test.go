package slurmexec

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cachectl/cachectl/spec"
)

func TestSbatchArgs(t *testing.T) {
	s := spec.SlurmSettings{Partition: "cpu", Account: "adm", QOS: "low", TimeLimit: 90*time.Minute + time.Second,
		CPUsPerTask: 8, MemPerTask: 16<<30 + 1, SbatchArgs: []string{"--exclusive"}}
	want := []string{"--partition=gpu", "--account=adm", "--qos=low", "--time=91", "--cpus-per-task=8", "--mem=16385M", "--exclusive"}
	if got := SbatchArgs(s, "gpu"); !reflect.DeepEqual(got, want) {
		t.Errorf("SbatchArgs = %q, want %q", got, want)
	}
	if got := SbatchArgs(spec.SlurmSettings{}, ""); len(got) != 0 {
		t.Errorf("no settings: %q", got)
	}
}

// The batch script passes every argument as one word, whatever it holds.
func TestWriteScriptQuotes(t *testing.T) {
	d, err := NewRunDir(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	odd := `it's "$HOME" $(touch pwned); rm -rf /`
	p, err := d.WriteScript("s.sh", "/bin/echo", odd, `"$X"`)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", p)
	cmd.Dir = d.Path
	cmd.Env = []string{"X=from env"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != odd+" from env" {
		t.Errorf("script printed %q", got)
	}
	if _, err := os.Stat(filepath.Join(d.Path, "pwned")); err == nil {
		t.Errorf("the argument was run as shell")
	}
	fi, _ := os.Stat(d.Path)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("run directory mode %v", fi.Mode())
	}
}

// A task list that someone else could have written is refused.
func TestReadOwnedFileRefuses(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "tasks.json")
	os.WriteFile(good, []byte(`{}`), 0o600)
	if _, err := ReadOwnedFile(good, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadOwnedFile(good, 1); err == nil {
		t.Errorf("size bound ignored")
	}
	gw := filepath.Join(dir, "gw.json")
	os.WriteFile(gw, []byte(`{}`), 0o600)
	os.Chmod(gw, 0o620)
	if _, err := ReadOwnedFile(gw, 100); err == nil || !strings.Contains(err.Error(), "writable by group") {
		t.Errorf("group-writable: %v", err)
	}
	link := filepath.Join(dir, "link.json")
	os.Symlink(good, link)
	if _, err := ReadOwnedFile(link, 100); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlink: %v", err)
	}
	hard := filepath.Join(dir, "hard.json")
	os.Link(good, hard)
	if _, err := ReadOwnedFile(hard, 100); err == nil || !strings.Contains(err.Error(), "hard links") {
		t.Errorf("hard link: %v", err)
	}
	if os.Geteuid() == 0 {
		other := filepath.Join(dir, "other.json")
		os.WriteFile(other, []byte(`{}`), 0o600)
		os.Chown(other, 65534, 65534)
		if _, err := ReadOwnedFile(other, 100); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Errorf("other owner: %v", err)
		}
	}
}
