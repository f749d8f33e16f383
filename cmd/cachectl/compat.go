package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/google/renameio/v2"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/cachectl/cachectl/planner/adopt"
	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/spec"
)

// The launcher's scripts, answered by the cachectl binary through a
// symlink of that name (argv[0]) and by "cachectl compat NAME".
const (
	compatSingularity = "manage-singularity-cache"
	compatEnroot      = "manage-enroot-cache"
)

// compatArgv returns the command line to parse: "compat NAME ARGS…" when
// the binary runs as one of the launcher's scripts, else os.Args[1:].
func compatArgv(argv []string) []string {
	switch filepath.Base(argv[0]) {
	case compatSingularity, compatEnroot:
		return append([]string{"compat", filepath.Base(argv[0])}, argv[1:]...)
	}
	return argv[1:]
}

// CompatCmd holds the launcher-compatible commands.
type CompatCmd struct {
	Singularity CompatSingularityCmd `cmd:"" name:"manage-singularity-cache" passthrough:"" help:"Determined's manage-singularity-cache command lines (--cuda|--cpu|--rocm, REF, -i FILE REF, -l)."`
	Enroot      CompatEnrootCmd      `cmd:"" name:"manage-enroot-cache" passthrough:"" help:"Determined's manage-enroot-cache command lines (-s DIR [--username NAME] [--nocreate] (--cuda|--cpu|--rocm|REF)..., -l)."`
}

// Help shows examples.
func (CompatCmd) Help() string {
	return `The command lines of the scripts Determined's HPC launcher installs, as its
documentation gives them; cachectl answers to those names through a symlink
(ln -s $(command -v cachectl) /usr/bin/manage-singularity-cache). Each add is
written into the compat spec file beside cachectl's spec (NAME.compat.hcl) and
applied through plan/apply, so "cachectl plan" keeps the images.

The spec: "cachectl -f PATH compat …" or CACHECTL_SPEC; a spec given must
exist. None given, the compat commands (unlike the others, which read
./cachectl.hcl) use /etc/cachectl/cachectl.hcl as root, else
~/.config/cachectl/cachectl.hcl, as the launcher's scripts run from any
directory.

Examples:
  manage-singularity-cache --cuda
  manage-singularity-cache -i localfile.sif determinedai/environments:py-3.8-pytorch-1.10-tf-2.8-cpu-096d730
  manage-singularity-cache -l
  manage-enroot-cache -s /shared/enroot --cuda --cpu
  manage-enroot-cache -s /shared/enroot --nocreate determinedai/environments:cuda-10.2-base-gpu-mpi-0.19.4
  cachectl compat manage-enroot-cache -s /shared/enroot -l`
}

// helpAsked prints a compat command's usage when its command line asks
// for it (-h or --help anywhere).
func helpAsked(iox *IO, args []string, usage string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" {
			fmt.Fprint(iox.Stdout, usage)
			return true
		}
	}
	return false
}

// usageError is a compat command's command-line error, with the hint.
func usageError(cmd string, err error) error {
	return fmt.Errorf("%s: %w\nRun \"%s --help\" for usage.", cmd, err, cmd)
}

// compatEnv is where the compat commands find their settings: the spec
// (when there is one), the compat file they own beside it, and Determined's
// master configuration.
type compatEnv struct {
	g   *Globals
	iox *IO
	// specPath is the spec to load with plan and apply: the main spec when
	// it exists, else the compat file alone.
	mainSpec, compatFile string
	model                *spec.Model // nil: no spec yet
	master               *masterConfig
	masterPath           string
}

// newCompatEnv finds the spec (compatSpecPath); the compat file is the
// spec's NAME.compat.hcl beside it, also when the spec itself does not
// exist.
func newCompatEnv(g *Globals, iox *IO) (*compatEnv, error) {
	e := &compatEnv{g: g, iox: iox}
	p, err := compatSpecPath(g, os.Geteuid(), iox.Getenv)
	if err != nil {
		return nil, err
	}
	e.mainSpec = p
	e.compatFile = spec.CompatFile(e.mainSpec)
	if err := e.load(); err != nil {
		return nil, err
	}
	e.masterPath = iox.Getenv("CACHECTL_DETERMINED_MASTER_CONFIG")
	if e.masterPath == "" {
		e.masterPath = "/etc/determined/master.yaml"
	}
	m, err := readMasterConfig(e.masterPath)
	if err != nil {
		return nil, err
	}
	e.master = m
	return e, nil
}

