package main

import (
	"fmt"
	"io"
	"time"

	"github.com/cachectl/cachectl/cmd/cachectl/views"
	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/builders"
	"github.com/cachectl/cachectl/providers/bundle"
	"github.com/cachectl/cachectl/providers/localsrc"
	"github.com/cachectl/cachectl/providers/progress"
	"github.com/cachectl/cachectl/providers/registry"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/providers/store"
	"github.com/cachectl/cachectl/spec"
)

// loadModel loads and validates the spec, printing its diagnostics
// (warnings too) to stderr. Errors return errReported.
func loadModel(g *Globals, iox *IO) (*spec.Model, error) {
	m, diags := spec.Load(g.Spec, loadOptions(g, iox))
	if diags != nil && len(diags.Diagnostics) > 0 {
		diags.WriteText(iox.Stderr, g.Color(iox.Stderr), 0)
	}
	if diags != nil && diags.HasErrors() || m == nil {
		return nil, errReported
	}
	n := 0
	for _, c := range m.Caches {
		n += len(c.Artifacts)
	}
	g.Logger(iox.Stderr).Debug("spec loaded", "files", m.Files, "caches", len(m.Caches), "artifacts", n)
	return m, nil
}

// loadOptions are the spec.Load options of the command line: variables
// and the environment.
func loadOptions(g *Globals, iox *IO) spec.Options {
	return spec.Options{Vars: g.Var, VarFiles: g.VarFile, Environ: iox.Environ}
}

// storeDir picks the blob store: --store (or CACHECTL_STORE), else the
// spec's cachectl { store }, else the default.
func storeDir(g *Globals, m *spec.Model) string {
	if g.Store != "" {
		return g.Store
	}
	if m != nil && m.Store != "" {
		return m.Store
	}
	return store.DefaultDir()
}

// sourceFlags are the flags of commands that talk to registries.
type sourceFlags struct {
	Progress string `name:"progress" default:"auto" enum:"auto,bars,lines,json,none" help:"Progress output on stderr: auto (bars on a terminal, lines otherwise), bars, lines, json (one event per line), none."`
}

func (f sourceFlags) sink(g *Globals, iox *IO) progress.Sink {
	mode := f.Progress
	if mode == "auto" {
		if IsTerminal(iox.Stderr) {
			mode = "bars"
		} else {
			mode = "lines"
		}
	}
	switch mode {
	case "bars":
		// Drawn from the first download on: not over a confirmation prompt.
		return progress.Lazy(func() progress.Sink { return progress.NewBars(iox.Stderr) }, iox.Stdout)
	case "lines":
		return progress.NewLines(iox.Stderr)
	case "json":
		return progress.NewJSON(iox.Stderr)
	}
	return nil
}

// newSource returns where plan and apply get images: the spec's local
// sources, and the bundles when any are given (no network at all), else
// the registries; all over the run's blob store.
func newSource(g *Globals, iox *IO, st *store.Store, m *spec.Model, sink progress.Sink, bundles []string) (*source.Multi, error) {
	g.Logger(iox.Stderr).Info("blob store", "dir", st.Dir(), "bundles", bundles)
	var fallback source.Source
	if len(bundles) == 0 {
		src, err := newRegistrySource(g, st, m, sink)
		if err != nil {
			return nil, err
		}
		fallback = src
	} else {
		src, err := bundle.OpenImageSource(st, bundles...)
		if err != nil {
			return nil, err
		}
		fallback = src
	}
	return source.NewMulti(spec.IsLocalRef, localsrc.NewImageSource(st, planner.LocalRefs(m)), fallback), nil
}

// newRegistrySource builds the registry client of a run over its blob store.
func newRegistrySource(g *Globals, st *store.Store, m *spec.Model, sink progress.Sink) (*registry.ImageSource, error) {
	c, err := registry.New(registry.Options{Hosts: registryHosts(m), Progress: sink, Cache: st, UserAgent: "cachectl/" + Version, Keychain: g.Keychain})
	if err != nil {
		return nil, err
	}
	return &registry.ImageSource{Client: c, Store: st}, nil
}

// registryHosts are the spec's registry blocks as the client's settings.
func registryHosts(m *spec.Model) map[string]registry.HostSettings {
	hosts := map[string]registry.HostSettings{}
	for _, r := range m.Registries {
		hosts[r.Host] = registry.HostSettings{Mirror: r.Mirror, CAFile: r.CAFile, AuthFile: r.AuthFile, Insecure: r.Insecure, MaxConcurrency: r.MaxConcurrency,
			RequestTimeout: r.Timeout, TotalRetryTime: r.RetryTime}
	}
	return hosts
}

