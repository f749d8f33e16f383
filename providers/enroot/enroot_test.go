package enroot

import (
	"archive/tar"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachectl/cachectl/providers/buildtest"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/squashfs"
)

// TestBashQuoteMatchesBash compares bashQuote with bash's own ${a[@]@Q}.
func TestBashQuoteMatchesBash(t *testing.T) {
	buildtest.RequireTools(t, "bash")
	in := []string{"", "plain", "a b", "it's", "''", "tab\there", "x\x01y", "esc\x1b[0m", "del\x7f",
		`dollar$ and $(cmd) and "dq"`, "`bt`", `back\slash`, "ünïcødé ✓", "cr\rlf", "bell\a", "vt\vff\f", "bs\b", "q'\t'"}
	script := `a=(); while IFS= read -r -d '' x; do a+=("$x"); done; printf '%s\n' "${a[@]@Q}"`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = []string{"LANG=C.UTF-8", "LC_ALL=C.UTF-8"}
	cmd.Stdin = strings.NewReader(strings.Join(in, "\x00") + "\x00")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(got) != len(in) {
		t.Fatalf("bash printed %d lines for %d inputs: %q", len(got), len(in), out)
	}
	for i, s := range in {
		if q := bashQuote(s); q != got[i] {
			t.Errorf("bashQuote(%q) = %s, bash says %s", s, q, got[i])
		}
	}
}

