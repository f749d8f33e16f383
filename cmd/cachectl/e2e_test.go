package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/spec"
)

// TestE2E runs the scripts in testdata/script/e2e against the real
// distribution registry (Debian's docker-registry) on loopback, with the
// real builders (mksquashfs) and checks with unsquashfs and skopeo.
func TestE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests skipped with -short")
	}
	registrytest.RequireTool(t, "mksquashfs")
	registrytest.RequireTool(t, "unsquashfs")
	registrytest.RequireTool(t, "skopeo")
	srv := registrytest.StartDistribution(t)
	for _, repo := range []string{"e2e/base:1", "e2e/tools:1"} {
		pushVariant(t, srv.Addr+"/"+repo, 0)
	}
	p := scriptParams(t, "../../testdata/script/e2e")
	setup := p.Setup
	p.Setup = func(env *testscript.Env) error {
		env.Setenv("REGISTRY", srv.Addr)
		env.Setenv("REGISTRY_PORT", srv.Addr[strings.LastIndexByte(srv.Addr, ':')+1:])
		env.Setenv("UID", strconv.Itoa(os.Getuid()))
		return setup(env)
	}
	p.Condition = func(cond string) (bool, error) {
		if cond == "root" {
			return os.Geteuid() == 0, nil
		}
		return false, fmt.Errorf("unknown condition %q", cond)
	}
	p.Cmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
		// push REPO:TAG VARIANT — push generated image VARIANT to $REGISTRY/REPO:TAG
		"push": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) != 2 {
				ts.Fatalf("usage: push REPO:TAG VARIANT")
			}
			v, err := strconv.Atoi(args[1])
			ts.Check(err)
			ts.Check(pushImage(ts.Getenv("REGISTRY")+"/"+args[0], v))
		},
		// verify RUNTIME FILE — the builder's format check
		"verify": verifyCmd,
		// mode FILE MODE — the file's permission bits in octal
		"mode": func(ts *testscript.TestScript, neg bool, args []string) {
			fi, err := os.Lstat(ts.MkAbs(args[0]))
			ts.Check(err)
			got := spec.ModeOf(fi.Mode()).String()
			if (got == args[1]) == neg {
				ts.Fatalf("%s has mode %s (want %s%s)", args[0], got, map[bool]string{true: "not "}[neg], args[1])
			}
		},
		// owner FILE UID GID
		"owner": func(ts *testscript.TestScript, neg bool, args []string) {
			fi, err := os.Lstat(ts.MkAbs(args[0]))
			ts.Check(err)
			st := fi.Sys().(*syscall.Stat_t)
			got := fmt.Sprintf("%d %d", st.Uid, st.Gid)
			if (got == args[1]+" "+args[2]) == neg {
				ts.Fatalf("%s is owned by %s", args[0], got)
			}
		},
		// chown FILE UID GID
		"chown": func(ts *testscript.TestScript, neg bool, args []string) {
			u, _ := strconv.Atoi(args[1])
			g, _ := strconv.Atoi(args[2])
			ts.Check(os.Lchown(ts.MkAbs(args[0]), u, g))
		},
		// registry start|stop — a private registry for one script (bundle_test.go)
		"registry": registryCmd,
		// bundledamage truncate|flip IN OUT — a damaged copy of a bundle (bundle_test.go)
		"bundledamage": bundleDamageCmd,
		// localsrc layout|ociarchive|dockerarchive|corrupt ... — local image sources (local_test.go)
		"localsrc": localSrcCmd,
		// corrupt FILE — flip one byte in the middle, keeping size and mtime
		"corrupt": func(ts *testscript.TestScript, neg bool, args []string) {
			p := ts.MkAbs(args[0])
			fi, err := os.Stat(p)
			ts.Check(err)
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			ts.Check(err)
			b := make([]byte, 1)
			_, err = f.ReadAt(b, fi.Size()/2)
			ts.Check(err)
			b[0] ^= 0xff
			_, err = f.WriteAt(b, fi.Size()/2)
			ts.Check(err)
			ts.Check(f.Close())
			ts.Check(os.Chtimes(p, fi.ModTime(), fi.ModTime()))
		},
		// touchfuture FILE — change mtime without changing content
		"touchfuture": func(ts *testscript.TestScript, neg bool, args []string) {
			t := time.Now().Add(time.Hour)
			ts.Check(os.Chtimes(ts.MkAbs(args[0]), t, t))
		},
	}
	testscript.Run(t, p)
}

// verifyCmd: verify RUNTIME FILE — the builder's format check.
func verifyCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: verify RUNTIME FILE")
	}
	b, err := builderFor(spec.Runtime(args[0]))
	ts.Check(err)
	err = b.Verify(context.Background(), ts.MkAbs(args[1]))
	if neg {
		if err == nil {
			ts.Fatalf("%s verified as %s", args[1], args[0])
		}
		return
	}
	ts.Check(err)
}

func pushVariant(t *testing.T, ref string, variant int) {
	t.Helper()
	if err := pushImage(ref, variant); err != nil {
		t.Fatal(err)
	}
}

// pushImage pushes a small two-layer image whose content depends on
// variant (so a new variant moves a tag): a base layer with a file tree
// (directories, a symlink, a hard link, a setuid file) and a layer that
// changes and deletes files (whiteouts).
func pushImage(ref string, variant int) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	base := tarLayer([]tarEntry{
		{name: "bin/", mode: 0o755},
		{name: "bin/hello", mode: 0o755, body: "#!/bin/sh\necho hello\n"},
		{name: "bin/su-helper", mode: 0o4755, body: "setuid\n"},
		{name: "bin/hello-link", link: "bin/hello", hard: true},
		{name: "etc/", mode: 0o755},
		{name: "etc/os-release", mode: 0o644, body: "ID=e2e\n"},
		{name: "etc/obsolete.conf", mode: 0o644, body: "gone in the next layer\n"},
		{name: "usr/", mode: 0o755},
		{name: "usr/bin", link: "../bin"},
	})
	top := tarLayer([]tarEntry{
		{name: "etc/", mode: 0o755},
		{name: "etc/.wh.obsolete.conf", mode: 0o644},
		{name: "etc/variant", mode: 0o644, body: fmt.Sprintf("variant %d\n", variant)},
	})
	img, err := mutate.AppendLayers(empty.Image, base, top)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello \"e2e\" $HOME"}
	cf.Config.Entrypoint = []string{"/bin/hello"}
	cf.Config.WorkingDir = "/etc"
	cf.Created = v1.Time{Time: time.Date(2026, 1, 1, 0, 0, variant, 0, time.UTC)}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	return remote.Write(r, img)
}

type tarEntry struct {
	name, body, link string
	mode             int64
	hard             bool
}

func tarLayer(entries []tarEntry) v1.Layer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: mt}
		switch {
		case e.name[len(e.name)-1] == '/':
			h.Typeflag = tar.TypeDir
		case e.link != "" && e.hard:
			h.Typeflag, h.Linkname = tar.TypeLink, e.link
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		tw.WriteHeader(h)
		io.WriteString(tw, e.body)
	}
	tw.Close()
	b := buf.Bytes()
	l, _ := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	return l
}
