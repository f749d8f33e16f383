// Package apply carries out a plan: it locks and checks every cache root
// the plan changes, checks the plan against the spec, fetches images
// through a source.Fetcher (with Options.Prefetch, before anything
// changes), runs the builds through an Executor and places the artifacts
// with the cache root's placement protocol (planner/cacheroot). It
// reports progress as typed Events.
//
// With a source.StreamFetcher (registries) and the Local executor, a build
// starts as soon as the image's manifest and config are in the store: the
// layers download newest first while the builders read them (rootfs.Stream),
// and the artifact is finished and placed only once every blob is in and
// verified. The SIF and .sqsh of one image read the layers together, in one
// pass, and hold one build slot between them.
package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/hashicorp/go-multierror"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/rootfs"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/providers/store"
	"github.com/cachectl/cachectl/spec"
)

// Deps are the collaborators of Run.
type Deps struct {
	// Resolver resolves changes whose digest the plan left open.
	Resolver source.Resolver
	Fetcher  source.Fetcher
	// Builder returns the builder of a runtime.
	Builder func(spec.Runtime) (providers.Builder, error)
	// Executor runs the builds (nil: Local, in this process).
	Executor Executor
	// Events receives progress (may be nil).
	Events func(Event)
	// BuildProgress, when not nil, gives the build of the change at an
	// address its providers.BuildRequest.Progress callback.
	BuildProgress func(address string) func(written, total int64)
}

// Options tune Run.
type Options struct {
	// Parallelism bounds artifacts pulled at once (default 4).
	Parallelism int
	// BuildParallelism bounds conversions at once (default: 1 per 4 CPUs, at least 1).
	BuildParallelism int
	// LockTimeout is how long to wait for another apply on the same root.
	LockTimeout time.Duration
	// Held are sessions the caller already holds (LockRoots), by root;
	// Run does not take or release those.
	Held map[string]*cacheroot.Session
	// Spec is the loaded spec. Run checks the plan against it before it
	// changes anything (planner.CheckPlanSpec, planner.CheckPlanChanges): a
	// plan can only do what the spec allows.
	Spec *spec.Model
	// BuilderInfo returns the builder identity of a runtime (for that check).
	BuilderInfo func(spec.Runtime) planner.BuilderInfo
	// Prefetch fetches every image the plan builds before anything is
	// changed, so that a plan naming an image that cannot be had changes
	// nothing (apply of a saved plan, images from bundles or local
	// sources, whose every blob is so verified before a build).
	Prefetch bool
	// PrefetchOnly, when not nil, limits Prefetch to the images whose
	// reference it accepts; the others are fetched as their builds need
	// them (cachectl: the local sources of a plan whose other images come
	// from registries).
	PrefetchOnly func(ref string) bool
}

// Result counts what Run did.
type Result struct {
	Added, Changed, Destroyed int
}

// count adds one change done (counted as the plan's Summary counts it).
func (r *Result) count(a planner.Action) {
	var s planner.Summary
	s.Count(a)
	r.Added += s.Add
	r.Changed += s.Change
	r.Destroyed += s.Destroy
}

type applier struct {
	deps     Deps
	opts     Options
	pullSem  chan struct{}
	buildSem chan struct{}
	procs    int
	batch    BatchExecutor // the executor, when it batches (nil otherwise)

	mu      sync.Mutex
	pulls   map[string]*pullCall
	streams map[string]*streamCall
	result  Result
	resMu   sync.Mutex
}

// streamCall is the builds of one image by StreamBuilders (the SIF and the
// .sqsh): they read the layers once, together (rootfs.Shared), so they run
// at the same time and hold one build slot between them.
type streamCall struct {
	users  int // builds of the group (planned)
	shared *rootfs.Shared
	// holders is how many of the group's builds hold its slot now; taken
	// is closed when the group gets one.
	holders int
	taken   chan struct{}
}

type pullCall struct {
	once sync.Once
	img  v1.Image
	// wait is the outcome of a streamed fetch (source.StreamFetcher): img
	// can be read at once, its blobs are all local once wait returned nil.
	wait func() error
	err  error
}

