package main

// Attack tests of issue 9: cachectl runs as root over a cache root in the
// README's natural shared set-up (group = the cache group, dir_mode =
// "2775"), while a real unprivileged member of that group (attack_env_test.go)
// does what such a member can do. Victims are root-owned files and
// directories outside the cache root; after every run they must be byte for
// byte, mode for mode and owner for owner what they were, with nothing
// created in (or removed from) a victim directory even for a moment.
//
// These tests fail on the code they were written against (by design: they
// show the holes); the fix of issue 9 makes them pass.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/spec"
)

// registry starts the real registry for one attack test.
func (e *attackEnv) registry() *registrytest.Server {
	e.t.Helper()
	return newAttackRegistry(e.t)
}

// pushSmall pushes a one-layer image of a few KiB (content from seed).
func pushSmall(t testing.TB, ref string, seed int64) v1.Hash {
	t.Helper()
	return registrytest.Push(t, registrytest.Image(t, 1, 8<<10, seed), ref)
}

var applyArgs = []string{"apply", "--auto-approve", "--progress", "none"}

// mustApply applies and fails the test unless it succeeded: the set-up
// before an attack.
func (e *attackEnv) mustApply() {
	e.t.Helper()
	if r := e.cachectl(applyArgs...); r.code != 0 {
		e.t.Fatalf("set-up apply failed:\n%s", r)
	}
}

// TestAttackSymlinkedParentDir (issue 9, item 1): with images two levels
// deep (<root>/REGISTRY/nested/deep:1), the member renames <root>/REGISTRY
// away and puts a symlink to a root-owned directory in its place. The next
// applies must not chmod or chown the victim's nested/ (nor anything else
// there): only the last path component used to be protected.
func TestAttackSymlinkedParentDir(t *testing.T) {
	e := newAttackEnv(t)
	srv := e.registry()
	ref := srv.Ref("nested/deep:1")
	pushSmall(t, ref, 1)
	root := e.path("cache", "sif")
	e.writeSpec(sifCache("sif", root, "0644", []string{ref}))
	e.mustApply()

	victim := e.path("victim")
	victimDir(t, victim, 0o755)
	victimDir(t, filepath.Join(victim, "nested"), 0o755)
	victimFile(t, filepath.Join(victim, "nested", "keep"), "root's file\n", 0o644)
	victimFile(t, filepath.Join(victim, "passwd"), "root:x:0:0::/root:/bin/sh\n", 0o644)
	v := watchVictims(t, victim)

	reg := filepath.Join(root, srv.Addr)
	e.attack("rename", reg, reg+".moved")
	e.attack("symlink", victim, reg)

	for _, args := range [][]string{{"plan"}, applyArgs, applyArgs, {"list"}} {
		r := e.cachectl(args...)
		checkClean(t, r, 0, 1)
		if !v.check(strings.Join(args, " ") + " after the parent directory became a symlink") {
			t.Logf("%s", r)
		}
	}
}

