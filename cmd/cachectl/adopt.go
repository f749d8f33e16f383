package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cachectl/cachectl/cmd/cachectl/views"
	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/adopt"
	"github.com/cachectl/cachectl/providers/registry"
	"github.com/cachectl/cachectl/spec"
)

// AdoptCmd takes over what an existing cache root holds.
type AdoptCmd struct {
	Cache       string        `arg:"" help:"The cache to adopt into: one of the spec, or a new one (then ROOT is needed)."`
	Root        string        `arg:"" optional:"" help:"The root directory, for a cache the spec does not have yet."`
	Runtime     string        `name:"runtime" enum:",apptainer,singularity,enroot,podman" default:"" help:"Runtime of a new cache (default: the format most files have)."`
	DryRun      bool          `name:"dry-run" help:"Show what would be adopted and the spec that would be written; change nothing."`
	Map         []string      `name:"map" sep:"none" placeholder:"NAME=REF" help:"The reference of a file (relative to the root); overrides inference (repeatable)."`
	MapFile     string        `name:"map-file" type:"existingfile" placeholder:"FILE" help:"A file of NAME=REF lines (# comments)."`
	Track       bool          `name:"track" help:"Record each image's digest (from the file when it tells, else the tag's current digest from the registry, marked unverified content), so that a moved tag shows as drift. Default: adopted files are pinned until plan -replace."`
	Offline     bool          `name:"offline" help:"Ask no registry: names that read several ways stay unresolved (use --map)."`
	LockTimeout time.Duration `name:"lock-timeout" default:"0s" help:"How long to wait for an apply holding the root's lock."`
}

// Help shows examples.
func (AdoptCmd) Help() string {
	return `Scans the root: every file the index does not hold is checked (its format
with the builder's check, as import does) and its image reference inferred:
an Apptainer root's <root>/<reference> path, a SIF's definition and labels
(*.sif files as "singularity pull" names them), an OCI archive's ref.name, an
Enroot/Podman name with "+" for "/" and ":" (a name that reads several ways
is settled against the registry, or with --map). The spec is then written
(a new cache block in the spec file, or the cache's block extended; in a spec
directory, a new CACHE.hcl) and the files are recorded in the index in place:
nothing of them changes, and "cachectl plan" right after shows no changes, or
only real drift (a file whose mode or owner differs from the rest) with its
reason. Files that are not artifacts, or whose reference stays unknown, are
listed and never touched.

Examples:
  cachectl adopt sif /shared/containers/sif --dry-run
  cachectl adopt enroot /shared/enroot --map 'my+tool+1.sqsh=my/tool:1'
  cachectl adopt sif --track             # the spec's cache "sif": take over what its root holds`
}

