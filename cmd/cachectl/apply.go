package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/cachectl/cachectl/cmd/cachectl/views"
	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/apply"
	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/providers/progress"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/spec"
)

// ApplyCmd makes the caches match the spec (or a saved plan).
type ApplyCmd struct {
	planFlags
	sourceFlags
	PlanFile         string        `arg:"" optional:"" name:"planfile" predictor:"file" help:"A plan saved with 'cachectl plan -out' to apply exactly."`
	AutoApprove      bool          `name:"auto-approve" help:"Do not ask for confirmation."`
	Parallelism      int           `name:"parallelism" default:"4" help:"Artifacts pulled at once (0: the default, 4)."`
	BuildParallelism int           `name:"build-parallelism" default:"0" help:"Conversions (mksquashfs) at once (0 = one per 4 CPUs, at least 1; each uses its share of the CPUs)."`
	LockTimeout      time.Duration `name:"lock-timeout" default:"0s" help:"How long to wait for another apply holding a cache root's lock."`
	Executor         string        `name:"executor" enum:",local,slurm" default:"" help:"Where the conversions run: local (this host) or slurm (one sbatch array job on the cluster; see the spec's cachectl { slurm { } }). Default: the spec's cachectl { executor }, else local."`

	only string // narrow the spec to this cache (the compat commands)
}

// Help shows examples.
func (ApplyCmd) Help() string {
	return `Examples:
  cachectl apply                           # plan, show, ask for "yes", apply
  cachectl apply -auto-approve             # unattended
  cachectl plan -out cache.plan && cachectl apply cache.plan
  cachectl apply -target 'cache.sif["alpine:3.20"]' -lock-timeout 10m`
}

// applyRun is what an apply run got to, for its history record.
type applyRun struct {
	m *spec.Model
	p *planner.Plan
	// record is false when nothing was attempted (no spec, or the
	// confirmation was declined).
	record bool
}

// Run applies, then appends the run to the history of each cache root.
func (c *ApplyCmd) Run(g *Globals, iox *IO) error {
	rec := newApplyRecorder(c.PlanFile)
	var run applyRun
	err := c.run(g, iox, rec, &run)
	if run.record {
		rec.write(g, iox, run.m, run.p, err)
	}
	return err
}

func (c *ApplyCmd) run(g *Globals, iox *IO, rec *applyRecorder, run *applyRun) error {
	if c.Parallelism < 0 || c.BuildParallelism < 0 {
		return fmt.Errorf("--parallelism and --build-parallelism cannot be negative (0 takes the default), not %d and %d", c.Parallelism, c.BuildParallelism)
	}
	m, err := loadModel(g, iox)
	if err != nil {
		return err
	}
	if c.only != "" {
		m = narrowModel(m, c.only)
	}
	run.m, run.record = m, true
	var events func(apply.Event)
	executor, err := newExecutor(g, m, executorName(c.Executor, m), &events)
	if err != nil {
		return err
	}
	blobs, storeLock, err := useStore(g, iox, m)
	if err != nil {
		return err
	}
	defer storeLock.Release()
	sink := c.sink(g, iox)
	defer progress.Close(sink)
	src, err := newSource(g, iox, blobs, m, progress.Multi(sink, rec), c.bundles(m))
	if err != nil {
		return err
	}
	defer src.Close()
	var (
		p       *planner.Plan
		locks   map[string]*cacheroot.Session
		goAhead bool // the held roots stay (else those LockRoots created go)
	)
	if c.PlanFile != "" {
		if len(c.Target) > 0 || len(c.Replace) > 0 {
			return errors.New("-target and -replace go with plan, not with a saved plan file")
		}
		if p, err = planner.ReadPlanFile(c.PlanFile); err != nil {
			return err
		}
		run.p = p
		if err := checkPlanMatchesSpec(p, m.Files); err != nil {
			return err
		}
	} else {
		// Lock first, then plan: the plan cannot go stale before it is applied.
		held, err := apply.LockRoots(iox.Ctx, m, c.LockTimeout)
		if err != nil {
			return err
		}
		// Roots this run created go again unless the apply goes ahead.
		defer func() {
			if goAhead {
				apply.ReleaseAll(held)
			} else {
				apply.AbandonAll(held)
			}
		}()
		locks = held
		var res *source.Multi
		if c.Refresh {
			res = src
		}
		if p, err = makePlan(g, iox, m, c.planFlags, res); err != nil {
			if iox.Ctx.Err() != nil {
				fmt.Fprintln(iox.Stdout, "\nApply interrupted while planning.")
				return errors.New("interrupted: nothing was changed; run apply again to finish")
			}
			return fmt.Errorf("plan: %w", err)
		}
		run.p = p
		if err := writePlanText(g, iox.Stdout, p); err != nil {
			return err
		}
		// Change times the plan's scans found moved on intact files are
		// recorded once the apply goes ahead (or has nothing to do).
		recordChangeTimes := func() {
			if err := apply.RecordChangeTimes(held, p); err != nil {
				fmt.Fprintf(iox.Stderr, "warning: %v\n", err)
			}
		}
		if !p.HasChanges() {
			goAhead = true // the spec's roots exist, even empty ones
			recordChangeTimes()
			return nil
		}
		if !c.AutoApprove {
			ok, err := confirm(iox)
			if err != nil {
				run.record = false
				return err
			}
			if !ok {
				run.record = false
				fmt.Fprintln(iox.Stdout, "\nApply cancelled.")
				return &exitError{code: 1}
			}
		}
		goAhead = true
		recordChangeTimes()
	}
	if !p.HasChanges() {
		fmt.Fprintln(iox.Stdout, "No changes. The cache matches the spec.")
		return nil
	}
	// Fetch (and so verify every blob of) the images of a saved plan, of
	// bundles and of local sources before anything is built: a damaged
	// bundle or archive places nothing. Registry images of a plan made
	// now are pulled as their builds need them.
	var prefetchOnly func(string) bool
	if c.PlanFile == "" && len(c.bundles(m)) == 0 {
		prefetchOnly = spec.IsLocalRef
	}
	builds := progress.NewBuilds(sink, 0)
	events = rec.events(buildEvents(builds, c.eventPrinter(g, iox, sink)))
	res, err := apply.Run(iox.Ctx, p, apply.Deps{
		Resolver: src, Fetcher: src, Builder: builderFor, Events: events, BuildProgress: builds.Callback, Executor: executor,
	}, apply.Options{
		Parallelism: c.Parallelism, BuildParallelism: c.BuildParallelism, LockTimeout: c.LockTimeout, Held: locks,
		Spec: m, BuilderInfo: builderInfo, Prefetch: true, PrefetchOnly: prefetchOnly,
	})
	progress.Close(sink)
	st := src.Stats()
	fetched := "Downloaded"
	if len(c.bundles(m)) > 0 {
		fetched = "Copied from the bundle"
	}
	if errors.Is(err, apply.ErrRefused) {
		goAhead = false
		return fmt.Errorf("apply: %w", err) // nothing was attempted: no summary
	}
	headline := "Apply complete!"
	switch {
	case err != nil && iox.Ctx.Err() != nil:
		headline = "Apply interrupted."
	case err != nil:
		headline = "Apply finished with errors."
	}
	fmt.Fprintf(iox.Stdout, "\n%s Resources: %d added, %d changed, %d destroyed. %s %s (%d blobs; %d already in the store).\n",
		headline, res.Added, res.Changed, res.Destroyed, fetched, planner.HumanBytes(st.BytesDownloaded), st.BlobsDownloaded, st.BlobsCached)
	if err != nil && iox.Ctx.Err() != nil {
		n := 1
		var me *multierror.Error
		if errors.As(err, &me) {
			n = len(me.Errors)
		}
		return fmt.Errorf("interrupted: %d change(s) not made; nothing partial was left at a final path; run apply again to finish", n)
	}
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	return nil
}

