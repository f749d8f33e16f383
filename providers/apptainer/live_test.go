package apptainer

// Live conformance: every shape (with a real busybox) is built by the real
// runtime from a registry on loopback and by the Builder; the two SIFs must
// be equal (descriptors, data objects, root file system, /.singularity.d)
// and behave the same: what a process sees (arguments, working directory,
// environment) under exec and run, with --cleanenv and --no-eval, shell -s,
// --app and test, and `inspect --json`. Skipped when /opt/peers/env.sh is
// absent.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/buildtest"
	"github.com/cachectl/cachectl/providers/localsrc"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/providers/squashfs"
)

// behaviour is one runtime command line run on both SIFs; "SIF" stands
// for the image's path.
type behaviour struct {
	name string
	args []string
}

var behaviours = []behaviour{
	{"exec", []string{"exec", "SIF", "/probe", "x y", "$HOME", "`echo " + injected + "`"}},
	{"exec-cleanenv", []string{"exec", "--cleanenv", "SIF", "/probe"}},
	{"run", []string{"run", "SIF"}},
	{"run-args", []string{"run", "SIF", "a b", "$HOME", "$(echo " + injected + ")"}},
	{"run-cleanenv", []string{"run", "--cleanenv", "SIF"}},
	{"run-no-eval", []string{"run", "--no-eval", "SIF", "a b"}},
	{"shell-s", []string{"shell", "-s", "/probe", "SIF"}},
	{"run-app", []string{"run", "--app", "nosuch", "SIF"}},
	{"test", []string{"test", "SIF"}},
	{"inspect", []string{"inspect", "--json", "SIF"}},
	{"inspect-all", []string{"inspect", "--all", "--json", "SIF"}},
}

// treeBehaviours are the commands run on the tree shapes.
var treeBehaviours = map[string]bool{"exec": true, "run": true, "inspect-all": true}

func TestSIFLive(t *testing.T) {
	peers := requirePeers(t)
	buildtest.RequireTools(t, "mksquashfs", "unsquashfs")
	srv := registrytest.StartDistribution(t)
	base := busyboxMembers(t)
	type pushed struct {
		shape  sifShape
		ref    string
		digest string
	}
	var images []pushed
	for _, s := range sifShapes() {
		ref := srv.Ref("live/" + s.name + ":1")
		d := registrytest.Push(t, s.image(t, base), ref)
		images = append(images, pushed{s, ref, d.String()})
	}
	for _, p := range peers {
		t.Run(p.rt.Name, func(t *testing.T) {
			t.Parallel()
			for _, im := range images {
				if !im.shape.builtBy(p.rt) {
					continue
				}
				t.Run(im.shape.name, func(t *testing.T) {
					dir := t.TempDir()
					real, ours := filepath.Join(dir, "runtime", "img.sif"), filepath.Join(dir, "cachectl", "img.sif")
					for _, f := range []string{real, ours} {
						if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
							t.Fatal(err)
						}
					}
					p.build(t, real, "docker://"+im.ref)
					want := dumpSIF(t, real)
					now, err := parseBuildDate(want.Labels[buildDateLabel], zoneOffset())
					if err != nil {
						t.Fatal(err)
					}
					b := New(p.rt, squashfs.WithClock(func() time.Time { return now }), squashfs.WithAllRoot(os.Geteuid() != 0))
					req := providers.BuildRequest{Ref: im.ref, NormalizedName: im.ref, Digest: im.digest, Processors: 1}
					if err := b.Build(context.Background(), im.shape.image(t, base), req, ours); err != nil {
						t.Fatal(err)
					}
					got := dumpSIF(t, ours)
					compareDumps(t, want, got)
					if want.PartitionSize != got.PartitionSize {
						t.Errorf("squashfs partition of %d bytes, the runtime's has %d", got.PartitionSize, want.PartitionSize)
					}
					if im.shape.name == "awkward" {
						p.compareLocalSources(t, im.shape, im.ref, now)
					}
					for _, bh := range behaviours {
						if im.shape.tree && !treeBehaviours[bh.name] {
							continue
						}
						w, g := p.behave(t, bh, real), p.behave(t, bh, ours)
						if w != g {
							t.Errorf("%s differs:\n--- %s ---\n%s\n--- cachectl ---\n%s", bh.name, p.rt, w, g)
						}
					}
				})
			}
		})
	}
}

