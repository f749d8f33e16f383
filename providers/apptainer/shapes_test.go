package apptainer

// The image shapes the SIF conformance tests build with the real runtimes
// and with the Builder. Every shape exists twice: with stub programs (the
// offline goldens: the same bytes on every machine) and with the host's
// static busybox (the live tests, which run the result).

import (
	"archive/tar"
	"os"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/buildtest"
)

// injected is what an image string prints when a generated script runs it
// as shell code instead of keeping it as data.
const injected = "INJECTED"

// allASCII is every byte 0x01..0x7f: no character may be lost or gain a
// meaning on its way into a generated file.
var allASCII = func() string {
	var b strings.Builder
	for c := 1; c < 0x80; c++ {
		b.WriteByte(byte(c))
	}
	return b.String()
}()

// sifShape is one image configuration (and its own files) of the
// conformance tests.
type sifShape struct {
	name string
	// only, when set, is the one runtime that can build the shape.
	only *Runtime
	// tree: the shape is about paths the image has, not its config (the
	// live test runs fewer commands on it).
	tree    bool
	cfg     v1.Config
	members []buildtest.Member
}

// sifShapes returns the shapes, in a fixed order.
func sifShapes() []sifShape {
	return []sifShape{
		{name: "awkward", cfg: v1.Config{
			Env: []string{
				"PATH=/usr/local/bin:/usr/bin:/bin:/opt/my tools/bin",
				"DATE=$(echo " + injected + ")",
				"BQ=a`echo " + injected + "`b",
				`BS=C:\temp\new\`,
				`DQ=say "hi"`,
				"HOMEREF=$HOME/x",
				"BRACE=${HOME:-none}",
				"TAB=a\tb",
				"NL=line1\nline2",
				"EMPTY=",
				"EQ=a=b=c",
				"SQ=it's",
				"SPACES= lead and trail ",
				"NOVAL",
				"UNI=ünïcødé ✓",
				"ASCII=" + allASCII,
				"SIMPLE=from-image",
				"DUP=first", "DUP=second",
				"1BAD=x", "BAD-NAME=y", "a.b=z", "=nothing",
			},
			Entrypoint: []string{"/probe", "ep arg", "$HOME", "`echo " + injected + "`", "it's", `"q"`, `a\b`},
			Cmd:        []string{"cmd arg", "$(echo " + injected + ")", "tab\there", "nl\nx", ""},
			WorkingDir: "/work dir",
			User:       "1000:1000",
			Labels: map[string]string{
				"nl":         "line1\nline2",
				"quotes":     `say "hi" 'x'`,
				"html":       "<a>&b",
				"shell":      "$(echo " + injected + ")`echo " + injected + "`",
				"maintainer": "someone <x@y>",
				"ascii":      allASCII,
				// Names the build sets too: the build's values win.
				"org.label-schema.build-arch":                "image-says",
				"org.opencontainers.image.base.name":         "upstream/base:1",
				"org.label-schema.usage.apptainer.version":   "0.0",
				"org.label-schema.usage.singularity.version": "0.0",
				"org.opencontainers.image.created":           "2020-01-01T00:00:00Z",
			},
			Volumes:      map[string]struct{}{"/data": {}},
			ExposedPorts: map[string]struct{}{"8080/tcp": {}},
			StopSignal:   "SIGTERM",
			Healthcheck:  &v1.HealthConfig{Test: []string{"CMD-SHELL", "probe || exit 1"}, Interval: 30 * time.Second, Retries: 3},
			Shell:        []string{"/bin/sh", "-c"},
			OnBuild:      []string{"RUN echo " + injected},
			ArgsEscaped:  true,
			Hostname:     "awkward",
		}, members: []buildtest.Member{buildtest.Dir("work dir/", 0o755)}},
		{name: "cmd-only", cfg: v1.Config{
			Env: []string{"ONLY=1"}, // no PATH
			Cmd: []string{"/probe", "a b", "$HOME", `c\d`},
		}},
		{name: "entrypoint-only", cfg: v1.Config{
			Entrypoint: []string{"/probe", "x y"},
			WorkingDir: "/",
		}},
		{name: "bare"},
		// Paths the runtimes write that the image already has.
		{name: "preexisting", tree: true, cfg: v1.Config{
			Env: []string{"FROM_CONFIG=1"},
			Cmd: []string{"/probe"},
		}, members: []buildtest.Member{
			{Name: ".singularity.d/", Type: tar.TypeDir, Mode: 0o700, UID: 1000, GID: 1000},
			{Name: ".singularity.d/env/", Type: tar.TypeDir, Mode: 0o700, UID: 1000, GID: 1000},
			{Name: ".singularity.d/env/50-image.sh", Type: tar.TypeReg, Mode: 0o600, UID: 1000, GID: 1000, Body: "export FROM_IMAGE_SCRIPT=1\n"},
			{Name: ".singularity.d/env/94-appsbase.sh", Type: tar.TypeReg, Mode: 0o600, UID: 1000, GID: 1000, Body: "image\n"},
			{Name: ".singularity.d/runscript", Type: tar.TypeReg, Mode: 0o600, UID: 1000, GID: 1000, Body: "#!/bin/sh\necho image runscript\n"},
			{Name: ".singularity.d/labels.json", Type: tar.TypeReg, Mode: 0o600, UID: 1000, GID: 1000, Body: `{"from":"image"}`},
			{Name: ".singularity.d/Singularity", Type: tar.TypeReg, Mode: 0o640, UID: 1000, GID: 1000, Body: "bootstrap: image\n"},
			buildtest.Reg("singularity", 0o644, "image file\n"),
			buildtest.Reg(".run", 0o644, "image file\n"),
			buildtest.Symlink("environment", "etc/hostname"),
			buildtest.Dir("tmp/", 0o1777),
			{Name: "home/", Type: tar.TypeDir, Mode: 0o700, UID: 1000, GID: 1000},
			buildtest.Dir("etc/", 0o750),
			buildtest.Reg("etc/hostname", 0o644, "image\n"),
			{Name: "etc/hosts", Type: tar.TypeReg, Mode: 0o600, UID: 1000, GID: 1000, Body: "127.0.0.1 image\n"},
			buildtest.Symlink("etc/resolv.conf", "../run/resolv.conf"),
			buildtest.Dir("run/", 0o755),
			buildtest.Dir("usr/", 0o755),
			buildtest.Dir("usr/var/", 0o755),
			buildtest.Symlink("var", "usr/var"),
		}},
		// /etc is a link (etc -> usr/etc): the runtimes write through it.
		{name: "etc-link", tree: true, cfg: v1.Config{Cmd: []string{"/probe"}}, members: []buildtest.Member{
			buildtest.Dir("usr/", 0o755),
			buildtest.Dir("usr/etc/", 0o755),
			buildtest.Reg("usr/etc/hostname", 0o644, "image\n"),
			buildtest.Symlink("etc", "usr/etc"),
		}},
		// Dangling links where the runtimes put theirs, /tmp a file:
		// SingularityCE replaces the links and keeps the file; Apptainer
		// 1.5.3 fails the build ("file exists", "not a directory").
		{name: "dangling", tree: true, only: SingularityCE, cfg: v1.Config{Cmd: []string{"/probe"}}, members: []buildtest.Member{
			buildtest.Symlink("environment", "/custom/env"),
			buildtest.Symlink(".exec", "nowhere"),
			buildtest.Reg("tmp", 0o644, "image file\n"),
		}},
	}
}

// probeScript prints its arguments, working directory and environment
// (NUL-separated), so that runs of two SIFs can be compared byte for byte.
const probeScript = `#!/bin/sh
printf 'argc=%s\n' "$#"
for a in "$@"; do printf 'arg=[%s]\n' "$a"; done
printf 'cwd=[%s]\n' "$(pwd)"
exec env -0
`

// stubMembers are the programs of the golden images: never run, the same
// bytes everywhere.
func stubMembers() []buildtest.Member {
	return []buildtest.Member{
		buildtest.Dir("bin/", 0o755),
		buildtest.Reg("bin/sh", 0o755, "#!stub sh\n"),
		buildtest.Reg("probe", 0o755, probeScript),
	}
}

// busyboxMembers are the programs of the live images: the host's static
// busybox and the probe.
func busyboxMembers(t testing.TB) []buildtest.Member {
	t.Helper()
	const bb = "/bin/busybox"
	body, err := os.ReadFile(bb)
	if err != nil {
		t.Skipf("the live SIF tests run a static busybox in the images: %v (apt-get install busybox-static)", err)
	}
	ms := []buildtest.Member{buildtest.Dir("bin/", 0o755), buildtest.Reg("bin/busybox", 0o755, string(body))}
	for _, a := range []string{"sh", "env", "printf", "pwd", "cat", "true", "id"} {
		ms = append(ms, buildtest.Symlink("bin/"+a, "busybox"))
	}
	return append(ms, buildtest.Reg("probe", 0o755, probeScript))
}

// builtBy reports whether rt can build the shape.
func (s sifShape) builtBy(rt *Runtime) bool { return s.only == nil || s.only == rt }

// image returns the shape's image over base (stubMembers or busyboxMembers).
func (s sifShape) image(t testing.TB, base []buildtest.Member) v1.Image {
	t.Helper()
	return buildtest.Image(t, s.cfg, buildtest.Layer(t, append(append([]buildtest.Member{}, base...), s.members...)...))
}
