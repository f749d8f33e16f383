package conformance

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// peersEnv is the file that puts the reference runtimes on PATH
// (../shared/peers/install.sh writes it).
const peersEnv = "/opt/peers/env.sh"

// peers is the environment the runtimes run in: /opt/peers/env.sh sourced
// into a clean environment with a fixed PATH, HOME and LANG, plus one
// variable an image also sets (COLLIDE), so that the host's own
// environment never reaches a goldens file.
type peers struct {
	env []string
	// enrootRegistry is the address Enroot pulls from: a proxy of the
	// registry (enrootProxy).
	enrootRegistry string
}

// enrootProxy forwards requests to the registry at upstream ("host:port"),
// adding the manifest media types to manifest requests that name none.
// Enroot 4.1.2 asks for permission with a HEAD of the manifest that
// accepts only curl's "*/*" (docker::_authenticate) before it fetches the
// manifest naming them; Debian's docker-registry 2.8 (like GitLab's and
// GHCR's registries) answers 404 to that probe for an OCI manifest ("OCI
// manifest found, but accept header does not support OCI manifests"), so
// Enroot cannot import OCI images from such a registry without
// authentication. Docker Hub and distribution 3 answer the probe, and so
// does the proxy: the suite compares Enroot's import of OCI images as
// those registries let it happen. Requests that name a manifest media
// type pass as they are.
func enrootProxy(t *testing.T, upstream string) string {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: upstream}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") && !strings.Contains(r.Header.Get("Accept"), "application/vnd.") {
			r.Header.Set("Accept", strings.Join([]string{
				"application/vnd.docker.distribution.manifest.v2+json",
				"application/vnd.docker.distribution.manifest.list.v2+json",
				"application/vnd.oci.image.manifest.v1+json",
				"application/vnd.oci.image.index.v1+json",
			}, ", "))
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// loadPeers returns the runtimes' environment, or nil when env.sh is
// absent or CACHECTL_CONFORMANCE_LIVE=0 asks for the goldens-only check.
func loadPeers(t *testing.T) *peers {
	t.Helper()
	if _, err := os.Stat(peersEnv); err != nil || os.Getenv("CACHECTL_CONFORMANCE_LIVE") == "0" {
		return nil
	}
	cmd := exec.Command("bash", "-c", ". "+peersEnv+" && env -0")
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sourcing %s: %v", peersEnv, err)
	}
	env := []string{"COLLIDE=host"}
	for _, kv := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "PWD", "OLDPWD", "SHLVL", "_":
			continue
		}
		env = append(env, kv)
	}
	return &peers{env: env}
}

// containerID matches podman's 64-hex container IDs in messages.
var containerID = regexp.MustCompile(`\b[0-9a-f]{64}\b`)

// result is what one command did.
type result struct {
	exit           int
	stdout, stderr string
	err            error // could not start or timed out
}

// run runs argv in dir "/" with the runtimes' environment; its standard
// input runs the probe when argv starts a shell.
func (p *peers) run(ctx context.Context, argv ...string) result {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	prog := argv[0]
	if !strings.Contains(prog, "/") {
		prog = p.lookPath(prog)
	}
	cmd := exec.CommandContext(ctx, prog, argv[1:]...)
	cmd.Env = p.env
	cmd.Dir = "/"
	// A shell started as the default command reads its commands here.
	cmd.Stdin = strings.NewReader("/probe from-stdin\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.exit = ee.ExitCode()
	} else if err != nil {
		r.err = err
	}
	if ctx.Err() != nil {
		r.err = ctx.Err()
	}
	return r
}

// lookPath finds a program on the runtimes' PATH (exec.Command would use
// the test's own).
func (p *peers) lookPath(name string) string {
	for _, kv := range p.env {
		if dirs, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, d := range filepath.SplitList(dirs) {
				if fi, err := os.Stat(filepath.Join(d, name)); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
					return filepath.Join(d, name)
				}
			}
		}
	}
	return name
}

// failure is the normalized reason of a failed build: its last line that
// says FATAL or ERROR or error, else its last line.
func failure(r result, norm normalizer) string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	lines := strings.Split(strings.TrimSpace(r.stdout+"\n"+r.stderr), "\n")
	last := lines[len(lines)-1]
	for _, l := range lines {
		if strings.Contains(l, "FATAL") || strings.Contains(l, "ERROR") || strings.Contains(strings.ToLower(l), "error") || strings.Contains(l, "failed") {
			last = l
		}
	}
	// Temporary build directories are random.
	last = tmpPath.ReplaceAllString(last, "TMP")
	return fmt.Sprintf("error (exit %d): %s", r.exit, norm.apply(strings.TrimSpace(last)))
}

// healthcheckTimers replaces podman's errors about the systemd timers of
// an image's HEALTHCHECK (there is no systemd here; how many it prints
// varies from run to run) with one line saying they were tried.
func healthcheckTimers(stderr string) string {
	var out []string
	seen := false
	for _, l := range strings.SplitAfter(stderr, "\n") {
		if strings.Contains(l, "level=error") && strings.Contains(l, "healthcheck") && strings.Contains(l, "systemd") {
			if !seen {
				out = append(out, "podman: healthcheck timers (no systemd here)\n")
			}
			seen = true
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "")
}

// podmanFailure is the cause of a failed podman pull or load: where a
// layer could not be stored, that line from "adding layer" on and the
// storage's own message after it (pull and load of an archive word the
// rest differently: load lists every transport it tried); else failure's.
func podmanFailure(r result, norm normalizer) string {
	lines := strings.Split(r.stdout+"\n"+r.stderr, "\n")
	for i, l := range lines {
		_, cause, ok := strings.Cut(l, "adding layer with blob")
		if !ok || r.err != nil {
			continue
		}
		cause = "adding layer with blob" + cause
		if i+1 < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i+1]), "stderr:") {
			cause += " " + strings.Join(strings.Fields(lines[i+1]), " ")
		}
		return fmt.Sprintf("error (exit %d): %s", r.exit, norm.apply(cause))
	}
	return failure(r, norm)
}