// TestAttackRacingSwap (issue 9, item 2): during an apply the member
// exchanges a real directory of the cache (<root>/REGISTRY/race) with a
// symlink to a root-owned directory (renameat2 RENAME_EXCHANGE). Each
// round starts from a clean cache and applies one kind of change to the
// artifacts in that directory: create, replace (tags moved), update
// (file_mode changed: chmod in place), delete (prune). Half the rounds the
// swapper is blind (a few hundred exchanges a second, as in the issue);
// the other half it is aimed (it watches .cachectl/, which the group can
// read, and swaps for 5 ms right after staging/ appears or a new index.json
// is renamed in: the moments before cachectl's changes and renames). No
// victim file may be overwritten, chmodded or chgrped, and nothing may
// appear in (or vanish from) the victim directory, in any round. The
// rounds run for at most 30 s (64 rounds); the test reports how often the
// attack got through, by kind and swapper.
func TestAttackRacingSwap(t *testing.T) {
	e := newAttackEnv(t)
	srv := e.registry()
	var refs []string
	for i := 0; i < 4; i++ {
		refs = append(refs, srv.Ref(fmt.Sprintf("race/img%d:1", i)))
		pushSmall(t, refs[i], int64(10+i))
	}
	root := e.path("cache", "sif")

	// The victim directory holds root's files under the names of two of
	// the artifacts (targets for a rename over them, a chmod, a delete);
	// the other two names are free (targets for a new file).
	victim := e.path("victim")
	victimDir(t, victim, 0o755)
	for i := 0; i < 2; i++ {
		victimFile(t, filepath.Join(victim, fmt.Sprintf("img%d:1", i)), fmt.Sprintf("root's own file %d, not a SIF\n", i), 0o644)
	}
	v := watchVictims(t, victim)
	race := filepath.Join(root, srv.Addr, "race")

	type kind struct {
		name           string
		before, attack []string // images
		modeB, modeA   string
		moveTags       bool
	}
	kinds := []kind{
		{"create", refs[:2], refs, "0644", "0644", false},
		{"replace", refs, refs, "0644", "0644", true},
		{"update", refs, refs, "0644", "0664", false},
		{"delete", refs, refs[:1], "0644", "0644", false},
	}
	const budget = 30 * time.Second
	began := time.Now()
	deadline := began.Add(budget)
	type tally struct{ rounds, harmed, stale int }
	per := map[string]*tally{}
	codes := map[int]int{}
	kindCount := map[string]int{}
	rounds, harmed, harmedOK := 0, 0, 0
	var firstHarm, swaps, order []string
	for ; rounds < 64 && time.Now().Before(deadline); rounds++ {
		k := kinds[rounds%len(kinds)]
		aimed := rounds/len(kinds)%2 == 1
		key := k.name + " (blind)"
		if aimed {
			key = k.name + " (aimed)"
		}
		if per[key] == nil {
			per[key] = &tally{}
			order = append(order, key)
		}
		per[key].rounds++
		// a clean cache holding k.before
		must(t, os.RemoveAll(root))
		e.writeSpec(sifCache("sif", root, k.modeB, k.before))
		e.mustApply()
		if k.moveTags {
			for i, ref := range refs {
				pushSmall(t, ref, int64(1000*rounds+i))
			}
		}
		e.writeSpec(sifCache("sif", root, k.modeA, k.attack))
		e.attack("symlink", victim, race+".swap")
		var stop func() string
		if aimed {
			stop = e.backgroundReady("swaponwrite", race, race+".swap", filepath.Join(root, ".cachectl"), "30s")
		} else {
			stop = e.background("swap", race, race+".swap", "30s", "2ms")
		}
		r := e.cachectl(applyArgs...)
		swaps = append(swaps, strings.TrimSpace(stop()))
		checkClean(t, r, 0, 1)
		codes[r.code]++
		if strings.Contains(r.out, "plan is stale") {
			per[key].stale++
		}
		if kinds, details := v.harmKinds(); len(details) > 0 {
			harmed++
			if r.code == 0 {
				harmedOK++
			}
			per[key].harmed++
			var ks []string
			for k := range kinds {
				kindCount[k]++
				ks = append(ks, k)
			}
			sort.Strings(ks)
			if firstHarm == nil {
				firstHarm = append([]string{fmt.Sprintf("round %d (%s apply; %s), apply exit %d:", rounds+1, key, strings.Join(ks, ", "), r.code)}, details...)
			}
			v.restore()
		}
	}
	var summary []string
	for _, key := range order {
		p := per[key]
		summary = append(summary, fmt.Sprintf("%s: harmed in %d of %d (%d refused as stale)", key, p.harmed, p.rounds, p.stale))
	}
	firstSwaps := swaps[0]
	if len(swaps) > len(kinds) {
		firstSwaps += " / " + swaps[len(kinds)]
	}
	t.Logf("%d attacked applies in %s (swappers of the first rounds: %s): exit codes %v; %s; %d of the harmful applies exited 0; harm kinds %v",
		rounds, time.Since(began).Round(time.Second), firstSwaps, codes, strings.Join(summary, "; "), harmedOK, kindCount)
	if rounds < 8 {
		t.Errorf("only %d attacked applies ran in %s", rounds, budget)
	}
	if harmed > 0 {
		t.Errorf("victims outside the cache root were harmed in %d of %d applies (%s); the first time:\n  %s",
			harmed, rounds, strings.Join(summary, "; "), strings.Join(firstHarm, "\n  "))
	}
}

