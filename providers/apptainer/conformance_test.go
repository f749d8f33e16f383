package apptainer

// Offline conformance: the SIF of every shape (stub programs) against what
// the real runtimes built from the same image, committed under
// testdata/conformance/<runtime>/<shape>/:
//
//	meta.json   the build's inputs: reference, digest, build date and zone
//	sif.txt     header and descriptors (sifDump.Summary)
//	object-*    the data objects, byte for byte
//	tree.txt    every path of the root file system (sifDump.Tree)
//	files/      the per-image files under /.singularity.d
//
// `make sif-goldens` (go test ./providers/apptainer -run '^TestSIFGoldens$'
// -update-runtimes) rebuilds them, and the runtimes' static files in
// runtimefiles/, with the installed Apptainer and SingularityCE.

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/buildtest"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/providers/squashfs"
)

var updateRuntimes = flag.Bool("update-runtimes", false,
	"rebuild testdata/conformance and runtimefiles/ with the real runtimes (needs "+peersEnvFile+")")

// goldenMeta is meta.json: what the runtime's build took as input.
type goldenMeta struct {
	Runtime string `json:"runtime"`
	Ref     string `json:"ref"`
	Digest  string `json:"digest"`
	// BuildDate is the build-date label; ZoneOffset the offset (seconds
	// east of UTC) of its time zone at the build.
	BuildDate  string `json:"build_date"`
	ZoneOffset int    `json:"zone_offset"`
}

func goldenDir(rt *Runtime, shape string) string {
	return filepath.Join("testdata", "conformance", rt.Name, shape)
}

// perImageFiles are the /.singularity.d files whose content depends on
// the image (the others are the runtime's static files).
var perImageFiles = []string{
	"/.singularity.d/Singularity",
	"/.singularity.d/env/10-docker2singularity.sh",
	"/.singularity.d/labels.json",
	"/.singularity.d/runscript",
}

func TestSIFGoldens(t *testing.T) {
	if *updateRuntimes {
		regenerateGoldens(t)
	}
	buildtest.RequireTools(t, "mksquashfs", "unsquashfs")
	for _, rt := range []*Runtime{Apptainer, SingularityCE} {
		for _, s := range sifShapes() {
			if !s.builtBy(rt) {
				continue
			}
			t.Run(rt.Name+"/"+s.name, func(t *testing.T) {
				t.Parallel()
				dir := goldenDir(rt, s.name)
				var meta goldenMeta
				readJSON(t, filepath.Join(dir, "meta.json"), &meta)
				now, err := parseBuildDate(meta.BuildDate, meta.ZoneOffset)
				if err != nil {
					t.Fatal(err)
				}
				out := filepath.Join(t.TempDir(), "img.sif")
				b := New(rt, squashfs.WithClock(func() time.Time { return now }))
				req := providers.BuildRequest{Ref: meta.Ref, Digest: meta.Digest, Processors: 1}
				if err := b.Build(context.Background(), s.image(t, stubMembers()), req, out); err != nil {
					t.Fatal(err)
				}
				compareDumps(t, readGolden(t, dir), dumpSIF(t, out))
			})
		}
	}
}

func readJSON(t testing.TB, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (make sif-goldens creates it)", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}

func readGolden(t testing.TB, dir string) *sifDump {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%v (make sif-goldens creates it)", err)
		}
		return b
	}
	d := &sifDump{Summary: string(read("sif.txt")), Tree: string(read("tree.txt")), Files: map[string][]byte{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var objs []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "object-") {
			objs = append(objs, e.Name())
		}
	}
	sort.Strings(objs)
	for _, o := range objs {
		name := o[strings.Index(o[len("object-"):], "-")+len("object-")+1:]
		d.Objects = append(d.Objects, sifObject{Name: name, Data: read(o)})
	}
	for _, p := range perImageFiles {
		d.Files[p] = read(filepath.Join("files", p))
	}
	return d
}

// regenerateGoldens builds every shape with the real runtimes and writes
// the goldens and runtimefiles/.
func regenerateGoldens(t *testing.T) {
	peers := requirePeers(t)
	srv := registrytest.StartDistribution(t)
	for _, s := range sifShapes() {
		ref := srv.Ref("conformance/" + s.name + ":1")
		digest := registrytest.Push(t, s.image(t, stubMembers()), ref)
		for _, p := range peers {
			if !s.builtBy(p.rt) {
				continue
			}
			out := filepath.Join(t.TempDir(), "img.sif")
			p.build(t, out, "docker://"+ref)
			d := dumpSIF(t, out)
			_, off := time.Now().Zone()
			meta := goldenMeta{Runtime: p.rt.Product + " " + p.rt.Version, Ref: ref, Digest: digest.String(),
				BuildDate: d.Labels[buildDateLabel], ZoneOffset: off}
			if _, err := parseBuildDate(meta.BuildDate, off); err != nil {
				t.Fatal(err)
			}
			dir := goldenDir(p.rt, s.name)
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			mb, _ := json.MarshalIndent(meta, "", "  ")
			writeFile(t, filepath.Join(dir, "meta.json"), append(mb, '\n'))
			writeFile(t, filepath.Join(dir, "sif.txt"), []byte(d.Summary))
			writeFile(t, filepath.Join(dir, "tree.txt"), []byte(d.Tree))
			for i, o := range d.Objects {
				writeFile(t, filepath.Join(dir, o.fileName(i)), o.Data)
			}
			for _, f := range perImageFiles {
				b, ok := d.Files[f]
				if !ok {
					t.Fatalf("%s %s: no %s", p.rt.Name, s.name, f)
				}
				writeFile(t, filepath.Join(dir, "files", f), b)
			}
			if s.name == "bare" {
				writeRuntimeFiles(t, p.rt, d)
			}
		}
	}
}

// writeRuntimeFiles replaces runtimefiles/<runtime>/ with the runtime's
// static /.singularity.d files (all but the per-image ones).
func writeRuntimeFiles(t *testing.T, rt *Runtime, d *sifDump) {
	dir := filepath.Join("runtimefiles", rt.Name)
	// The runscript template is ours: keep it.
	tmpl, err := os.ReadFile(filepath.Join(dir, runscriptTemplate))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if tmpl != nil {
		writeFile(t, filepath.Join(dir, runscriptTemplate), tmpl)
	}
	for p, b := range d.Files {
		isPerImage := false
		for _, f := range perImageFiles {
			isPerImage = isPerImage || f == p
		}
		if !isPerImage {
			writeFile(t, filepath.Join(dir, strings.TrimPrefix(p, "/.singularity.d/")), b)
		}
	}
}

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