// compareLocalSources builds the shape's image from an OCI archive and a
// docker archive (skopeo copies of ref) with the runtime and the Builder:
// the SIFs must be equal.
func (p *peer) compareLocalSources(t *testing.T, s sifShape, ref string, now time.Time) {
	skopeo := registrytest.RequireTool(t, "skopeo")
	dir := t.TempDir()
	for _, kind := range []string{"oci-archive", "docker-archive"} {
		archive := filepath.Join(dir, kind+".tar")
		out, err := exec.Command(skopeo, "copy", "--src-tls-verify=false", "docker://"+ref, kind+":"+archive).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo copy to %s: %v\n%s", kind, err, out)
		}
		real, ours := filepath.Join(dir, kind+"-runtime.sif"), filepath.Join(dir, kind+"-cachectl.sif")
		p.build(t, real, kind+":"+archive)
		want := dumpSIF(t, real)
		tm, err := parseBuildDate(want.Labels[buildDateLabel], zoneOffset())
		if err != nil {
			t.Fatal(err)
		}
		b := New(p.rt, squashfs.WithClock(func() time.Time { return tm }), squashfs.WithAllRoot(os.Geteuid() != 0))
		req := providers.BuildRequest{Ref: kind + ":" + archive, NormalizedName: "localhost/app:1", Processors: 1}
		// The image as the archive holds it: skopeo's copy to OCI keeps
		// only the OCI fields of a Docker config (no Healthcheck, OnBuild,
		// Shell, Hostname), and the runtime builds from that config.
		img, err := mutate.ConfigFile(s.image(t, busyboxMembers(t)), archiveConfig(t, localsrc.Kind(kind), archive))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Build(context.Background(), img, req, ours); err != nil {
			t.Fatal(err)
		}
		t.Run(kind, func(t *testing.T) { compareDumps(t, want, dumpSIF(t, ours)) })
	}
}

// archiveConfig reads the image config of the one image in a local
// archive.
func archiveConfig(t *testing.T, kind localsrc.Kind, path string) *v1.ConfigFile {
	t.Helper()
	src, err := localsrc.Open(kind, path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	im, err := src.Resolve("", v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := src.OpenBlob(im.Parsed.Config.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	cfg, err := v1.ParseConfigFile(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// behave runs bh on the SIF at sif, from the SIF's directory, with a small
// fixed environment (a host variable SIMPLE that the awkward image sets
// too), and returns its exit code, stdout and stderr with the SIF's
// directory written as <DIR> and the environment's entries sorted.
func (p *peer) behave(t *testing.T, bh behaviour, sif string) string {
	t.Helper()
	dir := filepath.Dir(sif)
	args := make([]string, len(bh.args))
	for i, a := range bh.args {
		if a == "SIF" {
			a = sif
		}
		args[i] = a
	}
	stdout, stderr, code := p.runEnv(t, dir, []string{"SIMPLE=from-host"}, args...)
	norm := func(s string) string {
		// A runscript without ENTRYPOINT and CMD runs `set`, which lists
		// the shell's variables, PPID too.
		return ppidRE.ReplaceAllString(strings.ReplaceAll(s, dir, "<DIR>"), "PPID='<PID>'")
	}
	// The probe ends with "cwd=[DIR]\n" and `env -0`: sort the latter.
	if i := strings.Index(stdout, "cwd=["); i >= 0 {
		if j := strings.Index(stdout[i:], "]\n"); j >= 0 {
			head, env := stdout[:i+j+2], strings.Split(strings.TrimSuffix(stdout[i+j+2:], "\x00"), "\x00")
			sort.Strings(env)
			stdout = head + strings.Join(env, "\n---\n") + "\n"
		}
	}
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", code, norm(stdout), norm(stderr))
}

var ppidRE = regexp.MustCompile(`PPID='\d+'`)

// zoneOffset is the local zone's offset now (the build-date label has the
// zone's abbreviation only).
func zoneOffset() int {
	_, off := time.Now().Zone()
	return off
}
