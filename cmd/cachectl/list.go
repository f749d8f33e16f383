package main

import (
	"encoding/json"
	"time"

	"github.com/cachectl/cachectl/cmd/cachectl/views"
	"github.com/cachectl/cachectl/planner"
)

// ListCmd prints the inventory of the caches.
type ListCmd struct {
	Cache      string `arg:"" optional:"" predictor:"cache" help:"Only this cache."`
	JSON       bool   `name:"json" help:"Print JSON."`
	Verify     bool   `name:"verify" help:"Re-hash every managed file."`
	Determined bool   `name:"determined" help:"Print each artifact's environment.image value for Determined, and one task_container_defaults block for master.yaml."`
}

// Help shows examples.
func (ListCmd) Help() string {
	return `Status is ok, missing, drifted (apply would fix or rebuild it: the file changed
since cachectl placed it, its mode or owner differs from the spec, or the spec
now wants it built otherwise), orphaned (placed by cachectl, no longer in the
spec) or unmanaged (not placed by cachectl). list reads the index and the files
only, never a registry: a tag that moved shows in "cachectl plan", not here.

--determined prints what Determined's HPC launcher needs: each artifact's
environment.image value (a SIF with a file name of its own by its absolute
path, as the launcher looks a reference up as <root>/<ref>) and one
task_container_defaults block for master.yaml, with Determined's keys cpu,
cuda (a flavor named gpu counts as cuda) and rocm, from the first cache of each
runtime kind the launcher reads; other flavors follow as comments.

Examples:
  cachectl list
  cachectl list sif -json
  cachectl list --determined`
}

// Run lists.
func (c *ListCmd) Run(g *Globals, iox *IO) error {
	m, err := loadModel(g, iox)
	if err != nil {
		return err
	}
	var items []planner.Item
	if c.Cache == "" || m.NodeCache(c.Cache) == nil {
		if items, err = planner.Inventory(m, c.Cache, builderInfo, c.Verify); err != nil {
			return err
		}
	}
	nodes, err := listNodes(m, c.Cache)
	if err != nil {
		return err
	}
	if c.Determined {
		if err := views.Determined(iox.Stdout, m, items); err != nil {
			return err
		}
		return views.Pyxis(iox.Stdout, m, nodes)
	}
	if c.JSON {
		items = append(items, nodeItems(m, nodes)...)
		enc := json.NewEncoder(iox.Stdout)
		enc.SetIndent("", "  ")
		if items == nil {
			items = []planner.Item{}
		}
		return enc.Encode(items)
	}
	if len(items) == 0 && len(nodes) > 0 {
		views.NodeTable(iox.Stdout, nodes, false)
		return nil
	}
	if err := views.Inventory(iox.Stdout, items, time.Now()); err != nil {
		return err
	}
	views.NodeTable(iox.Stdout, nodes, true)
	return nil
}
