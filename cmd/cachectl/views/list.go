package views

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/spec"
)

// Inventory prints the inventory (cachectl list) as a table: one line per
// artifact with its cache, status, reference, path, digest, size and age
// at now ("No artifacts." when there is none).
func Inventory(w io.Writer, items []planner.Item, now time.Time) error {
	if len(items) == 0 {
		fmt.Fprintln(w, "No artifacts.")
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CACHE\tSTATUS\tREFERENCE\tPATH\tDIGEST\tSIZE\tAGE")
	for _, it := range items {
		ref := it.Ref
		if ref == "" {
			ref = "-"
		}
		switch {
		case it.Unverified:
			ref += " (adopted, unverified content)"
		case it.Adopted:
			ref += " (adopted)"
		case it.Imported:
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.Cache, it.Status, Printable(ref), Printable(it.Path), dig, size, age)
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

// Determined prints, per cache, the environment.image values of its
// artifacts and a task_container_defaults snippet for Determined's
// master.yaml (cachectl list --determined).
func Determined(w io.Writer, m *spec.Model, items []planner.Item) error {
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
