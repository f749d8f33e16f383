package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/cachectl/cachectl/cmd/cachectl/views"
	"github.com/cachectl/cachectl/planner/enrootsync"
	"github.com/cachectl/cachectl/spec"
)

// EnrootSyncCmd keeps the calling user's Enroot containers in step with a
// shared cache of .sqsh files.
type EnrootSyncCmd struct {
	Root     string   `arg:"" help:"The cache root holding the .sqsh files (e.g. /shared/enroot)."`
	Images   []string `arg:"" optional:"" help:"Only these images: references (determinedai/pytorch-ngc:0.38.1) or .sqsh file names."`
	Prune    bool     `name:"prune" help:"Remove containers this command made whose image left the cache."`
	DryRun   bool     `name:"dry-run" help:"Show what would be done; change nothing."`
	Force    bool     `name:"force" help:"Recreate containers of the same name that this command did not make."`
	Verify   bool     `name:"verify" help:"Hash every image, even when its size, time and inode are those recorded."`
	DataPath string   `name:"data-path" placeholder:"DIR" help:"Enroot's data directory (default: ENROOT_DATA_PATH, else $XDG_DATA_HOME/enroot or ~/.local/share/enroot)."`
}

// Help shows examples.
func (EnrootSyncCmd) Help() string {
	return `For the calling user: one Enroot container per .sqsh image of the cache
("enroot create --name NAME FILE", NAME the file name without .sqsh: what
Determined's launcher runs), created when missing and recreated only when
the shared file changed since (a marker per container in
DATA/.cachectl-sync records the file's sha256). Runs as the user, reading
the .sqsh files themselves (never the root's index), and needs no spec.
Containers of the same name it did not make are left alone (--force).

Examples:
  cachectl enroot-sync /shared/enroot
  cachectl enroot-sync /shared/enroot determinedai/pytorch-ngc:0.38.1
  cachectl enroot-sync /shared/enroot --prune --dry-run`
}

// Run syncs.
func (c *EnrootSyncCmd) Run(g *Globals, iox *IO) error {
	root, err := filepath.Abs(c.Root)
	if err != nil {
		return err
	}
	var images []string
	for _, im := range c.Images {
		n, err := sqshName(im)
		if err != nil {
			return err
		}
		images = append(images, n)
	}
	opts := enrootsync.Options{Root: filepath.Clean(root), Images: images, DataPath: c.DataPath, Prune: c.Prune, Force: c.Force, Verify: c.Verify, Env: iox.Environ}
	if opts.DataPath == "" {
		opts.DataPath = enrootsync.DefaultDataPath(iox.Getenv)
	}
	return syncContainers(iox, opts, c.DryRun)
}

// sqshName is the .sqsh file of an image given as a file name or a
// reference.
func sqshName(im string) (string, error) {
	if strings.HasSuffix(im, ".sqsh") && !strings.Contains(im, "/") {
		return im, nil
	}
	if _, err := spec.ParseRef(im); err != nil {
		return "", fmt.Errorf("%q is neither a .sqsh file name nor an image reference: %w", im, err)
	}
	return spec.FileName(spec.RuntimeEnroot, im)
}

// syncContainers plans and (unless dryRun) carries out a sync, printing a
// line per container.
func syncContainers(iox *IO, opts enrootsync.Options, dryRun bool) error {
	steps, err := enrootsync.Plan(iox.Ctx, opts)
	if err != nil {
		return err
	}
	verb := map[enrootsync.Action]string{enrootsync.Create: "create", enrootsync.Recreate: "recreate", enrootsync.Keep: "keep", enrootsync.Remove: "remove", enrootsync.Skip: "skip", enrootsync.Unreadable: "cannot create"}
	if dryRun {
		verb = map[enrootsync.Action]string{enrootsync.Create: "would create", enrootsync.Recreate: "would recreate", enrootsync.Keep: "keep", enrootsync.Remove: "would remove", enrootsync.Skip: "skip", enrootsync.Unreadable: "cannot create"}
	}
	var unreadable []string
	for _, s := range steps {
		if s.Action == enrootsync.Unreadable {
			unreadable = append(unreadable, s.Reason)
		}
		// Names come from the root, where members of the cache group may
		// add files: escaped when they hold control characters.
		line := fmt.Sprintf("%s %s", verb[s.Action], views.Printable(s.Container))
		if s.Image != "" {
			line += " from " + views.Printable(filepath.Join(opts.Root, s.Image))
		}
		if s.Reason != "" {
			line += " (" + views.PrintableText(s.Reason) + ")"
		}
		fmt.Fprintln(iox.Stdout, line)
	}
	if len(steps) == 0 {
		fmt.Fprintf(iox.Stdout, "No .sqsh images in %s.\n", opts.Root)
	}
	if !dryRun {
		if err := enrootsync.Run(iox.Ctx, opts, steps); err != nil {
			return err
		}
	}
	if len(unreadable) > 0 {
		return errors.New(strings.Join(unreadable, "\n"))
	}
	return nil
}