// Run adopts.
func (c *AdoptCmd) Run(g *Globals, iox *IO) error {
	var m *spec.Model
	if _, err := os.Stat(g.Spec); err == nil {
		if m, err = loadModel(g, iox); err != nil {
			return err
		}
	} else if !os.IsNotExist(err) {
		return err
	}
	if !spec.ValidCacheName(c.Cache) {
		return fmt.Errorf("%q is not a valid cache name: use letters, digits, underscores and dashes, starting with a letter or underscore", c.Cache)
	}
	var cache *spec.Cache
	if m != nil {
		cache = m.Cache(c.Cache)
	}
	root := c.Root
	rt := spec.Runtime(c.Runtime)
	if root != "" {
		abs, err := filepath.Abs(root)
		if err != nil {
			return err
		}
		root = filepath.Clean(abs)
	}
	switch {
	case cache != nil && root != "" && root != cache.Root:
		return fmt.Errorf("cache %q of the spec has root %s, not %s; leave ROOT out, or adopt into a new cache name", c.Cache, cache.Root, root)
	case cache != nil && rt != "" && rt != cache.Runtime:
		return fmt.Errorf("cache %q of the spec has runtime %s, not %s", c.Cache, cache.Runtime, rt)
	case cache != nil:
		root, rt = cache.Root, cache.Runtime
	case root == "":
		return fmt.Errorf("the spec (%s) has no cache %q; give its root: cachectl adopt %s /path/to/root", g.Spec, c.Cache, c.Cache)
	case m != nil:
		for _, o := range m.Caches {
			if o.Root == root {
				return fmt.Errorf("%s is the root of cache %q already; run: cachectl adopt %s", root, o.Name, o.Name)
			}
		}
	}
	opts := adopt.Options{Runtime: rt, Builder: builderFor, Map: map[string]string{}, Wanted: map[string]string{}}
	for _, mp := range c.Map {
		if err := adopt.ParseMap(opts.Map, root, mp, "--map"); err != nil {
			return err
		}
	}
	if c.MapFile != "" {
		if err := readMapFile(opts.Map, root, c.MapFile); err != nil {
			return err
		}
	}
	platform := spec.DefaultPlatform
	if cache != nil {
		platform = cache.Platform
		for _, a := range cache.Artifacts {
			opts.Wanted[a.Name] = a.Ref
		}
	}
	res, err := adopt.Scan(iox.Ctx, root, opts)
	if err != nil {
		return err
	}
	if !c.Offline {
		rm := m
		if rm == nil {
			rm = &spec.Model{}
		}
		client, err := registry.New(registry.Options{Hosts: registryHosts(rm), UserAgent: "cachectl/" + Version})
		if err != nil {
			return err
		}
		res.Resolve(iox.Ctx, client, platform, c.Track, opts.Wanted)
	}
	writeAdoptTable(iox.Stdout, res)
	n := len(res.Adoptable())
	if n == 0 {
		fmt.Fprintf(iox.Stdout, "\nNothing to adopt in %s; nothing was changed.\n", root)
		return nil
	}

	// The spec: a new cache block, or the cache's block extended.
	var specPath string
	var before, after []byte
	nc := res.Settings(c.Cache)
	switch {
	case cache != nil:
		specPath = cache.Range.Filename
		if before, err = os.ReadFile(specPath); err != nil {
			return err
		}
		if after, err = adopt.AddToCache(before, specPath, cache, res); err != nil {
			return err
		}
	default:
		specPath = g.Spec
		if fi, err := os.Stat(g.Spec); err == nil && fi.IsDir() {
			specPath = filepath.Join(g.Spec, c.Cache+".hcl")
			if _, err := os.Stat(specPath); err == nil {
				return fmt.Errorf("%s exists; adopt writes the new cache there: move it away first", specPath)
			}
		} else if err == nil {
			if before, err = os.ReadFile(g.Spec); err != nil {
				return err
			}
		}
		block := adopt.NewCacheBlock(nc, res)
		after = append([]byte{}, before...)
		if len(after) > 0 {
			if !strings.HasSuffix(string(after), "\n") {
				after = append(after, '\n')
			}
			after = append(after, '\n')
		}
		after = append(after, block...)
	}
	changed := string(after) != string(before)
	if changed {
		if c.DryRun {
			fmt.Fprintf(iox.Stdout, "\nThe spec would get (%s):\n\n", specPath)
		} else {
			fmt.Fprintf(iox.Stdout, "\nSpec written to %s:\n\n", specPath)
		}
		if cache == nil {
			iox.Stdout.Write(adopt.NewCacheBlock(nc, res))
		} else {
			writeDiffLines(iox.Stdout, before, after)
		}
	}
	if c.DryRun {
		fmt.Fprintf(iox.Stdout, "\nDry run: %d file(s) would be adopted into cache.%s; nothing was changed.\n", n, c.Cache)
		return nil
	}
	// Check the edited spec before writing it: it must load, and place
	// every adopted file where it is.
	m2, err := loadEdited(g, iox, m, specPath, after)
	if err != nil {
		return fmt.Errorf("the spec adopt would write does not load (nothing was changed): %w", err)
	}
	c2 := m2.Cache(c.Cache)
	for _, f := range res.Adoptable() {
		if !hasArtifact(c2, f.Ref, f.Name) {
			return fmt.Errorf("internal error: the written spec would not place %s at %s; nothing was changed", f.Ref, f.Name)
		}
	}
	if changed {
		if err := writeSpecFile(specPath, after); err != nil {
			return fmt.Errorf("write %s: %w", specPath, err)
		}
	}
	b, err := builderFor(c2.Runtime)
	if err != nil {
		return err
	}
	entries, errs := adopt.Take(iox.Ctx, c2, res, b, c.LockTimeout)
	left := len(res.Files) - len(entries)
	fmt.Fprintf(iox.Stdout, "\nAdopted %d file(s) into cache.%s (%s); %d left unmanaged, untouched. Run \"cachectl plan\": it shows no changes, or the drift of files whose mode or owner differ.\n", len(entries), c.Cache, root, left)
	if len(errs) > 0 {
		return fmt.Errorf("%d file(s) not adopted: %w", len(errs), errors.Join(errs...))
	}
	return nil
}

