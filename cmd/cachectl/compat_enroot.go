package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cachectl/cachectl/planner/enrootsync"
	"github.com/cachectl/cachectl/spec"
)

// CompatEnrootCmd is Determined's manage-enroot-cache.
type CompatEnrootCmd struct {
	Args []string `arg:"" optional:""`
}

const enrootUsage = `Usage: manage-enroot-cache -s DIR [--username NAME] [--nocreate] (--cuda | --cpu | --rocm | REFERENCE)...
       manage-enroot-cache -s DIR -l

Imports images as .sqsh files into the shared directory DIR (reusing a file
that is there), through cachectl's plan and apply, then creates the calling
user's Enroot container from each (enroot create; reused when the shared
file did not change).

  -s DIR                   the shared .sqsh directory (required)
  --cuda, --cpu, --rocm    Determined's default image of that flavor
  REFERENCE                a Docker image reference; the file is <ref with / and : as +>.sqsh
  --username NAME          registry user name (positional: before any image); the
                           password comes from Enroot's credentials file
                           ($ENROOT_CONFIG_PATH/.credentials), else it is asked for
  -N, --nocreate           only the shared .sqsh file, no container
  -l, --list               list the image references in DIR, one per line
  --determined-version V   the Determined version for --cuda/--cpu/--rocm
  -h, --help               this help

Added images are written to the compat spec file beside cachectl's spec
(NAME.compat.hcl). The spec is CACHECTL_SPEC (or "cachectl -f PATH compat
manage-enroot-cache"), else /etc/cachectl/cachectl.hcl as root, else
~/.config/cachectl/cachectl.hcl.

Examples:
  manage-enroot-cache -s /shared/enroot --cuda --cpu
  manage-enroot-cache -s /shared/enroot determinedai/environments:cuda-10.2-base-gpu-mpi-0.19.4
  sudo manage-enroot-cache -s /shared/enroot --nocreate determinedai/environments:cuda-10.2-base-gpu-mpi-0.19.4
  manage-enroot-cache -s /shared/enroot --username bob myorg/private:1
  manage-enroot-cache -s /shared/enroot -l
`

// enrootArgs is a parsed manage-enroot-cache command line.
type enrootArgs struct {
	dir      string
	username string
	nocreate bool
	list     bool
	version  string
	items    []compatItem
}

// parseEnrootArgs parses the command line. As documented, --username is
// positional: it must come before any image (reference or flavor).
func parseEnrootArgs(args []string) (*enrootArgs, error) {
	a := &enrootArgs{}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, val := compatFlag(args, &i)
		var err error
		switch name {
		case "-s", "--shared":
			a.dir, err = val()
		case "--username", "-u":
			if len(a.items) > 0 {
				return nil, fmt.Errorf("--username must come before the images (it is positional): move it before %s", a.items[0])
			}
			a.username, err = val()
		case "-N", "--nocreate":
			a.nocreate = true
		case "-l", "--list":
			a.list = true
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
	case a.dir == "":
		return nil, errors.New("-s DIR is required: the shared directory of .sqsh files")
	case a.list && len(a.items) > 0:
		return nil, errors.New("-l lists the cache; give it with -s DIR alone")
	case !a.list && len(a.items) == 0:
		return nil, errors.New("nothing to do: give --cuda, --cpu, --rocm, an image reference, or -l")
	}
	return a, nil
}

// Run runs manage-enroot-cache.
func (c *CompatEnrootCmd) Run(g *Globals, iox *IO) error {
	if helpAsked(iox, c.Args, enrootUsage) {
		return nil
	}
	a, err := parseEnrootArgs(c.Args)
	if err != nil {
		return usageError(compatEnroot, err)
	}
	abs, err := filepath.Abs(a.dir)
	if err != nil {
		return err
	}
	root := filepath.Clean(abs)
	e, err := newCompatEnv(g, iox)
	if err != nil {
		return err
	}
	if err := e.checkRuntime(spec.RuntimeEnroot, root); err != nil {
		return err
	}
	if a.list {
		return e.listRefs(spec.RuntimeEnroot, root)
	}
	refs, err := e.resolveItems(a.items, a.version)
	if err != nil {
		return err
	}
	if a.username != "" {
		if err := useEnrootCredentials(g, iox, a.username, refs); err != nil {
			return err
		}
	}
	var names []string
	for _, ref := range refs {
		name, err := spec.FileName(spec.RuntimeEnroot, ref)
		if err != nil {
			return err
		}
		if c := e.cacheAt(root); c != nil {
			for _, art := range c.Artifacts {
				if art.Ref == ref {
					name = art.Name
				}
			}
		}
		names = append(names, name)
		// Reuse only what is the cache's own file: a member of a
		// group-writable directory could have put anything at the name.
		if ok, why, err := enrootsync.TrustedImage(root, name); err != nil {
			return err
		} else if ok {
			fmt.Fprintf(iox.Stdout, "%s: reusing %s\n", ref, filepath.Join(root, name))
			continue
		} else if why != "not there" {
			return fmt.Errorf("%s: %s is there but not the cache's file (%s); move it away, then run this again", ref, filepath.Join(root, name), why)
		}
		if err := checkCanWrite(root, ref); err != nil {
			return err
		}
		err = e.addImage(spec.RuntimeEnroot, "enroot", root, ref, func(cache *spec.Cache, specPath string) error {
			return e.applyOne(cache, specPath, ref)
		})
		if err != nil {
			return err
		}
	}
	if a.nocreate {
		return nil
	}
	opts := enrootsync.Options{Root: root, Images: names, DataPath: enrootsync.DefaultDataPath(iox.Getenv), Env: iox.Environ}
	return syncContainers(iox, opts, false)
}

// checkCanWrite says early, before any change, when the shared directory
// belongs to another user (its state directory does): adding a file there
// is that user's (root's) job.
func checkCanWrite(root, ref string) error {
	fi, err := os.Lstat(filepath.Join(root, spec.IndexDir))
	if err != nil {
		return nil // no state yet: apply says what it needs
	}
	if uid := fileUID(fi); uid != os.Geteuid() {
		return fmt.Errorf("%s: %s is not in %s yet, and adding it needs the user who keeps that cache (uid %d): ask an admin to run \"sudo %s -s %s --nocreate %s\", then run this again", compatEnroot, ref, root, uid, compatEnroot, root, ref)
	}
	return nil
}

// compatFlag splits the launcher-style argument args[*i] into its name
// and, for "--name=value", its value: val returns the flag's value (that
// one, else the next argument, which must not start with "-") and moves
// *i past what it took.
func compatFlag(args []string, i *int) (name string, val func() (string, error)) {
	arg := args[*i]
	name, inline, hasInline := arg, "", false
	if k := strings.IndexByte(arg, '='); k > 0 && strings.HasPrefix(arg, "--") {
		name, inline, hasInline = arg[:k], arg[k+1:], true
	}
	return name, func() (string, error) {
		if hasInline {
			return inline, nil
		}
		if *i+1 >= len(args) || strings.HasPrefix(args[*i+1], "-") {
			return "", fmt.Errorf("%s needs a value", name)
		}
		*i++
		return args[*i], nil
	}
}
