package views

import (
	"fmt"
	"io"
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
// environment.image to use an artifact of a cache. The HPC launcher looks
// an Apptainer/Singularity reference up as <singularity_image_root>/<ref>,
// so a file with a name of its own (an image block's name, or adopted
// under another name) is given by its absolute path; an Enroot reference
// becomes the container of <root>/<ref with / and : as +>.sqsh; Podman
// reads the OCI archive.
func environmentImage(c *spec.Cache, it planner.Item) string {
	switch c.Runtime {
	case spec.RuntimePodman:
		return "oci-archive:" + it.Path
	case spec.RuntimeApptainer, spec.RuntimeSingularity:
		if !defaultName(c.Runtime, it) {
			return it.Path
		}
	}
	return it.Ref
}

// defaultName reports whether the artifact's file has the name its
// reference gives (spec.FileName), the one the launcher looks for.
func defaultName(rt spec.Runtime, it planner.Item) bool {
	n, err := spec.FileName(rt, it.Ref)
	return err == nil && n == it.Name
}

// determinedKey is the task_container_defaults.image key of a flavor:
// Determined's cpu, cuda (its older name gpu is read as cuda) and rocm
// (EnvironmentImageMapV0 in determined-ai/determined
// master/pkg/schemas/expconf); "" for other flavors.
func determinedKey(flavor string) string {
	switch flavor {
	case "cpu", "cuda", "rocm":
		return flavor
	case "gpu":
		return "cuda"
	}
	return ""
}

// launcherKind groups the runtimes by what Determined's launcher reads:
// one singularity_image_root for Apptainer and Singularity, Enroot
// containers, Podman.
func launcherKind(rt spec.Runtime) string {
	if rt.Format() == "sif" {
		return "apptainer/singularity"
	}
	return string(rt)
}

// flavorDefault is the item of a flavor's first image (the flavor's order
// in the spec) that the cache holds.
func flavorDefault(m *spec.Model, c *spec.Cache, flavor string, its map[string]planner.Item) (planner.Item, bool) {
	for _, fl := range m.Flavors {
		if fl.Name != flavor {
			continue
		}
		for _, ref := range fl.Images {
			for _, a := range c.Artifacts {
				if it, ok := its[a.Name]; ok && a.Ref == ref {
					return it, true
				}
			}
		}
	}
	return planner.Item{}, false
}

// Determined prints, per cache, the environment.image values of its
// artifacts, then one task_container_defaults block for Determined's
// master.yaml (cachectl list --determined). The block's images come from
// the first cache of each runtime kind the launcher reads (launcherKind),
// in spec order: a key takes the first cache's image of that flavor (a
// flavor's first image); another kind's differing value, and flavors that
// are not Determined keys, follow as comments.
func Determined(w io.Writer, m *spec.Model, items []planner.Item) error {
	bw := &errWriter{w: w}
	type source struct {
		c   *spec.Cache
		its map[string]planner.Item // by artifact name
	}
	var readers []source
	kinds := map[string]bool{}
	for _, c := range m.Caches {
		its := map[string]planner.Item{}
		var list []planner.Item
		for _, it := range items {
			if it.Cache == c.Name && it.Ref != "" && it.Status != planner.StatusOrphaned {
				its[it.Name] = it
				list = append(list, it)
			}
		}
		if len(list) == 0 {
			continue
		}
		if k := launcherKind(c.Runtime); !kinds[k] {
			kinds[k] = true
			readers = append(readers, source{c, its})
		}
		bw.printf("# cache %q (%s, %s)\n", c.Name, c.Runtime, c.Root)
		switch c.Runtime {
		case spec.RuntimeApptainer, spec.RuntimeSingularity:
			bw.printf("# master.yaml: resource_manager.singularity_image_root: %s\n", c.Root)
		case spec.RuntimeEnroot:
			bw.printf("# enroot: enroot create %s/NAME.sqsh (files below)\n", c.Root)
		}
		for _, it := range list {
			note := it.Path
			switch {
			case c.Runtime.Format() == "sif" && !defaultName(c.Runtime, it):
				note = "a name of its own: given by its path, as the launcher looks " + it.Ref + " up as <root>/<ref>"
			case c.Runtime == spec.RuntimeEnroot && !defaultName(c.Runtime, it):
				note += "; a name of its own: the launcher looks for <root>/<ref with / and : as +>.sqsh, not this file"
			}
			bw.printf("#   %-10s environment.image: %s   (%s)\n", it.Status, environmentImage(c, it), note)
		}
		bw.printf("\n")
	}
	if len(readers) == 0 {
		return bw.err
	}
	type value struct{ image, from string }
	keys := map[string]value{}
	var comments []string
	others, noted := map[string]bool{}, map[string]bool{}
	for _, r := range readers {
		from := fmt.Sprintf("cache %q (%s)", r.c.Name, r.c.Runtime)
		for _, f := range r.c.Flavors {
			it, ok := flavorDefault(m, r.c, f, r.its)
			if !ok {
				continue
			}
			img := environmentImage(r.c, it)
			k := determinedKey(f)
			switch prev, seen := keys[k]; {
			case k == "":
				if !others[f] {
					others[f] = true
					comments = append(comments, fmt.Sprintf("    # flavor %q is not one of Determined's keys (cpu, cuda, rocm): %q from %s", f, img, from))
				}
			case !seen:
				keys[k] = value{img, from}
			case prev.image != img && prev.from != from && !noted[k+"\x00"+from]:
				noted[k+"\x00"+from] = true
				comments = append(comments, fmt.Sprintf("    # %s from %s: %q", k, from, img))
			}
		}
	}
	var names []string
	for _, r := range readers {
		names = append(names, fmt.Sprintf("cache %q (%s)", r.c.Name, launcherKind(r.c.Runtime)))
	}
	bw.printf("# master.yaml: one task_container_defaults for the cluster, from the first\n")
	bw.printf("# cache of each runtime kind the launcher reads (its container_run_type\n")
	bw.printf("# picks one): %s.\n", strings.Join(names, ", "))
	bw.printf("# A key is the first image of its flavor in the first of these that has it.\n")
	bw.printf("task_container_defaults:\n  image:\n")
	for _, k := range []string{"cpu", "cuda", "rocm"} {
		if v, ok := keys[k]; ok {
			bw.printf("    %s: %q   # %s\n", k, v.image, v.from)
		}
	}
	for _, c := range comments {
		bw.printf("%s\n", c)
	}
	return bw.err
}
