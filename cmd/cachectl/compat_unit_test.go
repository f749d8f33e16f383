package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachectl/cachectl/spec"
)

func TestCompatArgv(t *testing.T) {
	for _, tc := range []struct{ argv, want []string }{
		{[]string{"/usr/bin/cachectl", "plan"}, []string{"plan"}},
		{[]string{"/usr/bin/manage-singularity-cache", "-l"}, []string{"compat", "manage-singularity-cache", "-l"}},
		{[]string{"manage-enroot-cache", "-s", "/x", "--cuda"}, []string{"compat", "manage-enroot-cache", "-s", "/x", "--cuda"}},
	} {
		if got := compatArgv(tc.argv); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("compatArgv(%q) = %q, want %q", tc.argv, got, tc.want)
		}
	}
}

func TestParseEnrootArgs(t *testing.T) {
	a, err := parseEnrootArgs([]string{"-s", "/shared/enroot", "--username", "bob", "--cuda", "--cpu", "-N", "alpine:3.20"})
	if err != nil || a.dir != "/shared/enroot" || a.username != "bob" || !a.nocreate || len(a.items) != 3 || a.items[2].ref != "alpine:3.20" {
		t.Fatalf("parse = %+v, %v", a, err)
	}
	if a, err = parseEnrootArgs([]string{"--shared=/d", "-l"}); err != nil || !a.list || a.dir != "/d" {
		t.Fatalf("parse -l = %+v, %v", a, err)
	}
	for _, bad := range [][]string{{"-s", "/d", "--cpu", "--username", "x"}, {"-s"}, {"-s", "/d"}, {"--cuda"}, {"-s", "/d", "-l", "--cpu"}, {"-s", "/d", "UPPER:case"}} {
		if _, err := parseEnrootArgs(bad); err == nil {
			t.Errorf("parseEnrootArgs(%q) accepted", bad)
		}
	}
}

func TestAddToCompat(t *testing.T) {
	out, changed, err := addToCompat(nil, "c.compat.hcl", "singularity_shared_sif", &compatCache{runtime: spec.RuntimeApptainer, root: "/shared/sif"}, "b:1")
	if err != nil || !changed {
		t.Fatal(err)
	}
	out, changed, err = addToCompat(out, "c.compat.hcl", "singularity_shared_sif", &compatCache{runtime: spec.RuntimeApptainer, root: "/shared/sif"}, "a:1")
	if err != nil || !changed {
		t.Fatal(err)
	}
	out, changed, err = addToCompat(out, "c.compat.hcl", "main", nil, "c:1")
	if err != nil || !changed {
		t.Fatal(err)
	}
	again, changed, err := addToCompat(out, "c.compat.hcl", "main", nil, "c:1")
	if err != nil || changed || string(again) != string(out) {
		t.Fatalf("adding an image twice changed the file: %v", err)
	}
	got := string(out)
	for _, want := range []string{compatHeader, "cache \"singularity_shared_sif\" {\n  runtime = \"apptainer\"\n  root    = \"/shared/sif\"\n  images = [\n    \"a:1\",\n    \"b:1\",\n  ]\n}", "cache_images \"main\" {\n  images = [\n    \"c:1\",\n  ]\n}"} {
		if !strings.Contains(got, want) {
			t.Errorf("compat file lacks %q:\n%s", want, got)
		}
	}
	if _, _, err := addToCompat([]byte("cache_images \"main\" {\n  images = concat([\"x:1\"], [])\n}\n"), "c.hcl", "main", nil, "y:1"); err == nil || !strings.Contains(err.Error(), "not a plain list of strings") {
		t.Errorf("a hand-edited list: %v", err)
	}
}

func TestReadNetrc(t *testing.T) {
	p := filepath.Join(t.TempDir(), "creds")
	os.WriteFile(p, []byte("# comment\nmachine auth.docker.io login bob password s3cret\nmachine nvcr.io\n  login $oauthtoken\n  password tok\n"), 0o600)
	n := readNetrc(p)
	if n["auth.docker.io"] != (netrcEntry{"bob", "s3cret"}) || n["nvcr.io"] != (netrcEntry{"$oauthtoken", "tok"}) {
		t.Fatalf("readNetrc = %v", n)
	}
	if len(readNetrc(p+".missing")) != 0 {
		t.Fatal("a missing file has entries")
	}
}

