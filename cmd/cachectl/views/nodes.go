package views

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/nodecache"
	"github.com/cachectl/cachectl/spec"
)

// NodeTable prints one line per staged node of a node cache (after a
// blank line when gap), nothing when there is none.
func NodeTable(w io.Writer, covs []nodecache.Coverage, gap bool) {
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

// Pyxis prints, for list --determined, the node-local paths that
// jobs give Pyxis (srun --container-image) or Apptainer on the nodes.
func Pyxis(w io.Writer, m *spec.Model, covs []nodecache.Coverage) error {
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

// NodesText writes one line per node: "node cache local: n17: 2 missing, 1 stale".
func NodesText(w io.Writer, covs []nodecache.Coverage) error {
	if len(covs) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(w, "\nNode-local caches:"); err != nil {
		return err
	}
	for _, c := range covs {
		if _, err := fmt.Fprintf(w, "  %s %s (staged %s)\n", c.NodeCache, c, c.Staged.Format(time.RFC3339)); err != nil {
			return err
		}
	}
	return nil
}

// NodesMarkdown writes a table of the nodes' coverage.
func NodesMarkdown(w io.Writer, covs []nodecache.Coverage) error {
	if len(covs) == 0 {
		return nil
	}
	var b strings.Builder
	drifted := 0
	for _, c := range covs {
		if c.Drifted() {
			drifted++
		}
	}
	b.WriteString("\n## Node-local caches\n\n")
	if drifted > 0 {
		fmt.Fprintf(&b, "**drift** on %d of %d staged nodes (missing or stale artifacts, or errors at the last stage; run `cachectl stage`).\n\n", drifted, len(covs))
	} else {
		fmt.Fprintf(&b, "**in sync** on all %d staged nodes.\n\n", len(covs))
	}
	b.WriteString("| node cache | node | status | ok | missing | stale | held | free | staged |\n|---|---|---|--:|--:|--:|--:|--:|---|\n")
	for _, c := range covs {
		status := "in sync"
		if c.Drifted() {
			status = "**" + strings.TrimPrefix(c.String(), c.Node+": ") + "**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %s | %s | %s |\n", c.NodeCache, c.Node, strings.ReplaceAll(status, "|", `\|`),
			c.OK, len(c.Missing), len(c.Stale), planner.HumanBytes(c.Size), planner.HumanBytes(c.FreeBytes), c.Staged.UTC().Format("2006-01-02 15:04 UTC"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// NodesPrometheus writes the coverage as text-format metrics:
// cachectl_node_artifacts{node_cache,node,status} (ok, missing, stale),
// cachectl_node_errors, cachectl_node_free_bytes and
// cachectl_node_staged_timestamp_seconds.
func NodesPrometheus(w io.Writer, covs []nodecache.Coverage) error {
	if len(covs) == 0 {
		return nil
	}
	var b strings.Builder
	metric := func(name, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
	}
	label := func(c nodecache.Coverage) string {
		return fmt.Sprintf("node_cache=%q,node=%q", c.NodeCache, c.Node)
	}
	metric("cachectl_node_artifacts", "Wanted artifacts of a node-local cache on a node, by status (ok, missing, stale), as its last stage recorded.")
	for _, c := range covs {
		fmt.Fprintf(&b, "cachectl_node_artifacts{%s,status=\"ok\"} %d\n", label(c), c.OK)
		fmt.Fprintf(&b, "cachectl_node_artifacts{%s,status=\"missing\"} %d\n", label(c), len(c.Missing))
		fmt.Fprintf(&b, "cachectl_node_artifacts{%s,status=\"stale\"} %d\n", label(c), len(c.Stale))
	}
	metric("cachectl_node_errors", "Errors of the node's last stage.")
	for _, c := range covs {
		fmt.Fprintf(&b, "cachectl_node_errors{%s} %d\n", label(c), len(c.Errors))
	}
	metric("cachectl_node_free_bytes", "Free bytes of the node's local file system at its last stage.")
	for _, c := range covs {
		fmt.Fprintf(&b, "cachectl_node_free_bytes{%s} %d\n", label(c), c.FreeBytes)
	}
	metric("cachectl_node_staged_timestamp_seconds", "When the node was last staged (Unix time).")
	for _, c := range covs {
		fmt.Fprintf(&b, "cachectl_node_staged_timestamp_seconds{%s} %d\n", label(c), c.Staged.Unix())
	}
	_, err := io.WriteString(w, b.String())
	return err
}
