package apptainer

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachectl/cachectl/providers/buildtest"
)

// sourceEnv sources script with sh (-u: no unset variable may be used) in
// env and returns the value of every name (and whether it is set).
func sourceEnv(t testing.TB, script string, env []string, names []string) map[string]*string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "env.sh")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// Print each variable NUL-terminated, "-" when unset.
	var q strings.Builder
	q.WriteString(`set -u; cd "$1"; . "$0"`)
	for _, n := range names {
		q.WriteString(`; if [ -n "${` + n + `+x}" ]; then printf '+%s\0' "$` + n + `"; else printf -- '-\0'; fi`)
	}
	cmd := exec.Command("sh", "-c", q.String(), p, dir)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sourcing failed: %v\n%s\n%s", err, out, script)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("sourcing the script created files: %v", ents)
	}
	vals := strings.Split(string(out), "\x00")
	if len(vals) != len(names)+1 {
		t.Fatalf("unexpected output %q", out)
	}
	m := map[string]*string{}
	for i, n := range names {
		if v, ok := strings.CutPrefix(vals[i], "+"); ok {
			m[n] = &v
		} else {
			m[n] = nil
		}
	}
	return m
}

// wantEnv is what sourcing the env script must give for image ENV env in
// a host environment host: PATH is the image's; another variable keeps a
// non-empty value it already has (from the host or an earlier entry),
// else takes the image's; entries with invalid names set nothing.
func wantEnv(env []string, host map[string]string) map[string]*string {
	cur := map[string]*string{}
	for k, v := range host {
		v := v
		cur[k] = &v
	}
	for _, e := range env {
		name, value, hasValue := strings.Cut(e, "=")
		if !envNameRE.MatchString(name) {
			continue
		}
		switch {
		case name == "PATH" && hasValue:
			cur[name] = &value
		case cur[name] != nil && *cur[name] != "":
		case !hasValue:
			empty := ""
			cur[name] = &empty
		default:
			cur[name] = &value
		}
	}
	return cur
}

