package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cachectl/cachectl/spec"
)

// CompatSingularityCmd is Determined's manage-singularity-cache.
type CompatSingularityCmd struct {
	Args []string `arg:"" optional:""`
}

const singularityUsage = `Usage: manage-singularity-cache [options] (--cuda | --cpu | --rocm | REFERENCE)...
       manage-singularity-cache [options] -i FILE REFERENCE
       manage-singularity-cache -l

Keeps the Apptainer/Singularity image cache under singularity_image_root
(Determined's HPC launcher), through cachectl's plan and apply.

  --cuda, --cpu, --rocm       Determined's default image of that flavor
  REFERENCE                   a Docker image reference, placed at <root>/<REFERENCE>
  -i, --image FILE REFERENCE  copy a local SIF file into the cache as REFERENCE
  -l, --list                  list the image references in the cache, one per line
  --docker-login              ask for a registry user name and password (for private
                              images; read from standard input when it is not a terminal)
  --root DIR                  the image root (default: singularity_image_root in
                              /etc/determined/master.yaml, else the spec's apptainer cache)
  --determined-version V      the Determined version for --cuda/--cpu/--rocm (default:
                              the spec's variable determined_version, else the master's
                              task_container_defaults.image)
  -h, --help                  this help

Added images are written to the compat spec file beside cachectl's spec
(NAME.compat.hcl), so that "cachectl plan" keeps them and prune never removes them.
The spec is CACHECTL_SPEC (or "cachectl -f PATH compat manage-singularity-cache"),
else /etc/cachectl/cachectl.hcl as root, else ~/.config/cachectl/cachectl.hcl.

Examples:
  manage-singularity-cache --cuda --cpu
  manage-singularity-cache determinedai/environments:py-3.8-pytorch-1.10-tf-2.8-cpu-096d730
  manage-singularity-cache -i localfile.sif determinedai/environments:py-3.8-pytorch-1.10-tf-2.8-cpu-096d730
  manage-singularity-cache --root /shared/sif --determined-version 0.38.1 --rocm
  manage-singularity-cache -l
`

// singularityArgs is a parsed manage-singularity-cache command line.
type singularityArgs struct {
	list    bool
	login   bool   // --docker-login
	file    string // -i FILE
	root    string
	version string
	items   []compatItem
}

// compatItem is a reference or a flavor (--cuda, --cpu, --rocm) as given.
type compatItem struct{ ref, flavor string }

func (it compatItem) String() string {
	if it.flavor != "" {
		return "--" + it.flavor
	}
	return it.ref
}

// imageItem parses an image argument: --cuda, --cpu, --rocm, or a
// reference (a docker:// prefix is accepted).
func imageItem(arg string) (compatItem, error) {
	switch arg {
	case "--cuda", "--cpu", "--rocm":
		return compatItem{flavor: arg[2:]}, nil
	}
	if strings.HasPrefix(arg, "-") {
		return compatItem{}, fmt.Errorf("unknown option %s", arg)
	}
	ref := strings.TrimPrefix(arg, "docker://")
	if _, err := spec.ParseRef(ref); err != nil {
		return compatItem{}, fmt.Errorf("%q is not an image reference: %w", arg, err)
	}
	return compatItem{ref: ref}, nil
}