// compatSpecPath is the spec of the compat commands. Unlike the other
// commands (default ./cachectl.hcl), they run from anywhere as the
// launcher's scripts did, so without a spec given (-f/--spec or
// CACHECTL_SPEC) it is /etc/cachectl/cachectl.hcl for root (euid 0) and
// $XDG_CONFIG_HOME/cachectl/cachectl.hcl (~/.config/…) for other users.
// A given spec must exist (or its compat file must, from earlier adds; or
// it is a NAME.compat.hcl, the compat file alone, which the commands
// create): a mistyped -f is an error, not a run without the spec.
func compatSpecPath(g *Globals, euid int, getenv func(string) string) (string, error) {
	if g.SpecGiven {
		abs, err := filepath.Abs(g.Spec)
		if err != nil {
			return "", err
		}
		_, err = os.Stat(abs)
		switch {
		case errors.Is(err, os.ErrNotExist) && strings.HasSuffix(abs, spec.CompatSuffix):
			// The compat file alone as the spec: the commands create it.
		case errors.Is(err, os.ErrNotExist):
			if _, cerr := os.Stat(spec.CompatFile(abs)); cerr != nil {
				return "", fmt.Errorf("the spec %s (given with -f/--spec or CACHECTL_SPEC) does not exist; give an existing spec file or directory, or give none to use %s", abs, defaultCompatSpec(euid, getenv))
			}
		case err != nil:
			return "", fmt.Errorf("the spec %s (given with -f/--spec or CACHECTL_SPEC): %w", abs, err)
		}
		return abs, nil
	}
	return defaultCompatSpec(euid, getenv), nil
}

// defaultCompatSpec is the compat commands' spec when none is given.
func defaultCompatSpec(euid int, getenv func(string) string) string {
	dir := "/etc/cachectl"
	if euid != 0 {
		cfg := getenv("XDG_CONFIG_HOME")
		if cfg == "" {
			cfg = filepath.Join(getenv("HOME"), ".config")
		}
		dir = filepath.Join(cfg, "cachectl")
	}
	return filepath.Join(dir, "cachectl.hcl")
}

// specPath is what plan and apply load: the main spec (which brings its
// compat file), or the compat file alone when there is no main spec.
func (e *compatEnv) specPath() string {
	if _, err := os.Stat(e.mainSpec); err == nil {
		return e.mainSpec
	}
	return e.compatFile
}

// load (re)loads the spec, when there is one.
func (e *compatEnv) load() error {
	p := e.specPath()
	if _, err := os.Stat(p); err != nil {
		e.model = nil
		return nil
	}
	g := *e.g
	g.Spec = p
	m, err := loadModel(&g, e.iox)
	if err != nil {
		return fmt.Errorf("the spec %s has errors (above); fix it first", p)
	}
	e.model = m
	return nil
}

// masterConfig is the part of Determined's master.yaml the compat
// commands read.
type masterConfig struct {
	ResourceManager struct {
		SingularityImageRoot string `yaml:"singularity_image_root"`
		ApptainerImageRoot   string `yaml:"apptainer_image_root"`
		ContainerRunType     string `yaml:"container_run_type"`
	} `yaml:"resource_manager"`
	TaskContainerDefaults struct {
		Image yaml.Node `yaml:"image"`
	} `yaml:"task_container_defaults"`
}

func readMasterConfig(p string) (*masterConfig, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m masterConfig
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &m, nil
}

// imageRoot is the Apptainer image root the master configures.
func (m *masterConfig) imageRoot() string {
	if m == nil {
		return ""
	}
	if m.ResourceManager.ApptainerImageRoot != "" {
		return m.ResourceManager.ApptainerImageRoot
	}
	return m.ResourceManager.SingularityImageRoot
}

// defaultImage returns task_container_defaults.image.FLAVOR ("gpu" is
// Determined's other name for cuda).
func (m *masterConfig) defaultImage(flavor string) string {
	if m == nil {
		return ""
	}
	if n := m.TaskContainerDefaults.Image; n.Kind == yaml.ScalarNode {
		return n.Value // one image for every flavor
	} else if n.Kind != yaml.MappingNode {
		return ""
	}
	var imgs map[string]string
	if m.TaskContainerDefaults.Image.Decode(&imgs) != nil {
		return ""
	}
	if img := imgs[flavor]; img != "" {
		return img
	}
	if flavor == spec.FlavorCUDA {
		return imgs["gpu"]
	}
	return ""
}