// Run carries out the plan's changes. Every root the plan changes is
// locked (or its held session used), scanned and checked against the
// plan's fingerprint (a changed root makes the plan stale, and then
// nothing is done anywhere); then the whole plan is checked against the spec (see
// Options.Spec) and refused, before anything changes, when it asks
// for anything else. Each root's changes run in parallel; one failure does
// not stop the others; all errors are returned together.
func Run(ctx context.Context, p *planner.Plan, deps Deps, opts Options) (Result, error) {
	if opts.Parallelism <= 0 {
		opts.Parallelism = 4
	}
	if opts.BuildParallelism <= 0 {
		opts.BuildParallelism = max(1, runtime.NumCPU()/4)
	}
	if opts.Spec == nil {
		return Result{}, fmt.Errorf("apply: no spec to check the plan against")
	}
	if err := planner.CheckPlanSpec(p, opts.Spec); err != nil {
		return Result{}, refused(err)
	}
	if deps.Executor == nil {
		deps.Executor = Local{}
	}
	a := &applier{
		deps: deps, opts: opts,
		pullSem:  make(chan struct{}, opts.Parallelism),
		buildSem: make(chan struct{}, opts.BuildParallelism),
		procs:    max(1, runtime.NumCPU()/opts.BuildParallelism),
		pulls:    map[string]*pullCall{},
		streams:  map[string]*streamCall{},
	}
	if b, ok := deps.Executor.(BatchExecutor); ok {
		a.batch = b // builds elsewhere: no shared streams here
	} else {
		a.planStreams(p)
	}
	byCache := map[string][]planner.Change{}
	for _, ch := range p.Changes {
		if ch.Action.IsChange() {
			byCache[ch.Cache] = append(byCache[ch.Cache], ch)
		}
	}
	jobs, errs := a.openRoots(ctx, p, byCache)
	defer func() {
		for _, j := range jobs {
			if j.own {
				j.sess.Release()
			}
		}
	}()
	if err := errs.ErrorOrNil(); err != nil {
		// A plan is one change set: when a root cannot be opened or
		// changed since the plan was made, nothing of it is applied.
		errs.ErrorFormat = planner.ListErrors
		return a.result, refused(err)
	}
	if err := a.checkChanges(p, jobs); err != nil {
		return a.result, refused(err)
	}
	if opts.Prefetch {
		if err := a.prefetch(ctx, jobs); err != nil {
			return a.result, refused(fmt.Errorf("the plan names an image that cannot be fetched: %w", err))
		}
	}
	if a.batch != nil {
		n := 0
		for _, j := range jobs {
			for _, ch := range j.changes {
				if isBuild(ch.Action) {
					n++
				}
			}
		}
		a.batch.Expect(n)
	}
	var (
		wg  sync.WaitGroup
		emu sync.Mutex
	)
	for _, job := range jobs {
		wg.Add(1)
		go func(job *rootJob) {
			defer wg.Done()
			rerrs := a.applyRoot(ctx, job)
			emu.Lock()
			errs = multierror.Append(errs, rerrs...)
			emu.Unlock()
		}(job)
	}
	wg.Wait()
	if err := errs.ErrorOrNil(); err != nil {
		errs.ErrorFormat = planner.ListErrors
		return a.result, errs
	}
	return a.result, nil
}

// ErrRefused is wrapped by the errors of a plan that Run refused before it
// changed anything (a stale root, a plan the spec does not allow, an image
// that cannot be fetched with Prefetch).
var ErrRefused = errors.New("nothing was changed")

func refused(err error) error { return fmt.Errorf("%w: %w", ErrRefused, err) }

// planStreams finds the manifests that more than one StreamBuilder needs
// (an image's SIF and .sqsh), so that their layers are read once, in one
// shared stream.
func (a *applier) planStreams(p *planner.Plan) {
	for _, ch := range p.Changes {
		if ch.Manifest == "" || (ch.Action != planner.ActionCreate && ch.Action != planner.ActionReplace) {
			continue
		}
		b, err := a.deps.Builder(spec.Runtime(ch.Runtime))
		if err != nil {
			continue
		}
		if _, ok := b.(providers.StreamBuilder); ok {
			if a.streams[ch.Manifest] == nil {
				a.streams[ch.Manifest] = &streamCall{}
			}
			a.streams[ch.Manifest].users++
		}
	}
	for m, s := range a.streams {
		if s.users < 2 {
			delete(a.streams, m) // one build: it streams by itself
		}
	}
}