// runtimeBuild builds shape's image with the runtime into dir and returns
// the artifact's doc (build failures give a doc with only "build").
func (p *peers) runtimeBuild(t *testing.T, ctx context.Context, runtime, ref, dir string, norm normalizer) (doc, string) {
	t.Helper()
	var out string
	var r result
	reg, repo, _ := strings.Cut(ref, "/")
	switch runtime {
	case "apptainer", "singularity":
		out = filepath.Join(dir, runtime+".sif")
		r = p.run(ctx, runtime, "build", "--disable-cache", "--no-https", out, "docker://"+ref)
	case "enroot":
		out = filepath.Join(dir, "enroot.sqsh")
		if p.enrootRegistry != "" {
			reg = p.enrootRegistry
		}
		r = p.run(ctx, "enroot", "import", "-o", out, "docker://"+reg+"#"+repo)
	}
	if r.err != nil || r.exit != 0 {
		return doc{"build": failure(r, norm)}, ""
	}
	if runtime == "enroot" {
		return sqshDoc(t, out, norm), out
	}
	return sifDoc(t, out, norm), out
}

// behaviour runs the artifact the ways a job does and returns the
// "run/NAME" records; paths and names of the artifact are normalized.
func (p *peers) behaviour(ctx context.Context, runtime, artifact string, norm normalizer) doc {
	n := norm.with(artifact, "ARTIFACT", filepath.Base(artifact), "ARTIFACT-NAME")
	var runs map[string][]string
	switch runtime {
	case "apptainer", "singularity":
		runs = map[string][]string{
			"exec":     {runtime, "exec", artifact, "/probe", "exec-arg", "a b"},
			"run":      {runtime, "run", artifact},
			"run-args": {runtime, "run", artifact, "x", "y z"},
		}
	case "enroot":
		runs = map[string][]string{
			"start":      {"enroot", "start", artifact},
			"start-args": {"enroot", "start", artifact, "x", "y z"},
		}
	}
	d := doc{}
	for name, argv := range runs {
		r := p.run(ctx, argv...)
		d["run/"+name] = n.apply(fmt.Sprintf("exit %d err %v\n--- stdout\n%s--- stderr\n%s", r.exit, r.err, r.stdout, tmpPath.ReplaceAllString(r.stderr, "TMP")))
	}
	return d
}

// podman runs image names with a private storage root (vfs: no overlay
// mounts needed) and returns the "run/NAME" and "podman/inspect" records.
// load, when set, is an OCI archive loaded first; otherwise the image is
// pulled from the registry.
func (p *peers) podman(ctx context.Context, image, load string, norm normalizer) doc {
	// podman refuses a runroot longer than 50 bytes: both under a short
	// directory of /tmp.
	storage, err := os.MkdirTemp("/tmp", "cc-podman-")
	if err != nil {
		return doc{"build": "error: " + err.Error()}
	}
	base := []string{"podman", "--root", filepath.Join(storage, "root"), "--runroot", filepath.Join(storage, "run"), "--storage-driver", "vfs"}
	cmd := func(args ...string) []string { return append(append([]string(nil), base...), args...) }
	defer func() {
		// conmon's cleanup of a --rm container may still hold the storage:
		// remove the containers and images through podman (which waits
		// for the storage lock), then the directory.
		p.run(ctx, cmd("rm", "-af")...)
		p.run(ctx, cmd("rmi", "-af")...)
		for i := 0; i < 50; i++ {
			if os.RemoveAll(storage) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	norm = norm.with(storage, "PODMAN-STORAGE")
	d := doc{}
	var r result
	if load != "" {
		r = p.run(ctx, cmd("load", "-q", "-i", load)...)
	} else {
		r = p.run(ctx, cmd("pull", "-q", "--tls-verify=false", image)...)
	}
	if r.err != nil || r.exit != 0 {
		d["build"] = podmanFailure(r, norm)
		return d
	}
	d["build"] = "ok"
	r = p.run(ctx, cmd("image", "inspect", "--format", "{{json .Config}}\n{{json .RootFS.Layers}}\n{{.Os}}/{{.Architecture}}", image)...)
	d["podman/inspect"] = norm.apply(fmt.Sprintf("exit %d\n%s", r.exit, r.stdout))
	for name, args := range map[string][]string{
		"run":      {"run", "--rm", "--network=none", image},
		"run-args": {"run", "--rm", "--network=none", image, "x", "y z"},
	} {
		r := p.run(ctx, cmd(args...)...)
		d["run/"+name] = norm.apply(containerID.ReplaceAllString(fmt.Sprintf("exit %d err %v\n--- stdout\n%s--- stderr\n%s", r.exit, r.err, r.stdout, healthcheckTimers(r.stderr)), "CONTAINER-ID"))
	}
	return d
}