// expectRefused checks that a command refused to run (exit 1, no panic)
// and said something about what: want is a word the message must hold
// (the state directory's name, "plan", …).
func expectRefused(t *testing.T, r result, want string) {
	t.Helper()
	checkClean(t, r, 1)
	if r.code == 1 && !strings.Contains(r.out, want) {
		t.Errorf("the error does not mention %q:\n%s", want, r)
	}
}

// TestAttackStateDirTakeover (issue 9, item 3): the member renames the
// root's .cachectl/ away (the root is 2775, so they may) and puts their
// own directory, or a symlink, in its place. cachectl must refuse the
// state directory (not a directory owned by the runner and closed to
// group and others, or a symlink) with an error naming it, and change
// nothing outside the root:
//   - lock-symlink: their .cachectl holds lock → a root-only file, which
//     must not be truncated;
//   - forged-index: their index.json lists v/data (v a symlink out of the
//     root) with the victim's size and mtime, and a directory v/sub: prune
//     must not delete the victim, the directory fix-up must not make the
//     victim's directory 2775 root:group;
//   - symlinked-state: .cachectl is a symlink to a root-owned directory
//     whose lock must not be truncated and whose staging/ must not be
//     deleted;
//   - staging-race: while an apply pulls a (slowed) image, the member keeps
//     replacing staging/ with a symlink to a root-only directory: no build
//     may run in there.
func TestAttackStateDirTakeover(t *testing.T) {
	srv := newAttackRegistry(t)
	ref := srv.Ref("state/app:1")
	pushSmall(t, ref, 20)

	// takeOver sets up a cache, then the member moves its .cachectl away.
	takeOver := func(t *testing.T, images ...string) (*attackEnv, string) {
		e := newAttackEnv(t)
		root := e.path("cache", "sif")
		e.writeSpec(sifCache("sif", root, "0644", append([]string{ref}, images...)))
		e.mustApply()
		state := filepath.Join(root, ".cachectl")
		e.attack("rename", state, state+".old")
		return e, state
	}

	t.Run("lock-symlink", func(t *testing.T) {
		e, state := takeOver(t)
		private := e.path("private")
		victimDir(t, private, 0o700)
		victimFile(t, filepath.Join(private, "shadow"), "root:$6$not-for-the-group$:19000:0:99999:7:::\n", 0o600)
		v := watchVictims(t, private)
		e.attack("mkdir", state)
		e.attack("copy", filepath.Join(state+".old", "index.json"), filepath.Join(state, "index.json"))
		e.attack("symlink", filepath.Join(private, "shadow"), filepath.Join(state, "lock"))
		sif := e.path("adopt.sif") // a valid SIF to import
		b, err := os.ReadFile(filepath.Join(filepath.Dir(state), srv.Addr, "state", "app:1"))
		must(t, err)
		must(t, os.WriteFile(sif, b, 0o644))
		for _, args := range [][]string{applyArgs, {"import", "sif", sif, "adopted:1"}} {
			r := e.cachectl(args...)
			expectRefused(t, r, ".cachectl")
			v.check(args[0] + " with a lock that is a symlink to a root-only file")
		}
	})

	t.Run("forged-index", func(t *testing.T) {
		e, state := takeOver(t)
		root := filepath.Dir(state)
		victim := e.path("victim")
		victimDir(t, victim, 0o755)
		victimDir(t, filepath.Join(victim, "sub"), 0o755)
		victimFile(t, filepath.Join(victim, "data"), "root's data, 29 bytes long.\n", 0o644)
		fi, err := os.Stat(filepath.Join(victim, "data"))
		must(t, err)
		v := watchVictims(t, victim)
		// The member reads the real index (0644) and adds a forged entry
		// and directory; they can stat the victim (its directory is 0755).
		ix := readJSON(t, filepath.Join(state+".old", "index.json"))
		entries := ix["entries"].([]any)
		forged := copyJSON(entries[0].(map[string]any))
		forged["name"], forged["ref"] = "v/data", srv.Ref("gone/old:1")
		forged["size"], forged["mtime"] = fi.Size(), fi.ModTime()
		ix["entries"] = append(entries, forged)
		ix["dirs"] = append(ix["dirs"].([]any), "v", "v/sub")
		e.attack("mkdir", state)
		e.attackStdin(marshalJSON(t, ix), "write", filepath.Join(state, "index.json"))
		e.attack("symlink", victim, filepath.Join(root, "v"))
		for _, args := range [][]string{{"plan"}, applyArgs, {"list"}, {"gc"}} {
			r := e.cachectl(args...)
			expectRefused(t, r, ".cachectl")
			v.check(args[0] + " with a forged index")
		}
	})

	t.Run("symlinked-state", func(t *testing.T) {
		e, state := takeOver(t)
		other := e.path("backup-job")
		victimDir(t, other, 0o755)
		victimFile(t, filepath.Join(other, "lock"), "held by the backup job, pid 4242\n", 0o644)
		victimDir(t, filepath.Join(other, "staging"), 0o700)
		victimFile(t, filepath.Join(other, "staging", "half-written.tar"), "the backup job's work\n", 0o600)
		v := watchVictims(t, other)
		e.attack("symlink", other, state)
		for _, args := range [][]string{applyArgs, {"plan"}, {"list"}} {
			r := e.cachectl(args...)
			expectRefused(t, r, ".cachectl")
			v.check(args[0] + " with .cachectl a symlink to another directory")
		}
	})

	t.Run("staging-race", func(t *testing.T) {
		// A new image behind a proxy that holds each blob for 1.5 s: the
		// apply sits between creating staging/ and creating its work
		// directory in it for that long.
		px := registrytest.StartSlowProxy(t, srv.URL, 1500*time.Millisecond, nil)
		slow := px.Addr + "/state/slow:1"
		pushSmall(t, srv.Ref("state/slow:1"), 21)
		e, state := takeOver(t)
		private := e.path("private")
		victimDir(t, private, 0o700)
		victimFile(t, filepath.Join(private, "key"), "-----BEGIN PRIVATE KEY-----\n", 0o600)
		v := watchVictims(t, private)
		e.attack("mkdir", state)
		e.attack("copy", filepath.Join(state+".old", "index.json"), filepath.Join(state, "index.json"))
		stop := e.background("stagingrace", state, private, "60s")
		e.writeSpec(sifCache("sif", filepath.Dir(state), "0644", []string{ref, slow}))
		r := e.cachectl(applyArgs...)
		t.Logf("attacker: %s", strings.TrimSpace(stop()))
		expectRefused(t, r, ".cachectl")
		v.check("apply while staging/ was replaced by a symlink to a root-only directory")
	})
}

