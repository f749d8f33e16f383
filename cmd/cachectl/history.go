package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cachectl/cachectl/cmd/cachectl/views"
	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/apply"
	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/planner/history"
	"github.com/cachectl/cachectl/providers/progress"
	"github.com/cachectl/cachectl/spec"
)

// HistoryCmd lists the apply and import history of the caches.
type HistoryCmd struct {
	Cache string `arg:"" optional:"" predictor:"cache" help:"Only this cache."`
	JSON  bool   `name:"json" help:"Print the records as a JSON array (the format of .cachectl/history.jsonl)."`
	Limit int    `name:"limit" short:"n" default:"0" placeholder:"N" help:"Show only the newest N records in total, of all caches (or of the cache named); 0 = all."`
}

// Help shows examples.
func (HistoryCmd) Help() string {
	return `Every apply and import appends one record to each cache root it ran on
(.cachectl/history.jsonl, newest last, the newest 1000 records kept): when,
who (user, sudo user, host, Slurm job), the cachectl version, the planned
changes, the result of each artifact, bytes downloaded and written, and how
long it took. The records of all caches (or of CACHE) are listed as one
timeline, newest last; -n, --limit N keeps the newest N of it.

Examples:
  cachectl history
  cachectl history sif -n 5
  cachectl history --json | jq '.[] | select(.result != "success")'`
}

