package apptainer

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"text/template"
)

// Runtime is the container runtime whose `build x.sif docker://REF` a
// Builder reproduces. Apptainer and SingularityCE share the SIF layout and
// the generators of the per-image files; a Runtime holds what differs
// between them: the static files of /.singularity.d (action scripts, env
// scripts with the prompt, startscript), the runscript's text, and the
// build labels.
type Runtime struct {
	// Name is the spec's runtime name: "apptainer" or "singularity".
	Name string
	// Product and Version name the release whose output is reproduced.
	Product, Version string
	// versionLabel is the build label holding the runtime's version.
	versionLabel string
	// historyName names the image's own definition in
	// /.singularity.d/bootstrap_history ("Apptainer0").
	historyName string
	// replacesLinks: a symlink the image has where the runtime puts one of
	// its links (/environment, /singularity, /.run, ...) is replaced
	// (SingularityCE); else it is kept when it resolves (Apptainer).
	replacesLinks bool
	// baseLabels: registry builds record org.opencontainers.image.base.name
	// and .digest (Apptainer; SingularityCE does not).
	baseLabels bool
	// files is runtimefiles/<Name>: the static files of /.singularity.d as
	// the runtime writes them, and runscript.tmpl.
	files fs.FS
	// runscript renders /.singularity.d/runscript (runscriptData).
	runscript *template.Template
}

// runtimeFiles holds, per runtime, its static /.singularity.d files taken
// from its own builds (make sif-goldens refreshes them) and the template of
// its runscript.
//
//go:embed runtimefiles
var runtimeFiles embed.FS

// runscriptTemplate is the runscript's template in a runtime's files.
const runscriptTemplate = "runscript.tmpl"

// The runtimes. Their files are the ones Apptainer 1.5.3 and SingularityCE
// 4.5.1 write (BSD-licensed, copyright headers kept).
var (
	Apptainer = newRuntime(Runtime{
		Name: "apptainer", Product: "Apptainer", Version: "1.5.3",
		versionLabel: "org.label-schema.usage.apptainer.version",
		historyName:  "Apptainer",
		baseLabels:   true,
	})
	SingularityCE = newRuntime(Runtime{
		Name: "singularity", Product: "SingularityCE", Version: "4.5.1",
		versionLabel:  "org.label-schema.usage.singularity.version",
		historyName:   "Singularity",
		replacesLinks: true,
	})
)

func newRuntime(rt Runtime) *Runtime {
	sub, err := fs.Sub(runtimeFiles, path.Join("runtimefiles", rt.Name))
	if err != nil {
		panic(err)
	}
	rt.files = sub
	rt.runscript = template.Must(template.ParseFS(sub, runscriptTemplate))
	return &rt
}

// RuntimeNamed returns the Runtime of a spec runtime name ("apptainer",
// "singularity").
func RuntimeNamed(name string) (*Runtime, error) {
	for _, rt := range []*Runtime{Apptainer, SingularityCE} {
		if rt.Name == name {
			return rt, nil
		}
	}
	return nil, fmt.Errorf("apptainer: no SIF runtime %q (apptainer, singularity)", name)
}

// String returns "Apptainer 1.5.3".
func (rt *Runtime) String() string { return rt.Product + " " + rt.Version }

// staticFile is one of a runtime's fixed /.singularity.d files.
type staticFile struct {
	path    string // relative to /.singularity.d ("env/99-base.sh")
	content []byte
}

// staticFiles returns the runtime's fixed files, sorted by path.
func (rt *Runtime) staticFiles() ([]staticFile, error) {
	var out []staticFile
	err := fs.WalkDir(rt.files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == runscriptTemplate {
			return err
		}
		b, err := fs.ReadFile(rt.files, p)
		out = append(out, staticFile{path: p, content: b})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("apptainer: %s files: %w", rt.Name, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, nil
}

// static returns the content of one fixed file ("startscript").
func (rt *Runtime) static(p string) string {
	b, err := fs.ReadFile(rt.files, p)
	if err != nil {
		panic(fmt.Sprintf("apptainer: %s: %v", rt.Name, err))
	}
	return string(b)
}