// openRoots locks (or takes the held session of) every root with changes,
// in root order, scans it and checks the plan's fingerprint. A root that
// cannot be opened or whose plan is stale is left out with an error.
func (a *applier) openRoots(ctx context.Context, p *planner.Plan, byCache map[string][]planner.Change) ([]*rootJob, *multierror.Error) {
	var errs *multierror.Error
	roots := append([]planner.RootPlan(nil), p.Roots...)
	sort.Slice(roots, func(i, j int) bool { return roots[i].Root < roots[j].Root })
	var jobs []*rootJob
	for _, rp := range roots {
		changes := byCache[rp.Cache]
		if len(changes) == 0 {
			continue
		}
		fail := func(err error) { errs = multierror.Append(errs, fmt.Errorf("cache %q: %w", rp.Cache, err)) }
		c := a.opts.Spec.Cache(rp.Cache)
		job := &rootJob{rp: rp, cache: c, changes: changes, sess: a.opts.Held[rp.Root]}
		if job.sess == nil {
			sess, err := cacheroot.Begin(ctx, rp.Root, cacheroot.Settings{Runtime: c.Runtime, DirMode: c.DirMode, UID: rp.UID, GID: rp.GID}, a.opts.LockTimeout)
			if err != nil {
				fail(err)
				continue
			}
			job.sess, job.own = sess, true
		}
		st, err := job.sess.Scan(cacheroot.ScanOptions{SkipUnmanaged: true, Names: c.ArtifactNames()})
		if err != nil {
			fail(err)
		} else if st.Fingerprint != rp.Fingerprint {
			fail(fmt.Errorf("plan is stale: %s changed since the plan was made; run \"cachectl plan\" again", rp.Root))
		} else {
			job.state = st
			jobs = append(jobs, job)
			continue
		}
		if job.own {
			job.sess.Release()
		}
	}
	return jobs, errs
}

// checkChanges diffs the spec against the roots as found under the locks,
// with the plan's digests, and refuses the whole plan when its changes are
// not exactly those (planner.CheckPlanChanges).
func (a *applier) checkChanges(p *planner.Plan, jobs []*rootJob) error {
	var inputs []planner.CacheInput
	for _, j := range jobs {
		ci := planner.CacheInput{Cache: j.cache, State: j.state, UID: j.rp.UID, GID: j.rp.GID}
		if a.opts.BuilderInfo != nil {
			ci.Builder = a.opts.BuilderInfo(j.cache.Runtime)
		}
		inputs = append(inputs, ci)
	}
	return planner.CheckPlanChanges(p, inputs)
}