// confirm asks for "yes"; without a terminal it refuses.
func confirm(iox *IO) (bool, error) {
	f, ok := iox.Stdin.(*os.File)
	if !ok || !IsTerminalFile(f) {
		if v := iox.Getenv("CACHECTL_CONFIRM_STDIN"); v == "" || v == "0" || strings.EqualFold(v, "false") {
			return false, errors.New("apply needs confirmation but standard input is not a terminal; review the plan and run with -auto-approve, or save it with 'plan -out FILE' and run 'apply FILE'")
		}
	}
	fmt.Fprint(iox.Stdout, "\nDo you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ")
	line, err := bufio.NewReader(iox.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return false, nil
	}
	return strings.TrimSpace(line) == "yes", nil
}

// eventPrinter prints apply progress: plain lines, or JSON with --progress=json.
func (c *ApplyCmd) eventPrinter(g *Globals, iox *IO, sink progress.Sink) func(apply.Event) {
	var mu sync.Mutex
	log := g.Logger(iox.Stderr)
	switch c.Progress {
	case "none":
		return nil
	case "json":
		enc := json.NewEncoder(iox.Stderr)
		return func(e apply.Event) {
			mu.Lock()
			defer mu.Unlock()
			enc.Encode(struct {
				Type string `json:"type"`
				apply.Event
			}{"apply", e})
		}
	}
	return func(e apply.Event) {
		msg := views.ApplyLine(e)
		if msg == "" {
			log.Debug("apply", "address", e.Address, "phase", e.Phase, "detail", e.Message)
			return
		}
		mu.Lock()
		progress.Println(sink, iox.Stdout, msg) // above the bars when they are drawn
		mu.Unlock()
	}
}

// buildEvents turns the apply phases of each change into the begin and end
// of its build progress (bars, lines, JSON events), then passes them on.
func buildEvents(b *progress.Builds, next func(apply.Event)) func(apply.Event) {
	return func(e apply.Event) {
		switch e.Phase {
		case apply.PhaseBuild:
			b.Begin(e.Address, e.Message)
		case apply.PhasePlace:
			b.End(e.Address, "")
		case apply.PhaseError:
			b.End(e.Address, e.Message)
		}
		if next != nil {
			next(e)
		}
	}
}

// checkPlanMatchesSpec refuses a plan made from other spec files.
func checkPlanMatchesSpec(p *planner.Plan, files []string) error {
	if len(p.SpecFiles) == 0 {
		return nil
	}
	want := map[string]bool{}
	for _, f := range files {
		want[f] = true
	}
	for _, f := range p.SpecFiles {
		if !want[f] {
			return fmt.Errorf("the plan was made from %s, not from the spec given now (%s)", strings.Join(p.SpecFiles, ", "), strings.Join(files, ", "))
		}
	}
	return nil
}