// flavorImage is the Determined default image of a flavor: from
// --determined-version, else the spec's variable determined_version, else
// the master's task_container_defaults.image.
func (e *compatEnv) flavorImage(flavor, version string) (string, error) {
	if version == "" && e.model != nil {
		version, _ = e.model.StringVar("determined_version")
	}
	if version != "" {
		return spec.DeterminedDefaultImage(version, flavor)
	}
	if img := e.master.defaultImage(flavor); img != "" {
		return img, nil
	}
	where := e.specPath()
	return "", fmt.Errorf("--%s needs the Determined version: set variable \"determined_version\" in the spec (%s), give --determined-version VERSION, or set task_container_defaults.image.%s in the master configuration (%s)", flavor, where, flavor, e.masterPath)
}

// cacheAt returns the spec's cache with the root, if any.
func (e *compatEnv) cacheAt(root string) *spec.Cache {
	if e.model == nil {
		return nil
	}
	for _, c := range e.model.Caches {
		if c.Root == root {
			return c
		}
	}
	return nil
}

// checkRuntime refuses a root that the spec gives to a cache of another
// format than the command's (rt): manage-enroot-cache -s at a podman or
// apptainer root must neither reuse nor add files there.
func (e *compatEnv) checkRuntime(rt spec.Runtime, root string) error {
	c := e.cacheAt(root)
	if c == nil || c.Runtime.Format() == rt.Format() {
		return nil
	}
	cmd := compatSingularity
	if rt == spec.RuntimeEnroot {
		cmd = compatEnroot
	}
	return fmt.Errorf("%s is the root of cache %q (runtime %s) in %s; %s needs a cache of runtime %s: give it the root of one (or a new directory)", root, c.Name, c.Runtime, e.specPath(), cmd, rt)
}

var nonName = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// compatCacheName names the cache the compat file defines for a root.
func compatCacheName(kind, root string) string {
	return kind + "_" + strings.Trim(nonName.ReplaceAllString(root, "_"), "_")
}

// compatCache is the cache block the compat file defines (when the spec
// has no cache at the root).
type compatCache struct {
	runtime spec.Runtime
	root    string
}

const compatHeader = `# Images added with manage-singularity-cache and manage-enroot-cache
# ("cachectl compat"). cachectl loads this file together with the spec
# beside it; those commands rewrite it, so edit it with care.
`

// addToCompat returns the compat file src with ref added to the images of
// cache name: a cache_images block for a cache of the spec, or (def not
// nil) a cache block of the compat file's own. changed is false when ref
// is there already.
func addToCompat(src []byte, file, name string, def *compatCache, ref string) (out []byte, changed bool, err error) {
	if len(src) == 0 {
		src = []byte(compatHeader)
	}
	if def == nil {
		return spec.AddToImageList(src, file, "cache_images", name, nil, ref)
	}
	return spec.AddToImageList(src, file, "cache", name, []spec.Attr{{Name: "runtime", Value: string(def.runtime)}, {Name: "root", Value: def.root}}, ref)
}

// compatLock holds the lock of the compat file's directory (flock on the
// directory itself): one compat command edits and applies at a time.
type compatLock struct{ f *os.File }

func lockCompatDir(dir string) (*compatLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return &compatLock{f}, nil
}

func (l *compatLock) release() {
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
}

// addImage writes ref into the compat file for the cache at root (the
// spec's, or one the compat file defines with runtime rt) and runs do —
// the engine's apply or import of it — with the spec reloaded. When do
// fails, the compat file is restored. It returns the cache.
func (e *compatEnv) addImage(rt spec.Runtime, kind, root, ref string, do func(c *spec.Cache, specPath string) error) error {
	lock, err := lockCompatDir(filepath.Dir(e.compatFile))
	if err != nil {
		return err
	}
	defer lock.release()
	if err := e.load(); err != nil {
		return err
	}
	name, def := "", (*compatCache)(nil)
	if err := e.checkRuntime(rt, root); err != nil {
		return err
	}
	if c := e.cacheAt(root); c != nil {
		name = c.Name
	} else {
		name, def = compatCacheName(kind, root), &compatCache{runtime: rt, root: root}
	}
	before, err := os.ReadFile(e.compatFile)
	existed := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	after, changed, err := addToCompat(before, e.compatFile, name, def, ref)
	if err != nil {
		return err
	}
	restore := func() {
		if !changed {
			return
		}
		if existed {
			writeSpecFile(e.compatFile, before)
		} else {
			os.Remove(e.compatFile)
		}
	}
	if changed {
		if err := writeSpecFile(e.compatFile, after); err != nil {
			return err
		}
	}
	if err := e.load(); err != nil {
		restore()
		return err
	}
	c := e.model.Cache(name)
	if c == nil {
		restore()
		return fmt.Errorf("internal error: cache %q is not in the spec after the edit", name)
	}
	if err := do(c, e.specPath()); err != nil {
		restore()
		return err
	}
	return nil
}