// Run lists.
func (c *HistoryCmd) Run(g *Globals, iox *IO) error {
	m, err := loadModel(g, iox)
	if err != nil {
		return err
	}
	if c.Cache != "" && m.Cache(c.Cache) == nil {
		return fmt.Errorf("no cache named %q in the spec (caches: %s)", c.Cache, strings.Join(cacheNames(m), ", "))
	}
	var all []history.Record
	for _, cache := range m.Caches {
		if c.Cache != "" && cache.Name != c.Cache {
			continue
		}
		recs, skipped, err := history.ReadRoot(cache.Root)
		if err != nil {
			return fmt.Errorf("cache %q: %w", cache.Name, err)
		}
		if skipped > 0 {
			g.Logger(iox.Stderr).Warn("history lines skipped (not records)", "cache", cache.Name, "lines", skipped)
		}
		var mine []history.Record
		for _, r := range recs {
			if r.Cache == cache.Name {
				mine = append(mine, r)
			}
		}
		all = append(all, mine...)
	}
	// One timeline, newest last; -n keeps the newest N of it.
	sort.SliceStable(all, func(i, j int) bool { return all[i].Start.Before(all[j].Start) })
	if c.Limit > 0 && len(all) > c.Limit {
		all = all[len(all)-c.Limit:]
	}
	if c.JSON {
		if all == nil {
			all = []history.Record{}
		}
		enc := json.NewEncoder(iox.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(all)
	}
	return views.History(iox.Stdout, all)
}

func cacheNames(m *spec.Model) []string {
	var out []string
	for _, c := range m.Caches {
		out = append(out, c.Name)
	}
	return out
}

// lastApplies reads the newest apply record of each root of the plan, for
// report. Roots without history are left out; a history that cannot be
// read is logged and left out.
func lastApplies(g *Globals, iox *IO, p *planner.Plan) map[string]*history.Record {
	out := map[string]*history.Record{}
	for _, r := range p.Roots {
		recs, _, err := history.ReadRoot(r.Root)
		if err != nil {
			g.Logger(iox.Stderr).Warn("history not read", "cache", r.Cache, "err", err)
			continue
		}
		var mine []history.Record
		for _, rec := range recs {
			if rec.Cache == r.Cache {
				mine = append(mine, rec)
			}
		}
		if l := history.Last(mine, "apply"); l != nil {
			out[r.Cache] = l
		}
	}
	return out
}

// applyRecorder gathers what an apply run did, per cache root, from the
// planner's ApplyEvent stream and the registry's download events, and
// appends one history record per root when the run ends (with -target,
// only to the roots it changes).
type applyRecorder struct {
	start    time.Time
	planFile string

	mu        sync.Mutex
	started   map[string]time.Time // address → start
	finished  map[string]time.Time
	failed    map[string]string // address → error
	downloads map[string]map[string]int64
}

func newApplyRecorder(planFile string) *applyRecorder {
	return &applyRecorder{
		start: time.Now().UTC(), planFile: planFile,
		started: map[string]time.Time{}, finished: map[string]time.Time{}, failed: map[string]string{},
		downloads: map[string]map[string]int64{},
	}
}

// events returns next wrapped so that the recorder sees every event.
func (r *applyRecorder) events(next func(apply.Event)) func(apply.Event) {
	return func(e apply.Event) {
		r.mu.Lock()
		switch e.Phase {
		case apply.PhaseStart:
			r.started[e.Address] = e.Time
		case apply.PhaseDone:
			r.finished[e.Address] = e.Time
		case apply.PhaseError:
			r.finished[e.Address] = e.Time
			r.failed[e.Address] = e.Message
		}
		r.mu.Unlock()
		if next != nil {
			next(e)
		}
	}
}

// Event implements progress.Sink: it counts the bytes of finished blob
// downloads by image reference.
func (r *applyRecorder) Event(e progress.Event) {
	if e.Type != progress.Done || e.Ref == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.downloads[e.Ref] == nil {
		r.downloads[e.Ref] = map[string]int64{}
	}
	r.downloads[e.Ref][e.ID] = e.Current
}

// write appends the run's record to the history of every root of the plan
// (p nil: the run failed before it had a plan; then every cache of the
// spec whose root already has a .cachectl directory). Roots without a
// .cachectl directory get no record: history never creates one. Failures
// to write are logged, not returned: the apply's own result stands.
func (r *applyRecorder) write(g *Globals, iox *IO, m *spec.Model, p *planner.Plan, runErr error) {
	end := time.Now().UTC()
	base := history.Record{
		Command: "apply", Start: r.start, End: end, DurationSeconds: end.Sub(r.start).Seconds(),
		CachectlVersion: Version, PlanFile: r.planFile,
	}
	base.SetRunner(iox.Getenv)
	result, msg := history.ResultSuccess, ""
	if runErr != nil {
		result, msg = history.ResultFailed, runErr.Error()
		if iox.Ctx.Err() != nil {
			result = history.ResultInterrupted
		}
	}
	type root struct {
		cache, dir string
		uid        int // the cache's owner (-1: none)
	}
	var roots []root
	if p != nil {
		changed := map[string]bool{}
		for _, ch := range p.Changes {
			changed[ch.Cache] = changed[ch.Cache] || ch.Action.IsChange()
		}
		for _, rp := range p.Roots {
			// With -target, a root the targets leave alone was not applied.
			if len(p.Targets) == 0 || changed[rp.Cache] {
				roots = append(roots, root{rp.Cache, rp.Root, rp.UID})
			}
		}
	} else if m != nil {
		for _, c := range m.Caches {
			roots = append(roots, root{c.Name, c.Root, planner.OwnerUID(c)})
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	log := g.Logger(iox.Stderr)
	for _, rt := range roots {
		rec := base
		rec.Cache, rec.Root, rec.Result = rt.cache, rt.dir, history.ResultSuccess
		blobs := map[string]int64{}
		if p != nil {
			for _, ch := range p.Changes {
				if ch.Cache != rt.cache || !ch.Action.IsChange() {
					continue
				}
				countAction(&rec.Plan, ch.Action)
				a := history.Artifact{Address: ch.Address, Ref: ch.Ref, Action: string(ch.Action), Manifest: ch.Manifest, Result: history.ArtifactNotStarted}
				st, ok := r.started[ch.Address]
				if fin, done := r.finished[ch.Address]; ok && done {
					a.DurationSeconds = fin.Sub(st).Seconds()
					a.Result = history.ArtifactDone
				}
				if e, bad := r.failed[ch.Address]; bad {
					a.Result, a.Error = history.ArtifactFailed, e
				}
				if a.Result == history.ArtifactDone && (ch.Action == planner.ActionCreate || ch.Action == planner.ActionReplace) {
					if fi, err := os.Lstat(ch.Path); err == nil && fi.Mode().IsRegular() {
						a.WrittenBytes = fi.Size()
						rec.WrittenBytes += fi.Size()
					}
				}
				for id, n := range r.downloads[ch.Ref] {
					blobs[id] = n
				}
				if a.Result != history.ArtifactDone {
					rec.Result = history.ResultFailed
				}
				rec.Artifacts = append(rec.Artifacts, a)
			}
		}
		for _, n := range blobs {
			rec.DownloadedBytes += n
		}
		if runErr != nil && (rec.Result != history.ResultSuccess || p == nil || mentionsCache(runErr, rt.cache)) {
			rec.Result, rec.Error = result, rootError(runErr, rt.cache, msg)
		}
		if err := appendRecord(rt.dir, rt.uid, rec); err != nil {
			log.Warn("history not written", "cache", rt.cache, "err", err)
		}
	}
}

// recordImport appends an import (adopt) to the history of the cache's
// root: e is the placed entry, err the import's error.
func recordImport(g *Globals, iox *IO, c *spec.Cache, address, ref string, start time.Time, e *cacheroot.Entry, err error) {
	end := time.Now().UTC()
	rec := history.Record{
		Command: "import", Cache: c.Name, Root: c.Root, Start: start, End: end, DurationSeconds: end.Sub(start).Seconds(),
		CachectlVersion: Version, Plan: history.Summary{Add: 1}, Result: history.ResultSuccess,
	}
	rec.SetRunner(iox.Getenv)
	a := history.Artifact{Address: address, Ref: ref, Action: string(planner.ActionCreate), Result: history.ArtifactDone, DurationSeconds: rec.DurationSeconds}
	if err != nil {
		rec.Result, rec.Error = history.ResultFailed, err.Error()
		if iox.Ctx.Err() != nil {
			rec.Result = history.ResultInterrupted
		}
		a.Result, a.Error = history.ArtifactFailed, err.Error()
	} else if e != nil {
		a.WrittenBytes, rec.WrittenBytes = e.Size, e.Size
	}
	rec.Artifacts = []history.Artifact{a}
	if err := appendRecord(c.Root, planner.OwnerUID(c), rec); err != nil {
		g.Logger(iox.Stderr).Warn("history not written", "cache", c.Name, "err", err)
	}
}

// appendRecord appends rec to the history of root when root has a
// .cachectl directory, and its path is one only root, the runner or the
// cache's owner (uid) could point elsewhere (a run that Begin refused for
// that reason must not write there either).
func appendRecord(root string, uid int, rec history.Record) error {
	if err := cacheroot.CheckPlace("cache root", root, cacheroot.PathCheck{Owners: []int{uid}, Existing: true}); errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	d, err := history.OpenDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer d.Close()
	return history.Append(d, rec)
}

// countAction adds one planned change to s, counted as the plan counts it
// (planner.Summary: a replace adds and destroys).
func countAction(s *history.Summary, a planner.Action) {
	var c planner.Summary
	c.Count(a)
	s.Add += c.Add
	s.Change += c.Change
	s.Destroy += c.Destroy
}

func mentionsCache(err error, cache string) bool {
	return strings.Contains(err.Error(), fmt.Sprintf("cache %q:", cache))
}

// rootError picks the lines of a (multi-)error that concern one cache,
// else the whole message.
func rootError(err error, cache, all string) string {
	var mine []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if strings.Contains(l, fmt.Sprintf("cache %q:", cache)) || strings.Contains(l, "cache."+cache+"[") {
			mine = append(mine, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "* ")))
		}
	}
	if len(mine) > 0 {
		return strings.Join(mine, "; ")
	}
	return all
}