// newAttackRegistry starts the real registry for a test whose subtests
// each make their own attackEnv (skipping as newAttackEnv does).
func newAttackRegistry(t *testing.T) *registrytest.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("attack tests skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("attack tests need root: they run cachectl as root while a real unprivileged member of the cache group (created with useradd) attacks; run the tests as root")
	}
	registrytest.RequireTool(t, "mksquashfs")
	return registrytest.StartDistribution(t)
}

func readJSON(t testing.TB, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	var m map[string]any
	must(t, json.Unmarshal(b, &m))
	return m
}

func marshalJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	must(t, err)
	return append(b, '\n')
}

func copyJSON(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var c map[string]any
	json.Unmarshal(b, &c)
	return c
}

// TestAttackInvalidIndexNames (issue 9, item 4): an index (hand-edited, or
// written by an older or broken tool) that holds names no spec could
// produce — escaping the root, empty, absolute, with a NUL, inside
// .cachectl, with empty or "." components — as an artifact's name or as a
// directory cachectl created. plan, apply and list must each exit 1 with
// an error about the index, never panic (a stack trace and exit code 2,
// which monitoring reads as "drift"), and never touch the file outside the
// root that the name points at (the forged entry carries its size and
// mtime, so that a delete would go ahead).
func TestAttackInvalidIndexNames(t *testing.T) {
	srv := newAttackRegistry(t)
	ref := srv.Ref("names/app:1")
	pushSmall(t, ref, 30)
	e := newAttackEnv(t)
	root := e.path("cache", "sif")
	e.writeSpec(sifCache("sif", root, "0644", []string{ref}))
	e.mustApply()
	victim := e.path("victim")
	victimDir(t, victim, 0o755)
	victimDir(t, filepath.Join(victim, "dir"), 0o755)
	victimFile(t, filepath.Join(victim, "data"), "root's data\n", 0o644)
	fi, err := os.Stat(filepath.Join(victim, "data"))
	must(t, err)
	v := watchVictims(t, victim)

	ixPath := filepath.Join(root, ".cachectl", "index.json")
	orig, err := os.ReadFile(ixPath)
	must(t, err)
	ixMode, err := os.Stat(ixPath)
	must(t, err)
	names := []struct{ label, name string }{
		{"dotdot", "a/../../x"},
		{"empty", ""},
		{"absolute", filepath.Join(victim, "data")},
		{"escape-to-victim", "../../victim/data"},
		{"escape-via-dir", "a/../../../victim/data"},
		{"nul", "nul\x00byte"},
		{"in-state-dir", ".cachectl/lock"},
		{"empty-component", "a//b"},
		{"dot-component", "./x"},
		{"trailing-slash", "x/"},
	}
	for _, where := range []string{"entries", "dirs"} {
		for _, n := range names {
			bad := n.name
			t.Run(where+"/"+n.label, func(t *testing.T) {
				var ix map[string]any
				must(t, json.Unmarshal(orig, &ix))
				if where == "entries" {
					entries := ix["entries"].([]any)
					forged := copyJSON(entries[0].(map[string]any))
					forged["name"], forged["ref"] = bad, srv.Ref("names/gone:1")
					forged["size"], forged["mtime"] = fi.Size(), fi.ModTime()
					ix["entries"] = append(entries, forged)
				} else {
					d := strings.Replace(bad, "victim/data", "victim/dir", 1)
					ix["dirs"] = append(ix["dirs"].([]any), d)
				}
				must(t, os.WriteFile(ixPath, marshalJSON(t, ix), ixMode.Mode()))
				defer os.WriteFile(ixPath, orig, ixMode.Mode())
				for _, args := range [][]string{{"plan"}, applyArgs, {"list"}} {
					r := e.cachectl(args...)
					expectRefused(t, r, "index")
					v.check(fmt.Sprintf("%s with %q in the index's %s", args[0], bad, where))
				}
			})
		}
	}
}