// writeSpecFile writes a spec file through a temporary file and a rename
// (renameio), keeping an existing file's mode (0644 for a new one).
func writeSpecFile(p string, b []byte) error {
	perm := os.FileMode(0o644)
	if fi, err := os.Stat(p); err == nil {
		perm = fi.Mode().Perm()
	}
	return renameio.WriteFile(p, b, perm)
}

// applyOne plans and applies one artifact of cache c through the same
// plan/apply as "cachectl apply -target ADDR -auto-approve", with the
// spec narrowed to that cache (other caches' roots are not locked or
// created).
func (e *compatEnv) applyOne(c *spec.Cache, specPath, ref string) error {
	g := *e.g
	g.Spec = specPath
	cmd := &ApplyCmd{AutoApprove: true, only: c.Name}
	cmd.Refresh = true
	cmd.Progress = "none"
	cmd.Target = []string{spec.Address(c.Name, ref)}
	return cmd.Run(&g, e.iox)
}

// listRefs prints the image references of the cache at root, one per
// line, sorted: what the index records, else (files it does not hold, or
// an index this user cannot read) what the spec wants at the file's name,
// else what the name reads as (Apptainer: the path; Enroot: the first
// reading of its "+" name).
func (e *compatEnv) listRefs(rt spec.Runtime, root string) error {
	names, err := rootFiles(root)
	if err != nil {
		return err
	}
	refs := map[string]string{}
	if c := e.cacheAt(root); c != nil {
		for _, a := range c.Artifacts {
			refs[a.Name] = a.Ref
		}
	}
	if ix, err := readIndexQuiet(root, rt); err == nil {
		for _, en := range ix {
			refs[en.name] = en.ref
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		ref := refs[n]
		if ref == "" {
			ref = refOfName(rt, n)
		}
		if ref != "" && !seen[ref] {
			seen[ref] = true
			out = append(out, ref)
		}
	}
	sort.Strings(out)
	for _, r := range out {
		fmt.Fprintln(e.iox.Stdout, r)
	}
	return nil
}

// refOfName reads a file name as a reference ("" when it does not read as
// one).
func refOfName(rt spec.Runtime, n string) string {
	switch rt {
	case spec.RuntimeEnroot:
		if !strings.HasSuffix(n, ".sqsh") || strings.Contains(n, "/") {
			return ""
		}
		return adopt.Likely(strings.TrimSuffix(n, ".sqsh"))
	default:
		if strings.HasSuffix(n, ".sif") {
			return ""
		}
		if _, err := spec.ParseRef(n); err != nil {
			return ""
		}
		return n
	}
}

// rootFiles lists the files below a root (not its state directory),
// through its handles, without reading its index.
func rootFiles(root string) ([]string, error) {
	r, err := cacheroot.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	st, err := r.Scan(nil, cacheroot.ScanOptions{})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(st.Unmanaged))
	for _, u := range st.Unmanaged {
		names = append(names, u.Name)
	}
	return names, nil
}

type indexedRef struct{ name, ref string }

// readIndexQuiet reads the names and references a root's index records;
// an error (no index, or one this user may not read) means none.
func readIndexQuiet(root string, rt spec.Runtime) ([]indexedRef, error) {
	ix, err := cacheroot.ReadIndexAt(root, rt)
	if err != nil {
		return nil, err
	}
	var out []indexedRef
	for _, e := range ix.Entries {
		out = append(out, indexedRef{e.Name, e.Ref})
	}
	return out, nil
}

// narrowModel returns the model with only the named cache.
func narrowModel(m *spec.Model, cache string) *spec.Model {
	n := *m
	n.Caches = nil
	if c := m.Cache(cache); c != nil {
		n.Caches = []*spec.Cache{c}
	}
	return &n
}