func TestMasterConfigImages(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "master.yaml")
	os.WriteFile(p, []byte("resource_manager:\n  type: slurm\n  apptainer_image_root: /shared/sif\ntask_container_defaults:\n  image:\n    cpu: my/cpu:1\n    gpu: my/gpu:1\n"), 0o644)
	m, err := readMasterConfig(p)
	if err != nil || m.imageRoot() != "/shared/sif" || m.defaultImage("cpu") != "my/cpu:1" || m.defaultImage("cuda") != "my/gpu:1" || m.defaultImage("rocm") != "" {
		t.Fatalf("master config: %+v %v", m, err)
	}
	os.WriteFile(p, []byte("task_container_defaults:\n  image: one/image:2\n"), 0o644)
	if m, err = readMasterConfig(p); err != nil || m.defaultImage("rocm") != "one/image:2" {
		t.Fatalf("one image: %v", err)
	}
	if m, err := readMasterConfig(filepath.Join(dir, "none.yaml")); m != nil || err != nil {
		t.Fatalf("a missing master.yaml: %v %v", m, err)
	}
}

// The compat commands' spec: the given one (which must exist, or be a
// compat file), else root's /etc/cachectl or the user's config directory.
func TestCompatSpecPath(t *testing.T) {
	dir := t.TempDir()
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	home := env(map[string]string{"HOME": "/home/bob"})
	for _, tc := range []struct {
		g       Globals
		euid    int
		getenv  func(string) string
		want    string
		wantErr string
	}{
		{Globals{Spec: "cachectl.hcl"}, 0, home, "/etc/cachectl/cachectl.hcl", ""},
		{Globals{Spec: "cachectl.hcl"}, 1000, home, "/home/bob/.config/cachectl/cachectl.hcl", ""},
		{Globals{Spec: "cachectl.hcl"}, 1000, env(map[string]string{"HOME": "/home/bob", "XDG_CONFIG_HOME": "/cfg"}), "/cfg/cachectl/cachectl.hcl", ""},
		{Globals{Spec: filepath.Join(dir, "site.hcl"), SpecGiven: true}, 0, home, filepath.Join(dir, "site.hcl"), ""},
		{Globals{Spec: filepath.Join(dir, "typo.hlc"), SpecGiven: true}, 0, home, "", "typo.hlc (given with -f/--spec or CACHECTL_SPEC) does not exist; give an existing spec file or directory, or give none to use /etc/cachectl/cachectl.hcl"},
		{Globals{Spec: filepath.Join(dir, "new.compat.hcl"), SpecGiven: true}, 0, home, filepath.Join(dir, "new.compat.hcl"), ""},
		{Globals{Spec: filepath.Join(dir, "old.hcl"), SpecGiven: true}, 0, home, filepath.Join(dir, "old.hcl"), ""},
	} {
		os.WriteFile(filepath.Join(dir, "site.hcl"), nil, 0o644)
		os.WriteFile(filepath.Join(dir, "old.compat.hcl"), nil, 0o644)
		got, err := compatSpecPath(&tc.g, tc.euid, tc.getenv)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("compatSpecPath(%+v) = %q, %v; want error %q", tc.g, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("compatSpecPath(%+v, euid %d) = %q, %v; want %q", tc.g, tc.euid, got, err, tc.want)
		}
	}
}

// A flag that takes a value does not take the next flag as its value, in
// both launcher commands (they share compatFlag).
func TestCompatFlagValueIsNotAFlag(t *testing.T) {
	if _, err := parseSingularityArgs([]string{"--root", "--cuda"}); err == nil || !strings.Contains(err.Error(), "--root needs a value") {
		t.Errorf("manage-singularity-cache --root --cuda: %v", err)
	}
	if a, err := parseSingularityArgs([]string{"--root=/r", "--cuda"}); err != nil || a.root != "/r" {
		t.Errorf("manage-singularity-cache --root=/r --cuda: %+v %v", a, err)
	}
	if _, err := parseEnrootArgs([]string{"-s", "--cuda"}); err == nil || !strings.Contains(err.Error(), "-s needs a value") {
		t.Errorf("manage-enroot-cache -s --cuda: %v", err)
	}
}
