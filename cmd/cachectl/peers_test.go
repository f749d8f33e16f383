package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// peersEnvFile puts the reference runtimes (Apptainer, SingularityCE,
// Enroot) on PATH: see ../shared/peers/README.md.
const peersEnvFile = "/opt/peers/env.sh"

// TestPeers runs testdata/script/peers against the real runtimes: roots
// filled the old way (apptainer build, singularity pull, enroot import) are
// adopted; the launcher's documented manage-singularity-cache and
// manage-enroot-cache command lines run as written, with a registry on
// loopback standing in for Docker Hub (registry "docker.io" { mirror });
// enroot start runs the containers they make. Skipped where the runtimes
// are not installed.
func TestPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests skipped with -short")
	}
	if _, err := os.Stat(peersEnvFile); err != nil {
		t.Skipf("the reference runtimes are not installed (%s missing; see ../shared/peers/README.md): skipping the adopt and launcher-compat tests against Apptainer and Enroot", peersEnvFile)
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("a static /bin/busybox (busybox-static) is needed to make runnable test images: %v", err)
	}
	registrytest.RequireTool(t, "mksquashfs")
	env := peersEnviron(t)
	auth := registrytest.StartDistribution(t, registrytest.WithBasicAuth("bob", "s3cret"))
	if err := pushBusybox(auth.Addr+"/private/app:1", busybox, 7, auth.BasicAuth()); err != nil {
		t.Fatal(err)
	}
	p := scriptParams(t, "../../testdata/script/peers")
	setup := p.Setup
	p.Setup = func(e *testscript.Env) error {
		// A registry of its own for each script: the scripts run in
		// parallel and push new variants of the same tags.
		srv := registrytest.StartDistribution(t)
		for _, ref := range baseImages {
			if err := pushBusybox(srv.Addr+"/"+ref, busybox, 0); err != nil {
				return err
			}
		}
		for k, v := range env {
			e.Setenv(k, v)
		}
		pc := e.WorkDir + "/.peers"
		for _, k := range []string{"APPTAINER_CACHEDIR", "APPTAINER_TMPDIR", "SINGULARITY_CACHEDIR", "SINGULARITY_TMPDIR", "ENROOT_CACHE_PATH", "ENROOT_DATA_PATH", "ENROOT_RUNTIME_PATH", "ENROOT_TEMP_PATH", "ENROOT_CONFIG_PATH"} {
			d := pc + "/" + strings.ToLower(k)
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			e.Setenv(k, d)
		}
		e.Setenv("REGISTRY", srv.Addr)
		e.Setenv("AUTHREG", auth.Addr) // bob / s3cret
		e.Setenv("HOME", e.WorkDir+"/home")
		e.Setenv("CACHECTL_SPEC", e.WorkDir+"/cachectl.hcl")
		e.Setenv("CACHECTL_DETERMINED_MASTER_CONFIG", e.WorkDir+"/master.yaml")
		return setup(e)
	}
	p.Cmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
		// push REF VARIANT — push the busybox image VARIANT to $REGISTRY/REF
		"push": func(ts *testscript.TestScript, neg bool, args []string) {
			v, err := strconv.Atoi(args[1])
			ts.Check(err)
			ts.Check(pushBusybox(ts.Getenv("REGISTRY")+"/"+args[0], busybox, v))
		},
		// mode FILE MODE — the file's permission bits in octal
		"mode": func(ts *testscript.TestScript, neg bool, args []string) {
			fi, err := os.Lstat(ts.MkAbs(args[0]))
			ts.Check(err)
			if got := spec.ModeOf(fi.Mode()).String(); (got == args[1]) == neg {
				ts.Fatalf("%s has mode %s", args[0], got)
			}
		},
	}
	testscript.Run(t, p)
}

// baseImages are the images every peers script finds in its registry
// (variant 0).
var baseImages = []string{
	"determinedai/pytorch-ngc:0.38.1",
	"determinedai/environments:py-3.8-pytorch-1.10-tf-2.8-cpu-096d730",
	"determinedai/environments:cuda-10.2-base-gpu-mpi-0.19.4",
	"determinedai/environments:rocm-5.6-pytorch-1.3-tf-2.10-rocm-mpich-0736b6d",
	"library/alpine:3.20",
}

// peersEnviron is the environment /opt/peers/env.sh sets up (PATH and the
// runtimes' settings), read by sourcing it in bash.
func peersEnviron(t *testing.T) map[string]string {
	t.Helper()
	cmd := exec.Command("bash", "-c", ". "+peersEnvFile+" >/dev/null && env -0")
	cmd.Env = append(os.Environ(), "PEERS_CACHE="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sourcing %s: %v", peersEnvFile, err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(string(out), "\x00") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if k == "PATH" || strings.HasPrefix(k, "APPTAINER_") || strings.HasPrefix(k, "SINGULARITY_") || strings.HasPrefix(k, "ENROOT_") || k == "CONTAINERS_CONF" {
			env[k] = v
		}
	}
	return env
}

// pushBusybox pushes a small runnable image (a static busybox with sh,
// echo and cat) whose /etc/variant depends on variant, with Docker media
// types (Enroot pulls only those from this registry).
func pushBusybox(ref string, busybox []byte, variant int, opts ...remote.Option) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(h *tar.Header, body []byte) {
		h.ModTime = mt
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		tw.WriteHeader(h)
		tw.Write(body)
	}
	for _, d := range []string{"bin/", "etc/", "tmp/", "proc/", "sys/", "dev/"} {
		add(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	}
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, busybox)
	for _, a := range []string{"sh", "echo", "cat", "true", "ls"} {
		add(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil)
	}
	add(&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	add(&tar.Header{Name: "etc/variant", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("variant "+strconv.Itoa(variant)+" of "+r.Context().RepositoryStr()+"\n"))
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/bin", "GREETING=hello"}
	cf.Config.Cmd = []string{"/bin/sh"}
	cf.Created = v1.Time{Time: mt.Add(time.Duration(variant) * time.Second)}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	return remote.Write(r, img, opts...)
}