// readMapFile reads NAME=REF lines.
func readMapFile(dst map[string]string, root, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for i := 1; sc.Scan(); i++ {
		if err := adopt.ParseMap(dst, root, sc.Text(), fmt.Sprintf("%s:%d", file, i)); err != nil {
			return err
		}
	}
	return sc.Err()
}

// writeAdoptTable lists what the scan found.
func writeAdoptTable(w io.Writer, res *adopt.Result) {
	fmt.Fprintf(w, "Scanned %s (%s): %d file(s) not in its index.\n", res.Root, res.Runtime, len(res.Files))
	if len(res.Files) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tFILE\tREFERENCE\tFOUND BY\tNOTE")
	for _, f := range res.Files {
		ref, by := f.Ref, f.Info.RefFrom
		if ref == "" {
			ref, by = "-", "-"
		}
		note := f.Reason
		if f.Status == adopt.StatusAdopt && note == "" {
			note = fmt.Sprintf("%s, mode %s, owner %d:%d", planner.HumanBytes(f.Size), f.Mode, f.UID, f.GID)
			if f.Info.DigestFrom == "registry" {
				note += ", digest from the registry (unverified content)"
			}
		}
		// File names (and what they read as) are the root's, where others
		// may have written: escaped when they hold control characters.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Status, views.Printable(f.Name), views.Printable(ref), by, views.Printable(note))
	}
	tw.Flush()
}

// writeDiffLines prints the lines after adds to before (a file extended
// in place), marked with "+".
func writeDiffLines(w io.Writer, before, after []byte) {
	old := map[string]int{}
	for _, l := range strings.Split(string(before), "\n") {
		old[strings.TrimSpace(l)]++
	}
	for _, l := range strings.Split(strings.TrimRight(string(after), "\n"), "\n") {
		k := strings.TrimSpace(l)
		if old[k] > 0 {
			old[k]--
			continue
		}
		fmt.Fprintf(w, "+ %s\n", l)
	}
}

// loadEdited loads the spec with one file's content replaced (or added).
func loadEdited(g *Globals, iox *IO, m *spec.Model, file string, content []byte) (*spec.Model, error) {
	var srcs []spec.Source
	seen := false
	if m != nil {
		for _, f := range m.Files {
			if f == file {
				srcs = append(srcs, spec.Source{Filename: f, Bytes: content})
				seen = true
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			srcs = append(srcs, spec.Source{Filename: f, Bytes: b})
		}
	}
	if !seen {
		srcs = append(srcs, spec.Source{Filename: file, Bytes: content})
	}
	m2, diags := spec.LoadSources(srcs, spec.Options{Vars: g.Var, VarFiles: g.VarFile, Environ: iox.Environ})
	if diags.HasErrors() || m2 == nil {
		var b strings.Builder
		diags.WriteText(&b, false, 0)
		return nil, errors.New(strings.TrimSpace(b.String()))
	}
	return m2, nil
}

// hasArtifact reports whether cache c places ref at name.
func hasArtifact(c *spec.Cache, ref, name string) bool {
	if c == nil {
		return false
	}
	for _, a := range c.Artifacts {
		if a.Ref == ref && a.Name == name {
			return true
		}
	}
	return false
}