// TestAttackEditedPlan (issue 9, item 5): a plan saved with plan -out is
// edited before apply PLANFILE runs it as root. Each edit must make apply
// refuse the whole plan before it changes anything (exit 1, an error about
// the plan), leaving the cache root (but for .cachectl/) and the victims
// outside it exactly as they were:
//   - dir-path: a directory change's path points outside the root;
//   - setuid-mode: an artifact's mode is 4777;
//   - owner: an artifact's uid/gid are the attacker's;
//   - digest: a create's digest and manifest are changed (the other
//     changes must not run first);
//   - root: the root (and every path) is moved to a victim directory, with
//     the fingerprint that directory has;
//   - added-change: a create for an image the spec does not name.
//
// The unedited plan applies (the control).
func TestAttackEditedPlan(t *testing.T) {
	srv := newAttackRegistry(t)
	refs := []string{srv.Ref("edit/app0:1"), srv.Ref("edit/app1:1")}
	for i, ref := range refs {
		pushSmall(t, ref, int64(40+i))
	}
	extraRef := srv.Ref("edit/extra:1")
	extraDigest := pushSmall(t, extraRef, 42).String()

	// setUp returns an environment whose cache holds app0, whose
	// directory <root>/REGISTRY/edit drifted to 0755, and a saved plan
	// (as JSON) that creates app1 and fixes that directory.
	setUp := func(t *testing.T) (*attackEnv, string, map[string]any) {
		e := newAttackEnv(t)
		root := e.path("cache", "sif")
		e.writeSpec(sifCache("sif", root, "0644", refs[:1]))
		e.mustApply()
		must(t, os.Chmod(filepath.Join(root, srv.Addr, "edit"), 0o755))
		e.writeSpec(sifCache("sif", root, "0644", refs))
		planFile := e.path("cache.plan")
		if r := e.cachectl("plan", "-out", planFile); r.code != 0 {
			t.Fatalf("plan -out failed:\n%s", r)
		}
		p := readJSON(t, planFile)
		var kinds []string
		for _, c := range p["changes"].([]any) {
			ch := c.(map[string]any)
			kinds = append(kinds, fmt.Sprint(ch["kind"], " ", ch["action"]))
		}
		sort.Strings(kinds)
		if fmt.Sprint(kinds) != "[artifact create directory update]" && fmt.Sprint(kinds) != "[artifact create artifact no-op directory update]" {
			t.Fatalf("unexpected plan: %v", kinds)
		}
		return e, planFile, p
	}
	change := func(p map[string]any, kind string) map[string]any {
		for _, c := range p["changes"].([]any) {
			if ch := c.(map[string]any); ch["kind"] == kind && ch["action"] != "no-op" {
				return ch
			}
		}
		panic("no " + kind + " change")
	}

	cases := []struct {
		name string
		edit func(e *attackEnv, p map[string]any, victim string)
	}{
		{"unedited", nil},
		{"dir-path", func(e *attackEnv, p map[string]any, victim string) {
			change(p, "directory")["path"] = filepath.Join(victim, "dir")
		}},
		{"setuid-mode", func(e *attackEnv, p map[string]any, victim string) {
			change(p, "artifact")["mode"] = "4777"
		}},
		{"owner", func(e *attackEnv, p map[string]any, victim string) {
			ch := change(p, "artifact")
			ch["uid"], ch["gid"], ch["owner"] = e.uid, e.gid, attackerUser
		}},
		{"digest", func(e *attackEnv, p map[string]any, victim string) {
			ch := change(p, "artifact")
			d := []byte(ch["manifest"].(string))
			d[len(d)-1] ^= 1 // another hex digit
			ch["manifest"], ch["digest"] = string(d), string(d)
		}},
		{"root", func(e *attackEnv, p map[string]any, victim string) {
			rp := p["roots"].([]any)[0].(map[string]any)
			old := rp["root"].(string)
			rp["root"] = victim
			if st, err := cacheroot.Scan(victim, cacheroot.ScanOptions{Runtime: spec.RuntimeApptainer, SkipUnmanaged: true}); err == nil {
				rp["fingerprint"] = st.Fingerprint // what apply will find there
			}
			for _, c := range p["changes"].([]any) {
				ch := c.(map[string]any)
				ch["path"] = victim + strings.TrimPrefix(ch["path"].(string), old)
			}
		}},
		{"added-change", func(e *attackEnv, p map[string]any, victim string) {
			ch := copyJSON(change(p, "artifact"))
			ch["address"] = fmt.Sprintf("cache.sif[%q]", extraRef)
			ch["ref"], ch["name"] = extraRef, srv.Addr+"/edit/extra:1"
			ch["path"] = strings.TrimSuffix(ch["path"].(string), "app1:1") + "extra:1"
			ch["digest"], ch["manifest"] = extraDigest, extraDigest
			p["changes"] = append(p["changes"].([]any), ch)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, planFile, p := setUp(t)
			root := e.path("cache", "sif")
			victim := e.path("victim")
			victimDir(t, victim, 0o755)
			victimDir(t, filepath.Join(victim, "dir"), 0o755)
			victimFile(t, filepath.Join(victim, "data"), "root's data\n", 0o644)
			if tc.edit != nil {
				tc.edit(e, p, victim)
				must(t, os.WriteFile(planFile, marshalJSON(t, p), 0o600))
			}
			v := watchVictims(t, victim)
			before := snapshot(t, map[string]bool{".cachectl": true}, root)
			r := e.cachectl("apply", planFile, "--progress", "none")
			if tc.edit == nil {
				checkClean(t, r, 0)
				fi, err := os.Stat(filepath.Join(root, srv.Addr, "edit", "app1:1"))
				if err != nil || fi.Mode() != 0o644 {
					t.Errorf("the unedited plan did not create app1 0644: %v %v\n%s", fi, err, r)
				}
				return
			}
			expectRefused(t, r, "plan")
			if d := diffSnapshots(before, snapshot(t, map[string]bool{".cachectl": true}, root)); len(d) > 0 {
				t.Errorf("apply of an edited plan changed the cache root:\n  %s\n%s", strings.Join(d, "\n  "), r)
			}
			v.check("apply of an edited plan")
		})
	}
}

