package main

// Attack tests, third round: what the first two rounds (attack_test.go,
// attack2_*_test.go) did not try. Same set-up (attack_env_test.go):
// cachectl runs as root, a real unprivileged member of the cache group
// does what such a member can do, victims are checked byte for byte,
// mode for mode and owner for owner.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The attacker's extra steps of this round (attack_helper_test.go
// dispatches unknown commands to attack2Commands). Registered from a
// package variable's initialiser: that runs before every init function,
// so before the helper's init dispatches.
var _ = func() bool {
	// link OLD NEW: a hard link (the kernel's protected_hardlinks lets a
	// user link a file they own, or one they may read and write).
	attack2Commands["link"] = func(a []string) error { return os.Link(a[0], a[1]) }
	return true
}()

// protectedHardlinks reports the kernel's fs.protected_hardlinks setting.
func protectedHardlinks(t testing.TB) string {
	b, err := os.ReadFile("/proc/sys/fs/protected_hardlinks")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// TestAttackImportHardLinkInPlace: "cachectl import CACHE FILE REF" with
// FILE already at the artifact's final path adopts it in place: it chowns
// it to the cache's owner and group and chmods it to file_mode, through
// the root's handles — without asking whether the file has a second name
// elsewhere. The member hard-links another user's file into a directory
// of the root (protected_hardlinks=1 still lets them link any file they
// may read and write: here a teammate's SIF in a project directory, mode
// 0660, group the cache group; with protected_hardlinks=0, any file
// whose directory they can reach), at the name of an image the spec
// lists, and asks the admin to import "their file in place". The
// teammate's file then belongs to root and is readable by everyone.
//
// adopt refuses a file with a second link ("a later chmod or replacement
// would change it too", docs/security.md); import in place must refuse it
// too (exit 1, saying which file and why), and change nothing.
func TestAttackImportHardLinkInPlace(t *testing.T) {
	e := newAttackEnv(t)
	const teammate = 65534 // nobody: another user, not the attacker
	root := e.path("cache", "sif")
	for _, d := range []string{root, filepath.Join(root, "crafted")} {
		victimDir(t, d, 0o2775)
		must(t, os.Chown(d, 0, e.gid))
	}
	e.writeSpec(sifCache("sif", root, "0644", []string{"crafted/app:1"}))

	// The teammate's project directory and SIF (group-shared, not for
	// everyone).
	project := e.path("projects", "bob")
	victimDir(t, project, 0o755)
	must(t, os.Chown(project, teammate, teammate))
	model := filepath.Join(project, "model.sif")
	craftedSIF(t, model, func([]byte) {})
	must(t, os.Chown(model, teammate, e.gid))
	must(t, os.Chmod(model, 0o660))
	v := watchVictims(t, project)

	placed := filepath.Join(root, "crafted", "app:1")
	e.attack("link", model, placed)
	r := e.cachectl("import", "sif", placed, "crafted/app:1")
	checkClean(t, r, 0, 1)
	if !v.check(fmt.Sprintf("import in place of a hard link to the teammate's file (protected_hardlinks=%s)", protectedHardlinks(t))) {
		t.Logf("%s", r)
	}
	t.Logf("import: exit %d: %s", r.code, errorLine(r.out))
	if r.code == 1 && !strings.Contains(r.out, "link") {
		t.Errorf("the refusal should say that the file has another hard link:\n%s", r)
	}
	// The teammate's file itself, after the run.
	if fi, err := os.Stat(model); err == nil {
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != teammate || fi.Mode().Perm() != 0o660 {
			t.Errorf("the teammate's %s is now uid %d mode %v (was uid %d mode 0660)", model, st.Uid, fi.Mode().Perm(), teammate)
		}
	}
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
