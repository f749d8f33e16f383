package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/providers/store"
)

// GCCmd removes blobs no cache index references.
type GCCmd struct {
	DryRun      bool          `name:"dry-run" help:"Only show what would be removed and how many bytes."`
	LockTimeout time.Duration `name:"lock-timeout" default:"0s" help:"How long to wait while an apply or bundle uses the blob store (0: skip this gc run, removing nothing)."`
}

// Help shows examples.
func (GCCmd) Help() string {
	return `Blobs (manifests, configs, layers) stay in the store so that later applies
download nothing twice. gc keeps every blob that an artifact recorded in the
index of one of the spec's caches needs, and removes the rest. A store shared by
several specs should be collected with a spec that lists all their caches.

gc never runs while an apply or bundle uses the store (they hold its lock
shared): it skips, removing nothing, or waits up to --lock-timeout.

Examples:
  cachectl gc -dry-run
  cachectl gc --store /var/cache/cachectl/store`
}

// Run collects garbage.
func (c *GCCmd) Run(g *Globals, iox *IO) error {
	m, err := loadModel(g, iox)
	if err != nil {
		return err
	}
	st, err := openStore(g, m)
	if err != nil {
		return err
	}
	if !c.DryRun { // a dry run reads only: it needs no lock (nor write access)
		lock, err := st.LockExclusive(iox.Ctx, c.LockTimeout, func() {
			fmt.Fprintf(iox.Stderr, "gc: the blob store %s is in use by an apply or bundle; waiting up to %s…\n", st.Dir(), c.LockTimeout)
		})
		if errors.Is(err, store.ErrBusy) {
			fmt.Fprintf(iox.Stdout, "gc skipped: the blob store %s is in use by an apply or bundle; nothing was removed. Run gc again later, or wait with --lock-timeout 1h.\n", st.Dir())
			return nil
		}
		if err != nil {
			return err
		}
		defer lock.Release()
	}
	roots, err := planner.StoreRoots(m)
	if err != nil {
		return err
	}
	keep, err := st.Referenced(roots...)
	if err != nil {
		return err
	}
	rep, err := st.GC(store.KeepSet(keep), c.DryRun)
	if err != nil {
		return err
	}
	verb := "Removed"
	if c.DryRun {
		verb = "Would remove"
		for _, h := range rep.Removed {
			fmt.Fprintf(iox.Stdout, "  %s\n", h)
		}
	}
	fmt.Fprintf(iox.Stdout, "%s %d blobs (%s) from %s; kept %d.\n", verb, len(rep.Removed), planner.HumanBytes(rep.Bytes), st.Dir(), len(keep))
	return nil
}