// TestAttackGCDuringApply (issue 9, item 6): a cron "cachectl gc" runs,
// over and over, while an apply pulls into the same blob store (the
// registry slowed so that the apply is mid-way for a few seconds). The
// blobs the apply just fetched are in no index yet; gc must not remove
// them from under it: the apply succeeds for every artifact, and gc says
// that it waited for the apply or skipped blobs in use.
func TestAttackGCDuringApply(t *testing.T) {
	srv := newAttackRegistry(t)
	px := registrytest.StartSlowProxy(t, srv.URL, 300*time.Millisecond, nil)
	var refs []string
	for i := 0; i < 4; i++ {
		registrytest.Push(t, registrytest.Image(t, 2, 16<<10, int64(50+i)), srv.Ref(fmt.Sprintf("gc/img%d:1", i)))
		refs = append(refs, fmt.Sprintf("%s/gc/img%d:1", px.Addr, i))
	}
	e := newAttackEnv(t)
	root := e.path("cache", "sif")
	e.writeSpec(sifCache("sif", root, "0644", refs))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	apply, out := e.cachectlCmd(ctx, applyArgs...)
	must(t, apply.Start())
	done := make(chan error, 1)
	go func() { done <- apply.Wait() }()
	var gcs []result
	var applyErr error
loop:
	for {
		select {
		case applyErr = <-done:
			break loop
		default:
		}
		gcs = append(gcs, e.cachectl("gc"))
		time.Sleep(50 * time.Millisecond)
	}
	ar := result{args: applyArgs, out: out.String()}
	if ee, ok := applyErr.(*exec.ExitError); ok {
		ar.code = ee.ExitCode()
	} else if applyErr != nil {
		t.Fatal(applyErr)
	}
	removed, said := 0, false
	for _, g := range gcs {
		checkClean(t, g, 0, 1)
		if m := regexp.MustCompile(`Removed (\d+) blobs`).FindStringSubmatch(g.out); m != nil {
			n, _ := strconv.Atoi(m[1])
			removed += n
		}
		if regexp.MustCompile(`(?i)\bwait|\bskip`).MatchString(g.out) {
			said = true
		}
	}
	t.Logf("%d gc runs during the apply removed %d blobs in all; apply exit %d", len(gcs), removed, ar.code)
	checkClean(t, ar, 0)
	for _, ref := range refs {
		name := strings.TrimPrefix(ref, px.Addr+"/")
		if _, err := os.Stat(filepath.Join(root, px.Addr, name)); err != nil {
			t.Errorf("artifact %s missing after the apply: %v", ref, err)
		}
	}
	if ar.code != 0 {
		t.Logf("%s", ar)
	}
	if len(gcs) == 0 {
		t.Fatal("no gc ran during the apply")
	}
	if !said {
		t.Errorf("no gc run said that it waited for the apply or skipped blobs in use; the first said:\n%s", gcs[0])
	}
}