// TestEnvScriptValuesAreData is fault 1 of issue 10: every image ENV value,
// whatever its characters ($(…), backquotes, backslashes, quotes, $HOME,
// TAB, newline, every ASCII byte), comes out of the sourced env script
// byte for byte, and nothing in it runs.
func TestEnvScriptValuesAreData(t *testing.T) {
	buildtest.RequireTools(t, "sh")
	env := sifShapes()[0].cfg.Env
	host := map[string]string{"SIMPLE": "from-host", "HOME": "/home/x", "PATH": "/usr/bin:/bin"}
	var hostEnv, names []string
	for k, v := range host {
		hostEnv = append(hostEnv, k+"="+v)
	}
	want := wantEnv(env, host)
	for n := range want {
		names = append(names, n)
	}
	got := sourceEnv(t, EnvScript(env), hostEnv, names)
	for _, n := range names {
		w, g := want[n], got[n]
		switch {
		case w == nil && g == nil:
		case w == nil || g == nil:
			t.Errorf("%s: set=%v, want set=%v", n, g != nil, w != nil)
		case *w != *g:
			t.Errorf("%s = %q, want %q", n, *g, *w)
		}
		if g != nil && strings.Contains(*g, injected) && (w == nil || !strings.Contains(*w, injected)) {
			t.Errorf("%s: image text ran as shell code: %q", n, *g)
		}
	}
	if *got["DATE"] != "$(echo "+injected+")" || *got["BQ"] != "a`echo "+injected+"`b" || *got["TAB"] != "a\tb" ||
		*got["BS"] != `C:\temp\new\` || *got["HOMEREF"] != "$HOME/x" || *got["ASCII"] != allASCII {
		t.Errorf("awkward values changed: DATE=%q BQ=%q TAB=%q BS=%q HOMEREF=%q", *got["DATE"], *got["BQ"], *got["TAB"], *got["BS"], *got["HOMEREF"])
	}
}

// FuzzEnvScript: any value of a valid name survives the env script.
func FuzzEnvScript(f *testing.F) {
	for _, e := range sifShapes()[0].cfg.Env {
		if _, v, ok := strings.Cut(e, "="); ok {
			f.Add(v)
		}
	}
	f.Add("'\"'\"'")
	f.Add("\\\n$")
	if _, err := exec.LookPath("sh"); err != nil {
		f.Skip("sh not installed")
	}
	f.Fuzz(func(t *testing.T, v string) {
		if strings.ContainsRune(v, 0) {
			t.Skip("NUL cannot be in an environment value")
		}
		got := sourceEnv(t, EnvScript([]string{"V=" + v, "PATH=" + v}), []string{"PATH=/usr/bin:/bin"}, []string{"V", "PATH"})
		if v != "" && (got["V"] == nil || *got["V"] != v) {
			t.Errorf("V: got %v, want %q", got["V"], v)
		}
		if got["PATH"] == nil || *got["PATH"] != v {
			t.Errorf("PATH: got %v, want %q", got["PATH"], v)
		}
	})
}

func TestEnvScriptSkipsInvalidNames(t *testing.T) {
	s := EnvScript(sifShapes()[0].cfg.Env)
	for _, bad := range []string{"1BAD", "BAD-NAME", "a.b", "export =", "nothing"} {
		if strings.Contains(s, bad) {
			t.Errorf("script contains %q:\n%s", bad, s)
		}
	}
}

// TestRunscriptRuns executes both runtimes' runscripts with sh and checks
// the arguments the final command receives, with and without
// SINGULARITY_NO_EVAL: ENTRYPOINT and CMD strings are data.
func TestRunscriptRuns(t *testing.T) {
	buildtest.RequireTools(t, "sh", "printf")
	for _, rt := range []*Runtime{Apptainer, SingularityCE} {
		t.Run(rt.Name, func(t *testing.T) {
			dir := t.TempDir()
			run := func(ep, cmd []string, noEval bool, args ...string) string {
				t.Helper()
				p := filepath.Join(dir, "runscript")
				rs, err := rt.Runscript(ep, cmd)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(rs), 0o755); err != nil {
					t.Fatal(err)
				}
				c := exec.Command("sh", append([]string{p}, args...)...)
				c.Env = []string{"PATH=/usr/bin:/bin", "HOME=/home/x"}
				if noEval {
					c.Env = append(c.Env, "SINGULARITY_NO_EVAL=1")
				}
				out, err := c.CombinedOutput()
				if err != nil {
					t.Fatalf("runscript failed: %v\n%s", err, out)
				}
				return string(out)
			}
			pf := []string{"printf", "[%s]"}
			awkward := []string{"a b", "it's", "$HOME", "`echo " + injected + "`", `"q"`, `a\b`, "tab\there", "nl\nx", "$(echo " + injected + ")"}
			want := "[a b][it's][$HOME][`echo " + injected + "`][\"q\"][a\\b][tab\there][nl\nx][$(echo " + injected + ")]"
			for _, noEval := range []bool{false, true} {
				if got := run(pf, awkward, noEval); got != want {
					t.Errorf("noEval=%v entrypoint+cmd: %q", noEval, got)
				}
				if got := run(pf, awkward, noEval, "x y", "z"); got != "[x y][z]" {
					t.Errorf("noEval=%v args replace cmd: %q", noEval, got)
				}
				if got := run(nil, append(append([]string{}, pf...), "c d"), noEval); got != "[c d]" {
					t.Errorf("noEval=%v cmd only: %q", noEval, got)
				}
				if got := run(nil, []string{"false"}, noEval, "printf", "<%s>", "e f"); got != "<e f>" {
					t.Errorf("noEval=%v cmd replaced by args: %q", noEval, got)
				}
				if got := run(pf, nil, noEval, "g h"); got != "[g h]" {
					t.Errorf("noEval=%v entrypoint only: %q", noEval, got)
				}
			}
		})
	}
}

// FuzzRunscript: any ENTRYPOINT and CMD strings reach the command as they
// are, through both runtimes' runscripts, evaluated or not.
func FuzzRunscript(f *testing.F) {
	f.Add("$(echo "+injected+")", "`echo "+injected+"`", "a'b\"c\\d\n$HOME")
	f.Add("", "\t", "'")
	if _, err := exec.LookPath("sh"); err != nil {
		f.Skip("sh not installed")
	}
	printf, err := exec.LookPath("printf")
	if err != nil {
		f.Skip("printf not installed")
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, a, b, c string) {
		if strings.ContainsRune(a+b+c, 0) {
			t.Skip("NUL cannot be in an argument")
		}
		want := "<" + a + ">" + "<" + b + ">" + "<" + c + ">"
		for _, rt := range []*Runtime{Apptainer, SingularityCE} {
			rs, err := rt.Runscript([]string{printf, "<%s>", a}, []string{b, c})
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, rt.Name+"-runscript")
			if err := os.WriteFile(p, []byte(rs), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, env := range [][]string{nil, {"SINGULARITY_NO_EVAL=1"}} {
				cmd := exec.Command("sh", p)
				cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=/home/x"}, env...)
				out, err := cmd.Output()
				if err != nil || string(out) != want {
					t.Errorf("%s %v: %q (%v), want %q", rt.Name, env, out, err, want)
				}
			}
		}
	})
}

// TestActionScriptsReadTheirRuntimesVariables is fault 2 of issue 10: a
// singularity cache holds SingularityCE's action scripts, which read
// SINGULARITY_SHELL and SINGULARITY_APPNAME, the variables `singularity
// shell -s` and `--app` set. (Apptainer 1.5.3's own scripts read the
// SINGULARITY_* names too: Apptainer sets both spellings.)
func TestActionScriptsReadTheirRuntimesVariables(t *testing.T) {
	buildtest.RequireTools(t, "sh", "echo")
	echo, _ := exec.LookPath("echo")
	for rt, noApp := range map[*Runtime]string{
		Apptainer:     "No Apptainer runscript for contained app: nosuch",
		SingularityCE: "No Singularity runscript for contained app: nosuch",
	} {
		run := func(action string, env ...string) string {
			t.Helper()
			cmd := exec.Command("sh", "-c", rt.static("actions/"+action), "sh", "arg 1")
			cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
			out, _ := cmd.CombinedOutput()
			return strings.TrimSpace(string(out))
		}
		if got := run("shell", "SINGULARITY_SHELL="+echo); got != "arg 1" {
			t.Errorf("%s shell with SINGULARITY_SHELL=%s: %q", rt.Name, echo, got)
		}
		if got := run("run", "SINGULARITY_APPNAME=nosuch"); got != noApp {
			t.Errorf("%s run with SINGULARITY_APPNAME=nosuch: %q", rt.Name, got)
		}
	}
	if !strings.Contains(SingularityCE.static("env/99-base.sh"), `PS1="Singularity> "`) ||
		!strings.Contains(Apptainer.static("env/99-base.sh"), `PS1="Apptainer> "`) {
		t.Error("prompts")
	}
}

// TestApptainer99BaseUnderSetU is fault 3 of issue 10: Apptainer 1.5.3's
// 99-base.sh works under `set -u` with LD_LIBRARY_PATH unset and keeps a
// PS1 that is already set. (SingularityCE 4.5.1's own file does neither;
// a singularity cache holds it byte for byte, see TestSIFGoldens.)
func TestApptainer99BaseUnderSetU(t *testing.T) {
	buildtest.RequireTools(t, "sh")
	script := Apptainer.static("env/99-base.sh")
	// (sh sets a PS1 of its own: unset it first.)
	got := sourceEnv(t, "unset PS1\n"+script, []string{"PATH=/usr/bin:/bin"}, []string{"LD_LIBRARY_PATH", "PS1"})
	if *got["LD_LIBRARY_PATH"] != "/.singularity.d/libs" || *got["PS1"] != "Apptainer> " {
		t.Errorf("unset: LD_LIBRARY_PATH=%q PS1=%q", *got["LD_LIBRARY_PATH"], *got["PS1"])
	}
	got = sourceEnv(t, script, []string{"PATH=/usr/bin:/bin", "LD_LIBRARY_PATH=/x", "PS1=mine$ "}, []string{"LD_LIBRARY_PATH", "PS1"})
	if *got["LD_LIBRARY_PATH"] != "/x:/.singularity.d/libs" || *got["PS1"] != "mine$ " {
		t.Errorf("set: LD_LIBRARY_PATH=%q PS1=%q", *got["LD_LIBRARY_PATH"], *got["PS1"])
	}
}

func TestBuildDateFormat(t *testing.T) {
	tm := time.Date(2026, 2, 16, 10, 1, 6, 0, time.FixedZone("CET", 3600))
	if got, want := buildDate(tm), "Monday_16_February_2026_10:1:6_CET"; got != want {
		t.Errorf("buildDate = %q, want %q", got, want)
	}
	back, err := parseBuildDate(buildDate(tm), 3600)
	if err != nil || !back.Equal(tm) {
		t.Errorf("parseBuildDate: %v %v", back, err)
	}
}

func TestBuildLabels(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	src := buildSource{Ref: "alpine:3.20", Name: "docker.io/library/alpine:3.20", Digest: "sha256:ab", Arch: "arm64"}
	a, s := Apptainer.BuildLabels(src, now), SingularityCE.BuildLabels(src, now)
	if a["org.label-schema.usage.apptainer.version"] != "1.5.3" || a["org.opencontainers.image.base.name"] != src.Name ||
		a["org.opencontainers.image.base.digest"] != "sha256:ab" || a["org.label-schema.build-arch"] != "arm64" {
		t.Errorf("apptainer labels %v", a)
	}
	if s["org.label-schema.usage.singularity.version"] != "4.5.1" || s["org.opencontainers.image.base.name"] != "" ||
		s["org.label-schema.usage.apptainer.version"] != "" {
		t.Errorf("singularity labels %v", s)
	}
	// Local sources: their bootstrap agent, no base labels.
	l := Apptainer.BuildLabels(buildSource{Ref: "oci-archive:/srv/app.tar", Name: "localhost/app:1", Digest: "sha256:ab"}, now)
	if l["org.label-schema.usage.singularity.deffile.bootstrap"] != "oci-archive" || l["org.label-schema.usage.singularity.deffile.from"] != "/srv/app.tar" ||
		l["org.opencontainers.image.base.name"] != "" {
		t.Errorf("local source labels %v", l)
	}
}

func TestDeffileBootstrapAgents(t *testing.T) {
	for ref, want := range map[string]string{
		"determinedai/pytorch-ngc:0.38.1":     "bootstrap: docker\nfrom: determinedai/pytorch-ngc:0.38.1\n\n",
		"oci-layout:/srv/images/layout:app:1": "bootstrap: oci\nfrom: /srv/images/layout:app:1\n\n",
		"oci-archive:/srv/images/app.tar":     "bootstrap: oci-archive\nfrom: /srv/images/app.tar\n\n",
		"docker-archive:/srv/images/app.tar":  "bootstrap: docker-archive\nfrom: /srv/images/app.tar\n\n",
		"127.0.0.1:5000/oci-archive/thing:v1": "bootstrap: docker\nfrom: 127.0.0.1:5000/oci-archive/thing:v1\n\n",
	} {
		if got := Deffile(ref); got != want {
			t.Errorf("Deffile(%q) = %q, want %q", ref, got, want)
		}
	}
}
