package main

import (
	"fmt"
	"time"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/spec"
)

// ImportCmd adopts a file made elsewhere.
type ImportCmd struct {
	Cache       string        `arg:"" predictor:"cache" help:"The cache to import into."`
	File        string        `arg:"" type:"existingfile" predictor:"file" help:"The artifact file (SIF, .sqsh or OCI archive, by the cache's runtime)."`
	Ref         string        `arg:"" help:"The image reference the file holds; decides the file name like any artifact."`
	Force       bool          `name:"force" help:"Replace an artifact cachectl already placed at that name."`
	LockTimeout time.Duration `name:"lock-timeout" default:"0s" help:"How long to wait for another apply holding the cache root's lock."`
}

// Help shows examples.
func (ImportCmd) Help() string {
	return `The file's format is checked first (SIF header and squashfs partition; squashfs
superblock; OCI layout inside the tar). The artifact is marked imported: refresh
does not replace it (use plan -replace ADDRESS to rebuild it from the registry).
A file that already sits at its final path in the root is adopted in place.

Examples:
  cachectl import sif ./pytorch.sif determinedai/pytorch-ngc:0.38.1
  cachectl import enroot /shared/enroot/ubuntu+22.04.sqsh ubuntu:22.04`
}

// Run imports.
func (c *ImportCmd) Run(g *Globals, iox *IO) error {
	m, err := loadModel(g, iox)
	if err != nil {
		return err
	}
	cache := m.Cache(c.Cache)
	if cache == nil {
		return fmt.Errorf("no cache named %q in the spec", c.Cache)
	}
	name := ""
	for _, a := range cache.Artifacts {
		if a.Ref == c.Ref {
			name = a.Name
		}
	}
	if name == "" {
		if _, err := spec.ParseRef(c.Ref); err != nil {
			return fmt.Errorf("%q is not an image reference: %w", c.Ref, err)
		}
		return fmt.Errorf("%s is not an image of cache %q in the spec: imported as it is, the next plan would take it for an orphan (and apply, with prune = true, delete it); add it to the cache's images first, then import", c.Ref, cache.Name)
	}
	b, err := builderFor(cache.Runtime)
	if err != nil {
		return err
	}
	start := time.Now().UTC()
	e, err := planner.Import(iox.Ctx, cache, b, c.File, c.Ref, name, planner.ImportOptions{Force: c.Force, LockTimeout: c.LockTimeout})
	recordImport(g, iox, cache, spec.Address(cache.Name, c.Ref), c.Ref, start, e, err)
	if err != nil {
		return err
	}
	fmt.Fprintf(iox.Stdout, "Imported %s as %s (%s, %s, mode %s).\n", c.File, spec.Address(cache.Name, c.Ref), spec.JoinRoot(cache.Root, name), planner.HumanBytes(e.Size), e.Mode)
	return nil
}