// prefetch fetches every image the open roots' changes build (those
// PrefetchOnly accepts), several at a time, and returns every failure
// together, each naming its artifact (sorted).
func (a *applier) prefetch(ctx context.Context, jobs []*rootJob) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, j := range jobs {
		for i := range j.changes {
			ch := &j.changes[i]
			if ch.Action != planner.ActionCreate && ch.Action != planner.ActionReplace {
				continue
			}
			if a.opts.PrefetchOnly != nil && !a.opts.PrefetchOnly(ch.Ref) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := a.fetch(ctx, ch); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: pull %s: %w", ch.Address, ch.Ref, err))
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

func (a *applier) event(ch planner.Change, phase Phase, msg string) {
	if a.deps.Events != nil {
		a.deps.Events(Event{Time: time.Now(), Address: ch.Address, Action: ch.Action, Phase: phase, Message: msg})
	}
}

// rootJob is the per-root state during apply.
type rootJob struct {
	rp      planner.RootPlan
	cache   *spec.Cache
	changes []planner.Change
	sess    *cacheroot.Session
	own     bool // the session was opened by Apply
	state   *cacheroot.RootState
}

func (a *applier) applyRoot(ctx context.Context, job *rootJob) []error {
	var (
		wg   sync.WaitGroup
		emu  sync.Mutex
		errs []error
	)
	for _, ch := range job.changes {
		wg.Add(1)
		go func(ch planner.Change) {
			defer wg.Done()
			a.event(ch, PhaseStart, "")
			err := a.applyChange(ctx, job, ch)
			if err != nil {
				a.event(ch, PhaseError, err.Error())
				emu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", ch.Address, err))
				emu.Unlock()
				return
			}
			a.event(ch, PhaseDone, "")
			a.resMu.Lock()
			a.result.count(ch.Action)
			a.resMu.Unlock()
		}(ch)
	}
	wg.Wait()
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errs
}

// isBuild reports whether an action builds an artifact.
func isBuild(a planner.Action) bool {
	return a == planner.ActionCreate || a == planner.ActionReplace
}

func (a *applier) applyChange(ctx context.Context, job *rootJob, ch planner.Change) error {
	if isBuild(ch.Action) {
		return a.build(ctx, job, ch)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	switch ch.Action {
	case planner.ActionUpdate:
		return a.update(job, ch)
	case planner.ActionDelete:
		return a.delete(job, ch)
	}
	return nil
}

// fetch fetches the image of ch, once per manifest, and returns it
// complete (every blob local and verified).
func (a *applier) fetch(ctx context.Context, ch *planner.Change) (v1.Image, error) {
	img, wait, err := a.fetchStream(ctx, ch)
	if err != nil {
		return nil, err
	}
	if err := wait(); err != nil {
		return nil, err
	}
	return img, nil
}

// fetchStream fetches the image of ch, once per manifest; with a
// source.StreamFetcher it returns as soon as the image can be read, while
// its layers download (wait says how the fetch ended).
func (a *applier) fetchStream(ctx context.Context, ch *planner.Change) (v1.Image, func() error, error) {
	if ch.Manifest == "" {
		if a.deps.Resolver == nil {
			return nil, nil, fmt.Errorf("no digest in the plan and no source to resolve %s", ch.Ref)
		}
		plat, err := v1.ParsePlatform(ch.Platform)
		if err != nil {
			return nil, nil, err
		}
		res, err := a.deps.Resolver.ResolveAll(ctx, []source.ResolveRequest{{Ref: ch.Ref, Platform: *plat}})
		if err != nil {
			return nil, nil, err
		}
		r, ok := res[source.ResolveKey{Ref: ch.Ref, Platform: ch.Platform}]
		if !ok {
			return nil, nil, fmt.Errorf("could not resolve %s", ch.Ref)
		}
		ch.Digest, ch.Manifest = r.Digest, r.Manifest
	}
	a.mu.Lock()
	c, ok := a.pulls[ch.Manifest]
	if !ok {
		c = &pullCall{}
		a.pulls[ch.Manifest] = c
	}
	a.mu.Unlock()
	c.once.Do(func() {
		select {
		case a.pullSem <- struct{}{}:
		case <-ctx.Done():
			c.err = ctx.Err()
			return
		}
		a.event(*ch, PhasePull, ch.Manifest)
		sf, ok := a.deps.Fetcher.(source.StreamFetcher)
		if !ok {
			defer func() { <-a.pullSem }()
			c.img, c.err = a.deps.Fetcher.Fetch(ctx, ch.Ref, ch.Manifest)
			c.wait = func() error { return nil }
			return
		}
		var wait func() error
		c.img, wait, c.err = sf.FetchStream(ctx, ch.Ref, ch.Manifest)
		if c.err != nil {
			<-a.pullSem
			return
		}
		// The pull slot is held until the layers are in.
		var once sync.Once
		c.wait = func() error {
			err := wait()
			once.Do(func() { <-a.pullSem })
			return err
		}
		go c.wait()
	})
	if c.err != nil {
		return nil, nil, c.err
	}
	return c.img, c.wait, nil
}

// streamFor returns the stream group of manifest and a place in its shared
// stream (nil, nil when the image has one stream build). Every build of
// the group takes its place first, and gives it up (Leave) unless its
// builder wrote through it.
func (a *applier) streamFor(manifest string) (*streamCall, *rootfs.Member) {
	a.mu.Lock()
	defer a.mu.Unlock()
	g := a.streams[manifest]
	if g == nil {
		return nil, nil
	}
	if g.shared == nil {
		g.shared = rootfs.NewShared(rootfs.Options{}, g.users)
	}
	return g, g.shared.Member()
}

// acquireBuild takes a build slot; the builds of a stream group share one
// (they must run together): a build of the group waiting for a slot joins
// the group as soon as another of its builds got one.
func (a *applier) acquireBuild(ctx context.Context, g *streamCall) error {
	for {
		var taken chan struct{}
		if g != nil {
			a.mu.Lock()
			if g.holders > 0 {
				g.holders++
				a.mu.Unlock()
				return nil
			}
			if g.taken == nil {
				g.taken = make(chan struct{})
			}
			taken = g.taken
			a.mu.Unlock()
		}
		select {
		case a.buildSem <- struct{}{}:
			if g == nil {
				return nil
			}
			a.mu.Lock()
			g.holders++
			if g.holders > 1 {
				<-a.buildSem // the group had one already
			} else {
				close(g.taken)
				g.taken = nil
			}
			a.mu.Unlock()
			return nil
		case <-taken:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// releaseBuild gives back what acquireBuild took.
func (a *applier) releaseBuild(g *streamCall) {
	if g != nil {
		a.mu.Lock()
		g.holders--
		last := g.holders == 0
		a.mu.Unlock()
		if !last {
			return
		}
	}
	<-a.buildSem
}

func (a *applier) build(ctx context.Context, job *rootJob, ch planner.Change) error {
	if a.batch != nil {
		handed := false
		defer func() {
			if !handed {
				a.batch.Skip()
			}
		}()
		return a.buildWith(ctx, job, ch, func() { handed = true })
	}
	return a.buildWith(ctx, job, ch, func() {})
}

// buildWith builds, finishes and places one artifact; handing is called
// just before the executor gets the build.
func (a *applier) buildWith(ctx context.Context, job *rootJob, ch planner.Change, handing func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := a.deps.Builder(spec.Runtime(ch.Runtime))
	if err != nil {
		return err
	}
	var group *streamCall
	var member *rootfs.Member
	if _, ok := b.(providers.StreamBuilder); ok && a.batch == nil && ch.Manifest != "" {
		if group, member = a.streamFor(ch.Manifest); member != nil {
			defer member.Leave(ctx)
		}
	}
	img, wait, err := a.fetchStream(ctx, &ch)
	if err != nil {
		return fmt.Errorf("pull %s: %w", ch.Ref, err)
	}
	if _, streams := b.(providers.StreamBuilder); a.batch != nil || !streams {
		// Built elsewhere, or by a builder that reads each blob whole (the
		// OCI archive): every blob must be in the store first, so that the
		// build does not hold a build slot while the image downloads.
		if err := wait(); err != nil {
			return fmt.Errorf("pull %s: %w", ch.Ref, err)
		}
	}
	plat, err := v1.ParsePlatform(ch.Platform)
	if err != nil {
		return err
	}
	work, err := job.sess.WorkDir()
	if err != nil {
		return err
	}
	defer work.Remove()
	const artifact = "artifact"
	out := filepath.Join(work.Path(), artifact)
	if a.batch == nil {
		if err := a.acquireBuild(ctx, group); err != nil {
			return err
		}
	}
	a.event(ch, PhaseBuild, b.Format())
	req := providers.BuildRequest{
		Ref: ch.Ref, NormalizedName: planner.ImageName(ch.Ref, ch.Name), Digest: ch.Digest, Platform: *plat,
		Compression: ch.Compression, Processors: a.procs, TempDir: work.Path(),
	}
	if a.deps.BuildProgress != nil {
		req.Progress = a.deps.BuildProgress(ch.Address)
	}
	bj := BuildJob{Change: ch, Image: img, Builder: b, Request: req, Out: out,
		Root: job.sess.Root.Path(), WorkDir: work.Name(), Result: &BuildResult{}}
	bj.Member = member
	handing()
	err = a.deps.Executor.Build(ctx, bj)
	if a.batch == nil {
		a.releaseBuild(group)
	}
	if werr := wait(); werr != nil {
		return fmt.Errorf("pull %s: %w", ch.Ref, werr)
	}
	if err != nil && ctx.Err() == nil && a.batch == nil && (errors.Is(err, store.ErrFollowFailed) || errors.Is(err, store.ErrNotStarted)) {
		// The pull ended well, yet the build that read the layers as they
		// arrived read a download that failed (a blob downloaded again
		// after a mismatch, or from the registry after its mirror
		// failed): build again from the complete image, alone. A layer
		// that is itself bad fails the same way every time: not again.
		os.Remove(out)
		if img, err = a.fetch(ctx, &ch); err != nil {
			return fmt.Errorf("pull %s: %w", ch.Ref, err)
		}
		bj.Image, bj.Member = img, nil
		if err = a.acquireBuild(ctx, nil); err != nil {
			return err
		}
		err = a.deps.Executor.Build(ctx, bj)
		a.releaseBuild(nil)
	}
	if err != nil {
		return fmt.Errorf("build %s: %w", b.Format(), err)
	}
	fin, err := work.Finish(artifact, ch.Mode, ch.UID, ch.GID)
	if err != nil {
		return err
	}
	if want := bj.Result.SHA256; want != "" && want != fin.SHA256 {
		return fmt.Errorf("the built file's sha256 is %s, not %s as its build recorded; not placed", fin.SHA256, want)
	}
	e := fin.Entry(cacheroot.Entry{
		Name: ch.Name, Ref: ch.Ref, Digest: ch.Digest, Manifest: ch.Manifest, Platform: ch.Platform,
		Builder: b.Format(), BuilderVersion: b.Version(), Placed: time.Now().UTC(),
	})
	a.event(ch, PhasePlace, ch.Path)
	return job.sess.Place(work, artifact, e)
}

func (a *applier) update(job *rootJob, ch planner.Change) error {
	if ch.Kind == planner.KindDirectory {
		return job.sess.UpdateDir(ch.Name, ch.Mode, ch.UID, ch.GID)
	}
	return job.sess.Update(ch.Name, ch.Mode, ch.UID, ch.GID)
}

// delete removes a file the index says cachectl placed (see
// cacheroot.Session.Delete).
func (a *applier) delete(job *rootJob, ch planner.Change) error {
	return job.sess.Delete(ch.Name)
}

// LockRoots opens and locks every cache root of the model (creating the
// roots that do not exist yet, with their directory mode and owner), in a
// fixed order so that two processes cannot deadlock, and cleans what
// interrupted runs left. It first checks that this process may give the
// caches' owner and group, so that a run that may not creates nothing.
// Release the sessions with ReleaseAll, or AbandonAll when the apply did
// not go ahead. Apply without a saved plan locks before planning,
// so its plan cannot go stale. Release the sessions with ReleaseAll.
func LockRoots(ctx context.Context, m *spec.Model, timeout time.Duration) (map[string]*cacheroot.Session, error) {
	caches := append([]*spec.Cache(nil), m.Caches...)
	sort.Slice(caches, func(i, j int) bool { return caches[i].Root < caches[j].Root })
	held := map[string]*cacheroot.Session{}
	for _, c := range caches {
		uid, gid, err := planner.LookupOwner(c.Owner, c.Group)
		if err == nil {
			err = planner.CanOwn(uid, gid, c.Owner, c.Group)
		}
		if err != nil {
			ReleaseAll(held)
			return nil, fmt.Errorf("cache %q: %w", c.Name, err)
		}
		s, err := cacheroot.Begin(ctx, c.Root, cacheroot.Settings{Runtime: c.Runtime, DirMode: c.DirMode, UID: uid, GID: gid}, timeout)
		if err != nil {
			ReleaseAll(held)
			return nil, fmt.Errorf("cache %q: %w", c.Name, err)
		}
		held[c.Root] = s
	}
	return held, nil
}

// RecordChangeTimes records in the held roots' indexes the change times of
// the files that the plan's scans, made under those locks, hashed because
// only their change time had moved and found intact (planner.RootPlan.
// Rehashed): the next plans need not hash them again.
func RecordChangeTimes(held map[string]*cacheroot.Session, p *planner.Plan) error {
	var errs []error
	for _, rp := range p.Roots {
		if s := held[rp.Root]; s != nil {
			if err := s.RecordChangeTimes(rp.Rehashed); err != nil {
				errs = append(errs, fmt.Errorf("cache %q: recording change times: %w", rp.Cache, err))
			}
		}
	}
	return errors.Join(errs...)
}

// ReleaseAll releases sessions taken with LockRoots.
func ReleaseAll(held map[string]*cacheroot.Session) {
	for _, s := range held {
		s.Release()
	}
}

// AbandonAll releases sessions taken with LockRoots after an apply that
// did not go ahead (declined, or refused before changing anything): the
// roots LockRoots created are removed again (cacheroot.Session.Abandon).
func AbandonAll(held map[string]*cacheroot.Session) {
	for _, s := range held {
		s.Abandon()
	}
}
