package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/nodecache"
	"github.com/cachectl/cachectl/spec"
)

// listNodes returns the node coverage list shows: every node cache's
// with no argument, one node cache's when only names it, none when only
// names a cache.
func listNodes(m *spec.Model, only string) ([]nodecache.Coverage, error) {
	if only != "" && m.NodeCache(only) == nil {
		return nil, nil
	}
	return nodecache.Coverages(m, only)
}

// nodeItems lists each wanted artifact on each staged node (list -json).
func nodeItems(m *spec.Model, covs []nodecache.Coverage) []planner.Item {
	var items []planner.Item
	for _, c := range covs {
		rt := ""
		if nc := m.NodeCache(c.NodeCache); nc != nil {
			if from := m.Cache(nc.From); from != nil {
				rt = string(from.Runtime)
			}
		}
		for _, a := range c.Artifacts {
			items = append(items, planner.Item{Cache: c.NodeCache, Runtime: rt, Node: c.Node, Status: a.Status, Ref: a.Ref, Name: a.Name, Path: a.Path, Placed: c.Staged})
		}
	}
	return items
}

// writeNodeTable prints one line per staged node.
func writeNodeTable(w io.Writer, covs []nodecache.Coverage, gap bool) {
	if len(covs) == 0 {
		return
	}
	if gap {
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE CACHE\tNODE\tSTATUS\tOK\tMISSING\tSTALE\tHELD\tFREE\tSTAGED")
	now := time.Now()
	for _, c := range covs {
		status := "ok"
		if c.Drifted() {
			status = c.String()[len(c.Node)+2:]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s ago\n", c.NodeCache, c.Node, status, c.OK, len(c.Missing), len(c.Stale),
			planner.HumanBytes(c.Size), planner.HumanBytes(c.FreeBytes), humanAge(now.Sub(c.Staged)))
	}
	tw.Flush()
}

// writePyxis prints, for list --determined, the node-local paths that
// jobs give Pyxis (srun --container-image) or Apptainer on the nodes.
func writePyxis(w io.Writer, m *spec.Model, covs []nodecache.Coverage) error {
	for _, nc := range m.NodeCaches {
		from := m.Cache(nc.From)
		fmt.Fprintf(w, "# node cache %q (copies of cache %q on each node's local disk: %s)\n", nc.Name, nc.From, nc.Root)
		for _, a := range from.Artifacts {
			if !nc.Wants(a.Ref) {
				continue
			}
			local := spec.JoinRoot(nc.Root, a.Name)
			switch from.Runtime {
			case spec.RuntimeEnroot:
				fmt.Fprintf(w, "#   %s: srun --container-image=%s\n", a.Ref, local)
			case spec.RuntimePodman:
				fmt.Fprintf(w, "#   %s: podman load -i %s\n", a.Ref, local)
			default:
				fmt.Fprintf(w, "#   %s: %s exec %s\n", a.Ref, from.Runtime, local)
			}
		}
		for _, c := range covs {
			if c.NodeCache == nc.Name && c.Drifted() {
				fmt.Fprintf(w, "#   not everywhere yet: %s\n", c)
			}
		}
		fmt.Fprintln(w)
	}
	return nil
}