// parseSingularityArgs parses the command line; errors say what is wrong
// and end with the usage hint.
func parseSingularityArgs(args []string) (*singularityArgs, error) {
	a := &singularityArgs{}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, val := compatFlag(args, &i)
		var err error
		switch name {
		case "-l", "--list":
			a.list = true
		case "--docker-login":
			a.login = true
		case "-i", "--image":
			a.file, err = val()
		case "--root":
			a.root, err = val()
		case "--determined-version":
			a.version, err = val()
		default:
			var it compatItem
			if it, err = imageItem(arg); err == nil {
				a.items = append(a.items, it)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case a.list && (len(a.items) > 0 || a.file != ""):
		return nil, errors.New("-l lists the cache; give it alone")
	case a.file != "" && (len(a.items) != 1 || a.items[0].flavor != ""):
		return nil, errors.New("-i FILE takes exactly one image reference: the name the file gets in the cache")
	case !a.list && len(a.items) == 0:
		return nil, errors.New("nothing to do: give --cuda, --cpu, --rocm, an image reference, -i FILE REFERENCE or -l")
	}
	return a, nil
}

// Run runs manage-singularity-cache.
func (c *CompatSingularityCmd) Run(g *Globals, iox *IO) error {
	if helpAsked(iox, c.Args, singularityUsage) {
		return nil
	}
	a, err := parseSingularityArgs(c.Args)
	if err != nil {
		return usageError(compatSingularity, err)
	}
	if a.file != "" {
		// Check the file before anything changes: a missing file, or one
		// that is not a SIF, changes nothing (import checks it again).
		if fi, err := os.Stat(a.file); err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: -i %s: not a readable regular file", compatSingularity, a.file)
		}
		b, err := builderFor(spec.RuntimeApptainer)
		if err != nil {
			return err
		}
		if err := b.Verify(iox.Ctx, a.file); err != nil {
			return fmt.Errorf("%s: -i %s is not a SIF file (nothing was changed): %w", compatSingularity, a.file, err)
		}
	}
	e, err := newCompatEnv(g, iox)
	if err != nil {
		return err
	}
	root, rt, err := e.singularityRoot(a.root)
	if err != nil {
		return err
	}
	if err := e.checkRuntime(rt, root); err != nil {
		return err
	}
	if a.list {
		return e.listRefs(rt, root)
	}
	refs, err := e.resolveItems(a.items, a.version)
	if err != nil {
		return err
	}
	if a.login && a.file == "" {
		if err := dockerLogin(g, iox, refs); err != nil {
			return err
		}
	}
	for _, ref := range refs {
		err := e.addImage(rt, "singularity", root, ref, func(cache *spec.Cache, specPath string) error {
			if a.file != "" {
				abs, err := filepath.Abs(a.file)
				if err != nil {
					return err
				}
				g2 := *g
				g2.Spec = specPath
				return (&ImportCmd{Cache: cache.Name, File: abs, Ref: ref, Force: true}).Run(&g2, iox)
			}
			return e.applyOne(cache, specPath, ref)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// resolveItems turns flavors into Determined's default images.
func (e *compatEnv) resolveItems(items []compatItem, version string) ([]string, error) {
	var refs []string
	for _, it := range items {
		if it.flavor == "" {
			refs = append(refs, it.ref)
			continue
		}
		img, err := e.flavorImage(it.flavor, version)
		if err != nil {
			return nil, err
		}
		refs = append(refs, img)
	}
	// --cuda and --cpu name the same image in recent releases: once.
	seen := map[string]bool{}
	out := refs[:0]
	for _, r := range refs {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out, nil
}

// singularityRoot picks the image root: --root, else the master's
// singularity_image_root (apptainer_image_root), else the spec's one
// Apptainer/Singularity cache.
func (e *compatEnv) singularityRoot(flag string) (string, spec.Runtime, error) {
	rt := spec.RuntimeApptainer
	if e.master != nil && e.master.ResourceManager.ContainerRunType == string(spec.RuntimeSingularity) {
		rt = spec.RuntimeSingularity
	}
	root := flag
	if root == "" {
		root = e.master.imageRoot()
	}
	if root == "" && e.model != nil {
		var sif []*spec.Cache
		for _, c := range e.model.Caches {
			if c.Runtime.Format() == "sif" {
				sif = append(sif, c)
			}
		}
		if len(sif) == 1 {
			return sif[0].Root, sif[0].Runtime, nil
		}
	}
	if root == "" {
		return "", "", fmt.Errorf("%s: no image root: set resource_manager.singularity_image_root in %s, give --root DIR, or define one apptainer cache in the spec (%s)", compatSingularity, e.masterPath, e.specPath())
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", "", err
	}
	if c := e.cacheAt(filepath.Clean(abs)); c != nil && c.Runtime.Format() == rt.Format() {
		rt = c.Runtime // apptainer or singularity, as the spec says
	}
	return filepath.Clean(abs), rt, nil
}
