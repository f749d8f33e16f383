package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/spec"
)

// ListCmd prints the inventory of the caches.
type ListCmd struct {
	Cache      string `arg:"" optional:"" help:"Only this cache."`
	JSON       bool   `name:"json" help:"Print JSON."`
	Verify     bool   `name:"verify" help:"Re-hash every managed file."`
	Determined bool   `name:"determined" help:"Print each artifact's environment.image value for Determined, and task_container_defaults snippets for master.yaml."`
}

// Help shows examples.
func (ListCmd) Help() string {
	return `Status is ok, missing, drifted (changed, mode/owner drift, tag moved offline is not checked), orphaned (managed, left the spec) or unmanaged (not placed by cachectl).

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
		if err := writeDetermined(iox.Stdout, m, items); err != nil {
			return err
		}
		return writePyxis(iox.Stdout, m, nodes)
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
	if len(items) == 0 && len(nodes) == 0 {
		fmt.Fprintln(iox.Stdout, "No artifacts.")
		return nil
	}
	defer writeNodeTable(iox.Stdout, nodes, len(items) > 0)
	if len(items) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(iox.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CACHE\tSTATUS\tREFERENCE\tPATH\tDIGEST\tSIZE\tAGE")
	now := time.Now()
	for _, it := range items {
		ref := it.Ref
		if ref == "" {
			ref = "-"
		}
		if it.Imported {
			ref += " (imported)"
		}
		dig := "-"
		if it.Manifest != "" {
			dig = shortDigest(it.Manifest)
		}
		size, age := "-", "-"
		if it.Size > 0 || it.Status == planner.StatusOK {
			size = planner.HumanBytes(it.Size)
		}
		if !it.Placed.IsZero() {
			age = humanAge(now.Sub(it.Placed))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.Cache, it.Status, ref, it.Path, dig, size, age)
	}
	return tw.Flush()
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

func humanAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// environmentImage is the value a Determined experiment puts in
// environment.image to use an artifact of a cache.
func environmentImage(c *spec.Cache, it planner.Item) string {
	switch c.Runtime {
	case spec.RuntimePodman:
		return "oci-archive:" + it.Path
	case spec.RuntimeEnroot:
		return it.Ref // the launcher maps it to <root>/<ref with / and : as +>.sqsh
	}
	return it.Ref // looked up under singularity_image_root
}

func writeDetermined(w io.Writer, m *spec.Model, items []planner.Item) error {
	for _, c := range m.Caches {
		var its []planner.Item
		for _, it := range items {
			if it.Cache == c.Name && it.Ref != "" && it.Status != planner.StatusOrphaned {
				its = append(its, it)
			}
		}
		if len(its) == 0 {
			continue
		}
		fmt.Fprintf(w, "# cache %q (%s, %s)\n", c.Name, c.Runtime, c.Root)
		switch c.Runtime {
		case spec.RuntimeApptainer, spec.RuntimeSingularity:
			fmt.Fprintf(w, "# master.yaml: resource_manager.singularity_image_root: %s\n", c.Root)
		case spec.RuntimeEnroot:
			fmt.Fprintf(w, "# enroot: enroot create %s/NAME.sqsh (files below)\n", c.Root)
		}
		for _, it := range its {
			fmt.Fprintf(w, "#   %-10s environment.image: %s   (%s)\n", it.Status, environmentImage(c, it), it.Path)
		}
		byFlavor := map[string]string{}
		var flavors []string
		for _, it := range its {
			for _, f := range it.Flavors {
				if _, ok := byFlavor[f]; !ok {
					flavors = append(flavors, f)
					byFlavor[f] = environmentImage(c, it)
				}
			}
		}
		if len(flavors) > 0 {
			sort.Strings(flavors)
			fmt.Fprintln(w, "task_container_defaults:")
			fmt.Fprintln(w, "  image:")
			for _, f := range flavors {
				fmt.Fprintf(w, "    %s: %q\n", f, byFlavor[f])
			}
		}
		fmt.Fprintln(w)
	}
	return nil
}