func rawConfig(t *testing.T, cfg v1.Config) []byte {
	t.Helper()
	b, err := json.Marshal(v1.ConfigFile{Architecture: "amd64", OS: "linux", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func awkwardConfig() v1.Config {
	return v1.Config{
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin", "A=a b", `Q="q" 'x' $y`, "NL=one\ntwo", "EMPTY="},
		Entrypoint: []string{"/docker-entrypoint.sh", "it's", "$HOME", "tab\there"},
		Cmd:        []string{"nginx", "-g", "daemon off;", "multi\nline", ""},
		WorkingDir: "  /srv/my app  ",
		Labels:     map[string]string{"maintainer": "NGINX <docker@nginx.com>", "b.label": "x y"},
		Volumes:    map[string]struct{}{"/var/cache/nginx": {}, "/data": {}},
	}
}

func TestConfigureGolden(t *testing.T) {
	cases := map[string]v1.Config{
		"awkward": awkwardConfig(),
		"empty":   {},
		"cmdonly": {Cmd: []string{"/bin/bash"}},
		"eponly":  {Entrypoint: []string{"/init"}, WorkingDir: "/"},
	}
	for name, cfg := range cases {
		f, err := Configure(rawConfig(t, cfg))
		if err != nil {
			t.Fatal(err)
		}
		buildtest.Golden(t, name+".rc.golden", f.RC, *update)
		buildtest.Golden(t, name+".environment.golden", f.Environment, *update)
		buildtest.Golden(t, name+".fstab.golden", f.Fstab, *update)
	}
}

// TestRCRuns executes a generated /etc/rc with bash and checks the arguments
// the entrypoint receives.
func TestRCRuns(t *testing.T) {
	buildtest.RequireTools(t, "bash", "printf")
	dir := t.TempDir()
	cfg := v1.Config{Entrypoint: []string{"printf", "[%s]"}, Cmd: []string{"a b", "it's", "$HOME", "t\tx"}, WorkingDir: dir}
	f, err := Configure(rawConfig(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "rc")
	os.WriteFile(p, []byte(f.RC), 0o644)
	run := func(args ...string) string {
		c := exec.Command("bash", append([]string{p}, args...)...)
		c.Env = []string{"PATH=/usr/bin:/bin", "HOME=/h"}
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return string(out)
	}
	if got := run(); got != "[a b][it's][$HOME][t\tx]" {
		t.Errorf("default: %q", got)
	}
	if got := run("x y"); got != "[x y]" {
		t.Errorf("with args: %q", got)
	}
}

func TestLabelsKeepDocumentOrder(t *testing.T) {
	raw := []byte(`{"config":{"Labels":{"zeta":"1","alpha":"2","mid":"3"}}}`)
	f, err := Configure(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(f.RC, "# zeta 1\n# alpha 2\n# mid 3\n\nmkdir") {
		t.Errorf("rc:\n%s", f.RC)
	}
}

func TestFixPerms(t *testing.T) {
	cases := []struct {
		name string
		typ  byte
		mode int64
		want int64
	}{
		{"etc/shadow", tar.TypeReg, 0o000, 0o400},
		{"usr/bin/x", tar.TypeReg, 0o011, 0o511},
		{"usr/bin/sudo", tar.TypeReg, 0o4111, 0o4511},
		{"a/", tar.TypeDir, 0o555, 0o755},
		{"a/b/c/d/", tar.TypeDir, 0o500, 0o700},
		{"a/b/c/d/e/", tar.TypeDir, 0o500, 0o700}, // Enroot 4.1.2: 14 levels (older: 4)
		{"1/2/3/4/5/6/7/8/9/10/11/12/13/14/", tar.TypeDir, 0o500, 0o700},
		{"1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/", tar.TypeDir, 0o500, 0o500},
		{"1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/", tar.TypeDir, 0o000, 0o500},
		{"link", tar.TypeSymlink, 0o777, 0o777},
	}
	for _, c := range cases {
		h := &tar.Header{Name: c.name, Typeflag: c.typ, Mode: c.mode}
		fixPerms(h)
		if h.Mode != c.want {
			t.Errorf("%s %o -> %o, want %o", c.name, c.mode, h.Mode, c.want)
		}
	}
}

func testImage(t *testing.T, cfg v1.Config) v1.Image {
	base := buildtest.Layer(t,
		buildtest.Dir("bin/", 0o755),
		buildtest.Reg("bin/sh", 0o755, "#!/bin/true\n"),
		buildtest.Dir("etc/", 0o755),
		buildtest.Reg("etc/shadow", 0o000, "root:*:1::::::\n"),
		buildtest.Reg("etc/environment", 0o600, "OLD=1\n"),
		buildtest.Member{Name: "dev/", Type: tar.TypeDir, Mode: 0o755},
		buildtest.Member{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666},
		buildtest.Member{Name: "dev/shm/", Type: tar.TypeDir, Mode: 0o1777},
		buildtest.Member{Name: "home/u/", Type: tar.TypeDir, Mode: 0o700, UID: 1000, GID: 1000},
		buildtest.Member{Name: "home/u/f", Type: tar.TypeReg, Mode: 0o600, UID: 1000, GID: 1000, Body: "f\n"},
		buildtest.Member{Name: "usr/bin/sudo", Type: tar.TypeReg, Mode: 0o4711, Body: "sudo"},
		buildtest.Dir("srv/", 0o555),
	)
	return buildtest.Image(t, cfg, base)
}

func TestBuildSqsh(t *testing.T) {
	buildtest.RequireTools(t, "mksquashfs", "unsquashfs")
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "img.sqsh")
	cfg := awkwardConfig()
	b := New(squashfs.WithClock(func() time.Time { return time.Unix(1700000000, 0) }))
	if err := b.Build(ctx, testImage(t, cfg), providers.BuildRequest{Ref: "nginx:1", Processors: 1}, out); err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(ctx, out); err != nil {
		t.Fatal(err)
	}
	sb, err := squashfs.VerifyFile(out, 0)
	if err != nil || sb.CompressionName() != "lzo" {
		t.Errorf("superblock %+v %v", sb, err)
	}
	es, err := squashfs.List(ctx, out, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]squashfs.Entry{}
	for _, e := range es {
		m[e.Path] = e
		if e.Uid != 0 || e.Gid != 0 {
			t.Errorf("%s owned by %d/%d", e.Path, e.Uid, e.Gid)
		}
		if strings.HasPrefix(e.Path, "/dev/") {
			t.Errorf("%s: /dev not empty", e.Path)
		}
	}
	mode := func(p, want string) {
		t.Helper()
		if e, ok := m[p]; !ok || e.Mode != want {
			t.Errorf("%s: %+v, want mode %s", p, e, want)
		}
	}
	mode("/dev", "drwxr-xr-x")
	mode("/etc/shadow", "-r--------")
	mode("/usr/bin/sudo", "-rws--x--x")
	mode("/srv", "drwxr-xr-x")
	mode("/srv/my app", "drwxr-xr-x") // WORKDIR created
	mode("/home/u/f", "-rw-------")
	for _, f := range []string{"/etc/rc", "/etc/rc.local", "/etc/fstab", "/etc/environment"} {
		mode(f, "-rw-r--r--")
	}
	files, err := Configure(rawConfig(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"/etc/rc": files.RC, "/etc/environment": files.Environment,
		"/etc/fstab": files.Fstab, "/etc/rc.local": files.RCLocal} {
		got, err := squashfs.Cat(ctx, out, 0, name)
		if err != nil || string(got) != want {
			t.Errorf("%s = %q (%v), want %q", name, got, err, want)
		}
	}
}

func TestBuildCompressionOverride(t *testing.T) {
	buildtest.RequireTools(t, "mksquashfs")
	out := filepath.Join(t.TempDir(), "img.sqsh")
	if err := New().Build(context.Background(), testImage(t, v1.Config{}), providers.BuildRequest{Compression: "zstd"}, out); err != nil {
		t.Fatal(err)
	}
	sb, err := squashfs.VerifyFile(out, 0)
	if err != nil || sb.CompressionName() != "zstd" {
		t.Errorf("superblock %+v %v", sb, err)
	}
}

func TestBuildFailureLeavesNothing(t *testing.T) {
	buildtest.RequireTools(t, "mksquashfs")
	out := filepath.Join(t.TempDir(), "img.sqsh")
	if err := New().Build(context.Background(), testImage(t, v1.Config{}), providers.BuildRequest{Compression: "bogus"}, out); err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Lstat(out); !os.IsNotExist(err) {
		t.Errorf("output left behind: %v", err)
	}
	p := filepath.Join(t.TempDir(), "garbage.sqsh")
	os.WriteFile(p, []byte("garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage"), 0o644)
	if err := New().Verify(context.Background(), p); err == nil {
		t.Error("garbage verified")
	}
}

// TestImageStringsStayData covers issue 10's fault 2 and its kind: no
// image-supplied string becomes a shell line or shell syntax in /etc/rc.
// The rc file runs under bash; nothing the image wrote may execute.
func TestImageStringsStayData(t *testing.T) {
	buildtest.RequireTools(t, "bash")
	dir := t.TempDir()
	marker := filepath.Join(dir, "injected")
	inject := "touch " + marker
	cfg := v1.Config{
		Labels:     map[string]string{"evil": "x\n" + inject, "key\n" + inject: "v", "q": `"$(` + inject + `)" ` + "`" + inject + "`"},
		WorkingDir: dir + "/w $(" + inject + ") `" + inject + "` \\ \"q\" 'it's'",
		Entrypoint: []string{"printf", "[%s]"},
		Cmd:        []string{"$(" + inject + ")", "`" + inject + "`"},
		Volumes:    map[string]struct{}{"/v\n/etc /mnt": {}},
	}
	f, err := Configure(rawConfig(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	// Enroot 4.1.2 writes label values on one line (newlines as spaces).
	if !strings.Contains(f.RC, "# evil x "+inject+"\n") {
		t.Errorf("label not on one line:\n%s", f.RC)
	}
	for _, line := range strings.Split(f.RC, "\n") {
		if strings.HasPrefix(line, "touch ") {
			t.Errorf("image text became an rc line: %q", line)
		}
	}
	if n := strings.Count(f.Fstab, "\n"); n != 1 {
		t.Errorf("one VOLUME gave %d fstab lines:\n%s", n, f.Fstab)
	}
	rc := filepath.Join(dir, "rc")
	if err := os.WriteFile(rc, []byte(f.RC), 0o644); err != nil {
		t.Fatal(err)
	}
	c := exec.Command("bash", rc)
	c.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("rc: %v\n%s", err, out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("rc ran image text as a command (%s exists)", marker)
	}
	if want := "[$(" + inject + ")][`" + inject + "`]"; string(out) != want {
		t.Errorf("output %q, want %q", out, want)
	}
	if _, err := os.Stat(cfg.WorkingDir); err != nil {
		t.Errorf("literal WORKDIR not created by rc: %v", err)
	}
}

// TestBuildEtcSymlink covers issue 10's fault 3 for .sqsh: an image whose
// /etc is a symlink builds, and, as with Enroot 4.1.2 (whose configuration
// layer is an overlay upper directory), /etc becomes a real directory with
// the four generated files while the link's target keeps the image's.
// Also: no /dev when the image has none.
func TestBuildEtcSymlink(t *testing.T) {
	buildtest.RequireTools(t, "mksquashfs", "unsquashfs")
	ctx := context.Background()
	img := buildtest.Image(t, v1.Config{Cmd: []string{"/bin/sh"}, WorkingDir: "/etc/app"}, buildtest.Layer(t,
		buildtest.Reg("usr/etc/passwd", 0o644, "root:x:0:0::/root:/bin/sh\n"),
		buildtest.Symlink("etc", "usr/etc"),
	))
	out := filepath.Join(t.TempDir(), "img.sqsh")
	if err := New().Build(ctx, img, providers.BuildRequest{Ref: "x:1", Processors: 1}, out); err != nil {
		t.Fatal(err)
	}
	es, err := squashfs.List(ctx, out, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range es {
		got[e.Path] = e.Mode
	}
	for p, mode := range map[string]string{"/etc": "drwxr-xr-x", "/etc/rc": "-rw-r--r--", "/etc/fstab": "-rw-r--r--",
		"/etc/environment": "-rw-r--r--", "/etc/rc.local": "-rw-r--r--", "/etc/app": "drwxr-xr-x", "/usr/etc/passwd": "-rw-r--r--"} {
		if got[p] != mode {
			t.Errorf("%s: %q, want %q", p, got[p], mode)
		}
	}
	for _, p := range []string{"/etc/passwd", "/dev"} {
		if _, ok := got[p]; ok {
			t.Errorf("%s present", p)
		}
	}
}

func TestDropXattrs(t *testing.T) {
	h := &tar.Header{PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "c", "SCHILY.xattr.user.a": "a", "LIBARCHIVE.other": "o"}}
	dropXattrs(h)
	if len(h.PAXRecords) != 1 || h.PAXRecords["LIBARCHIVE.other"] != "o" {
		t.Errorf("records %v", h.PAXRecords)
	}
}