// useStore holds the blob store's lock shared for a command that fetches
// blobs and builds from them (apply, bundle), so that a gc waits for it
// instead of removing blobs the command fetched and has not recorded yet.
func useStore(g *Globals, iox *IO, m *spec.Model) (*store.Store, *store.Lock, error) {
	st, err := openStore(g, m)
	if err != nil {
		return nil, nil, err
	}
	l, err := st.LockShared(iox.Ctx)
	return st, l, err
}

// openStore opens the run's blob store (--store, the spec's, or the
// default): once per run, shared by its sources.
func openStore(g *Globals, m *spec.Model) (*store.Store, error) {
	st, err := cacheroot.OpenStore(storeDir(g, m))
	if err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	return st, nil
}

// builderFor returns the artifact builder of a runtime.
func builderFor(rt spec.Runtime) (providers.Builder, error) { return builders.For(string(rt)) }

func builderInfo(rt spec.Runtime) planner.BuilderInfo {
	b, err := builderFor(rt)
	if err != nil {
		return planner.BuilderInfo{}
	}
	return planner.BuilderInfo{Format: b.Format(), Version: b.Version()}
}

// planFlags are shared by plan and apply.
type planFlags struct {
	Refresh bool     `name:"refresh" default:"true" negatable:"" help:"Resolve every reference against its registry (--refresh=false plans from the index only, offline)."`
	Verify  bool     `name:"verify" help:"Re-hash every managed file (reads every byte)."`
	Target  []string `name:"target" sep:"none" placeholder:"ADDRESS" predictor:"address" help:"Limit to an artifact address, e.g. 'cache.sif[\"alpine:3.20\"]', or to a whole cache, cache.sif: its artifacts and directory changes (repeatable)."`
	Replace []string `name:"replace" sep:"none" placeholder:"ADDRESS" predictor:"address" help:"Force replacement of an artifact (e.g. an imported one) (repeatable)."`
	Source  []string `name:"source" sep:"none" placeholder:"BUNDLE.tar" predictor:"file" help:"Resolve and copy images from this bundle (made by 'cachectl bundle') instead of registries; no network. Repeat to add the base bundles of an incremental one."`
}

// bundles are the bundles to read images from: --source, else the spec's
// cachectl { source }; none means registries.
func (f planFlags) bundles(m *spec.Model) []string {
	if len(f.Source) > 0 {
		return f.Source
	}
	return m.Sources
}

// planSpec loads the spec, opens its image source (unless -refresh=false)
// and plans: the read-only path shared by plan and report.
func planSpec(g *Globals, iox *IO, f planFlags) (*planner.Plan, *spec.Model, error) {
	m, err := loadModel(g, iox)
	if err != nil {
		return nil, nil, err
	}
	var src *source.Multi
	if f.Refresh {
		st, err := openStore(g, m)
		if err != nil {
			return nil, nil, err
		}
		if src, err = newSource(g, iox, st, m, nil, f.bundles(m)); err != nil {
			return nil, nil, err
		}
		defer src.Close()
	}
	p, err := makePlan(g, iox, m, f, src)
	return p, m, err
}

func makePlan(g *Globals, iox *IO, m *spec.Model, f planFlags, src *source.Multi) (*planner.Plan, error) {
	var res source.Resolver
	if src != nil {
		res = src
	}
	start := time.Now()
	p, err := planner.MakePlan(iox.Ctx, m, res, planner.Options{
		Refresh: f.Refresh, Verify: f.Verify, Targets: f.Target, Replace: f.Replace,
		Builder: builderInfo, Version: Version,
	})
	if p != nil {
		g.Logger(iox.Stderr).Info("planned", "refresh", f.Refresh, "verify", f.Verify, "changes", len(p.Changes),
			"add", p.Summary.Add, "change", p.Summary.Change, "destroy", p.Summary.Destroy, "took", time.Since(start).Round(time.Millisecond))
	}
	return p, err
}

// writePlanText renders a plan for people.
func writePlanText(g *Globals, w io.Writer, p *planner.Plan) error {
	return views.RenderText(w, p, views.RenderOptions{Color: g.Color(w)})
}
