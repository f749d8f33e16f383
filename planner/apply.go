package planner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/hashicorp/go-multierror"
	"golang.org/x/sys/unix"

	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/rootfs"
	"github.com/cachectl/cachectl/spec"
)

// Fetcher makes an image's blobs local and returns the image.
type Fetcher interface {
	Fetch(ctx context.Context, ref string, manifest string) (v1.Image, error)
}

// ApplyEvent reports progress of one artifact.
type ApplyEvent struct {
	Time    time.Time `json:"time"`
	Address string    `json:"address"`
	Action  Action    `json:"action"`
	// Phase: "start", "pull", "build", "place", "done", "error".
	Phase   string `json:"phase"`
	Message string `json:"message,omitempty"`
}

// ApplyDeps are the collaborators of Apply.
type ApplyDeps struct {
	// Resolver resolves changes whose digest the plan left open.
	Resolver Resolver
	Fetcher  Fetcher
	// Builder returns the builder of a runtime.
	Builder func(spec.Runtime) (providers.Builder, error)
	// Events receives progress (may be nil).
	Events func(ApplyEvent)
	// BuildProgress, when not nil, gives the build of the change at an
	// address its providers.BuildRequest.Progress callback.
	BuildProgress func(address string) func(written, total int64)
}

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// Parallelism bounds artifacts pulled at once (default 4).
	Parallelism int
	// BuildParallelism bounds conversions at once (default: 1 per 4 CPUs, at least 1).
	BuildParallelism int
	// LockTimeout is how long to wait for another apply on the same root.
	LockTimeout time.Duration
	// Held are locks the caller already holds (LockRoots), by root; Apply
	// does not take or release those.
	Held map[string]*Lock
}

// ApplyResult counts what Apply did.
type ApplyResult struct {
	Added, Changed, Destroyed int
}

type applier struct {
	deps     ApplyDeps
	opts     ApplyOptions
	pullSem  chan struct{}
	buildSem chan struct{}
	procs    int

	mu      sync.Mutex
	pulls   map[string]*pullCall
	trees   map[string]*treeCall
	result  ApplyResult
	resMu   sync.Mutex
	resolve map[ResolveKey]Resolution
}

// treeCall shares one flattened tree among the builds of one image that
// can use it (SIF and .sqsh); the last user drops it.
type treeCall struct {
	once  sync.Once
	tree  *rootfs.Tree
	err   error
	users int
}

type pullCall struct {
	once sync.Once
	img  v1.Image
	err  error
}

// Apply carries out the plan's changes. Each root is locked, checked
// against the plan's fingerprint (a changed root makes the plan stale and
// nothing is done there), and its changes run in parallel. One failure does
// not stop the others; all errors are returned together.
func Apply(ctx context.Context, p *Plan, deps ApplyDeps, opts ApplyOptions) (ApplyResult, error) {
	if opts.Parallelism <= 0 {
		opts.Parallelism = 4
	}
	if opts.BuildParallelism <= 0 {
		opts.BuildParallelism = max(1, runtime.NumCPU()/4)
	}
	a := &applier{
		deps: deps, opts: opts,
		pullSem:  make(chan struct{}, opts.Parallelism),
		buildSem: make(chan struct{}, opts.BuildParallelism),
		procs:    max(1, runtime.NumCPU()/opts.BuildParallelism),
		pulls:    map[string]*pullCall{},
		trees:    map[string]*treeCall{},
	}
	for _, ch := range p.Changes {
		if ch.Manifest == "" || (ch.Action != ActionCreate && ch.Action != ActionReplace) {
			continue
		}
		if b, err := deps.Builder(spec.Runtime(ch.Runtime)); err == nil {
			if _, ok := b.(providers.TreeBuilder); ok {
				if a.trees[ch.Manifest] == nil {
					a.trees[ch.Manifest] = &treeCall{}
				}
				a.trees[ch.Manifest].users++
			}
		}
	}
	for m, t := range a.trees {
		if t.users < 2 {
			delete(a.trees, m) // one build: it flattens by itself
		}
	}
	byCache := map[string][]Change{}
	for _, ch := range p.Changes {
		if ch.Action.IsChange() {
			byCache[ch.Cache] = append(byCache[ch.Cache], ch)
		}
	}
	var (
		wg   sync.WaitGroup
		emu  sync.Mutex
		errs *multierror.Error
	)
	for _, rp := range p.Roots {
		changes := byCache[rp.Cache]
		if len(changes) == 0 {
			continue
		}
		wg.Add(1)
		go func(rp RootPlan, changes []Change) {
			defer wg.Done()
			rerrs := a.applyRoot(ctx, rp, changes)
			emu.Lock()
			errs = multierror.Append(errs, rerrs...)
			emu.Unlock()
		}(rp, changes)
	}
	wg.Wait()
	if err := errs.ErrorOrNil(); err != nil {
		errs.ErrorFormat = listErrors
		return a.result, errs
	}
	return a.result, nil
}

func (a *applier) event(ch Change, phase, msg string) {
	if a.deps.Events != nil {
		a.deps.Events(ApplyEvent{Time: time.Now(), Address: ch.Address, Action: ch.Action, Phase: phase, Message: msg})
	}
}

// rootJob is the per-root state during apply.
type rootJob struct {
	rp      RootPlan
	staging string
	mu      sync.Mutex // guards ix and index writes
	ix      *Index
}

func (a *applier) applyRoot(ctx context.Context, rp RootPlan, changes []Change) []error {
	fail := func(err error) []error { return []error{fmt.Errorf("cache %q: %w", rp.Cache, err)} }
	dirMode, err := spec.ParseMode(rp.DirMode)
	if err != nil {
		return fail(err)
	}
	createdRoot := false
	if a.opts.Held[rp.Root] == nil {
		lock, created, err := lockRoot(ctx, rp.Root, dirMode, rp.UID, rp.GID, a.opts.LockTimeout)
		if err != nil {
			return fail(err)
		}
		defer lock.Release()
		createdRoot = created
	}
	st, err := Scan(rp.Root, ScanOptions{SkipUnmanaged: true})
	if err != nil {
		return fail(err)
	}
	if st.Fingerprint != rp.Fingerprint {
		return fail(fmt.Errorf("plan is stale: %s changed since the plan was made; run \"cachectl plan\" again", rp.Root))
	}
	job := &rootJob{rp: rp, ix: st.Index, staging: filepath.Join(MetaDir(rp.Root), stagingDir)}
	if createdRoot {
		job.ix.AddDir(".")
	}
	if err := cleanLeftovers(rp.Root); err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(job.staging, 0o700); err != nil {
		return fail(err)
	}
	defer os.RemoveAll(job.staging)
	var (
		wg   sync.WaitGroup
		emu  sync.Mutex
		errs []error
	)
	for _, ch := range changes {
		wg.Add(1)
		go func(ch Change) {
			defer wg.Done()
			a.event(ch, "start", "")
			err := a.applyChange(ctx, job, ch)
			if err != nil {
				a.event(ch, "error", err.Error())
				emu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", ch.Address, err))
				emu.Unlock()
				return
			}
			a.event(ch, "done", "")
			a.resMu.Lock()
			switch ch.Action {
			case ActionCreate:
				a.result.Added++
			case ActionReplace:
				a.result.Added++
				a.result.Destroyed++
			case ActionUpdate:
				a.result.Changed++
			case ActionDelete:
				a.result.Destroyed++
			}
			a.resMu.Unlock()
		}(ch)
	}
	wg.Wait()
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errs
}

func (a *applier) applyChange(ctx context.Context, job *rootJob, ch Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch ch.Action {
	case ActionCreate, ActionReplace:
		return a.build(ctx, job, ch)
	case ActionUpdate:
		return a.update(job, ch)
	case ActionDelete:
		return a.delete(job, ch)
	}
	return nil
}

func (a *applier) fetch(ctx context.Context, ch *Change) (v1.Image, error) {
	if ch.Manifest == "" {
		if a.deps.Resolver == nil {
			return nil, fmt.Errorf("no digest in the plan and no source to resolve %s", ch.Ref)
		}
		plat, err := v1.ParsePlatform(ch.Platform)
		if err != nil {
			return nil, err
		}
		res, err := a.deps.Resolver.ResolveAll(ctx, []ResolveRequest{{Ref: ch.Ref, Platform: *plat}})
		if err != nil {
			return nil, err
		}
		r, ok := res[ResolveKey{ch.Ref, ch.Platform}]
		if !ok {
			return nil, fmt.Errorf("could not resolve %s", ch.Ref)
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
		defer func() { <-a.pullSem }()
		a.event(*ch, "pull", ch.Manifest)
		c.img, c.err = a.deps.Fetcher.Fetch(ctx, ch.Ref, ch.Manifest)
	})
	return c.img, c.err
}

// sharedTree returns the shared flatten of a manifest that more than one
// build needs (nil otherwise).
func (a *applier) sharedTree(manifest string) *treeCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.trees[manifest]
}

func (a *applier) flatten(ctx context.Context, manifest string, img v1.Image) (*rootfs.Tree, error) {
	a.mu.Lock()
	t := a.trees[manifest]
	a.mu.Unlock()
	t.once.Do(func() { t.tree, t.err = rootfs.Flatten(ctx, img, rootfs.Options{}) })
	return t.tree, t.err
}

// releaseTree drops a shared tree after its last user.
func (a *applier) releaseTree(manifest string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t := a.trees[manifest]; t != nil {
		t.users--
		if t.users <= 0 {
			delete(a.trees, manifest)
		}
	}
}

func randomName() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (a *applier) build(ctx context.Context, job *rootJob, ch Change) error {
	b, err := a.deps.Builder(spec.Runtime(ch.Runtime))
	if err != nil {
		return err
	}
	img, err := a.fetch(ctx, &ch)
	if err != nil {
		return fmt.Errorf("pull %s: %w", ch.Ref, err)
	}
	plat, err := v1.ParsePlatform(ch.Platform)
	if err != nil {
		return err
	}
	work := filepath.Join(job.staging, randomName())
	if err := os.Mkdir(work, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(work)
	out := filepath.Join(work, "artifact")
	select {
	case a.buildSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	a.event(ch, "build", b.Format())
	req := providers.BuildRequest{
		Ref: ch.Ref, NormalizedName: ImageName(ch.Ref, ch.Name), Platform: *plat,
		Compression: ch.Compression, Processors: a.procs, TempDir: work,
	}
	if a.deps.BuildProgress != nil {
		req.Progress = a.deps.BuildProgress(ch.Address)
	}
	if tb, ok := b.(providers.TreeBuilder); ok && a.sharedTree(ch.Manifest) != nil {
		var tree *rootfs.Tree
		tree, err = a.flatten(ctx, ch.Manifest, img)
		if err == nil {
			err = tb.BuildTree(ctx, tree, img, req, out)
		}
		a.releaseTree(ch.Manifest)
	} else {
		err = b.Build(ctx, img, req, out)
	}
	<-a.buildSem
	if err != nil {
		return fmt.Errorf("build %s: %w", b.Format(), err)
	}
	mode, err := spec.ParseMode(ch.Mode)
	if err != nil {
		return err
	}
	sum, fi, err := finishFile(out, mode, ch.UID, ch.GID)
	if err != nil {
		return err
	}
	e := Entry{
		Name: ch.Name, Ref: ch.Ref, Digest: ch.Digest, Manifest: ch.Manifest, Platform: ch.Platform,
		Size: fi.Size, SHA256: sum, ModTime: fi.ModTime, Mode: fi.Mode.String(), UID: fi.UID, GID: fi.GID,
		Builder: b.Format(), BuilderVersion: b.Version(), Placed: time.Now().UTC(),
	}
	a.event(ch, "place", ch.Path)
	return job.place(out, e, ch)
}

// finishFile fsyncs the built file and gives it its owner and mode
// (chown first: it clears setuid/setgid bits), then hashes it.
func finishFile(path string, mode spec.Mode, uid, gid int) (string, FileState, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return "", FileState{}, fmt.Errorf("builder left no file: %w", err)
	}
	defer f.Close()
	if uid >= 0 || gid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			return "", FileState{}, fmt.Errorf("set owner: %w", err)
		}
	}
	if err := f.Chmod(mode.FileMode()); err != nil {
		return "", FileState{}, fmt.Errorf("set mode: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", FileState{}, fmt.Errorf("fsync: %w", err)
	}
	sum, err := hashFile(path)
	if err != nil {
		return "", FileState{}, err
	}
	st, err := statFile(path, false)
	if err != nil {
		return "", FileState{}, err
	}
	return sum, st, nil
}

// place renames a finished file into its final path. The index first
// records it as pending, so that a crash right after the rename still lets
// the next scan recognise the file as cachectl's.
func (job *rootJob) place(tmp string, e Entry, _ Change) error {
	root := job.rp.Root
	dirMode, _ := spec.ParseMode(job.rp.DirMode)
	dest := spec.JoinRoot(root, e.Name)
	job.mu.Lock()
	defer job.mu.Unlock()
	created, err := ensureParents(root, e.Name, dirMode, job.rp.UID, job.rp.GID)
	for _, d := range created {
		job.ix.AddDir(d)
	}
	if err != nil {
		WriteIndex(root, job.ix)
		return err
	}
	fi, err := os.Lstat(dest)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("%s is a directory; not replaced", dest)
	case err == nil:
		if _, managed := job.ix.Lookup(e.Name); !managed {
			return fmt.Errorf("%s appeared since the plan was made and was not placed by cachectl; not overwritten", dest)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	job.ix.setPending(e)
	if err := WriteIndex(root, job.ix); err != nil {
		return err
	}
	if _, managed := job.ix.Lookup(e.Name); managed {
		err = os.Rename(tmp, dest)
	} else {
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dest, unix.RENAME_NOREPLACE)
	}
	if err != nil {
		job.ix.clearPending(e.Name)
		WriteIndex(root, job.ix)
		return fmt.Errorf("place %s: %w", dest, err)
	}
	if err := syncDir(filepath.Dir(dest)); err != nil {
		return err
	}
	job.ix.clearPending(e.Name)
	job.ix.Put(e)
	return WriteIndex(root, job.ix)
}

func (a *applier) update(job *rootJob, ch Change) error {
	mode, err := spec.ParseMode(ch.Mode)
	if err != nil {
		return err
	}
	if ch.Kind == "directory" {
		return setDirAttrs(ch.Path, mode, ch.UID, ch.GID)
	}
	dest := spec.JoinRoot(job.rp.Root, ch.Name)
	f, err := os.OpenFile(dest, os.O_RDONLY|unix.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("update %s: %w", dest, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("update %s: not a regular file", dest)
	}
	if ch.UID >= 0 || ch.GID >= 0 {
		if err := f.Chown(ch.UID, ch.GID); err != nil {
			return fmt.Errorf("set owner of %s: %w", dest, err)
		}
	}
	if err := f.Chmod(mode.FileMode()); err != nil {
		return fmt.Errorf("set mode of %s: %w", dest, err)
	}
	st, err := statFile(dest, false)
	if err != nil {
		return err
	}
	job.mu.Lock()
	defer job.mu.Unlock()
	e, ok := job.ix.Lookup(ch.Name)
	if !ok {
		return fmt.Errorf("%s is not in the index", dest)
	}
	e.Mode, e.UID, e.GID, e.ModTime = st.Mode.String(), st.UID, st.GID, st.ModTime
	return WriteIndex(job.rp.Root, job.ix)
}

// delete removes a file the index says cachectl placed, never following
// symlinks and never a file that changed since it was placed.
func (a *applier) delete(job *rootJob, ch Change) error {
	job.mu.Lock()
	defer job.mu.Unlock()
	e, ok := job.ix.Lookup(ch.Name)
	if !ok {
		return nil // already gone from the index
	}
	dest := spec.JoinRoot(job.rp.Root, ch.Name)
	st, err := statFile(dest, false)
	if err != nil {
		return err
	}
	if st.Exists {
		if !st.Regular {
			return fmt.Errorf("%s is no longer the regular file cachectl placed; not deleted (remove it by hand)", dest)
		}
		if st.Size != e.Size || !st.ModTime.Equal(e.ModTime) {
			return fmt.Errorf("%s changed since cachectl placed it; not deleted (remove it by hand, or adopt it with \"cachectl import\")", dest)
		}
		if err := os.Remove(dest); err != nil {
			return fmt.Errorf("delete %s: %w", dest, err)
		}
		if err := syncDir(filepath.Dir(dest)); err != nil {
			return err
		}
	}
	job.ix.Remove(ch.Name)
	job.removeEmptyDirs(ch.Name)
	return WriteIndex(job.rp.Root, job.ix)
}

// lockRoot creates the root if needed and takes its lock.
func lockRoot(ctx context.Context, root string, dirMode spec.Mode, uid, gid int, timeout time.Duration) (*Lock, bool, error) {
	created, err := ensureRoot(root, dirMode, uid, gid)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(MetaDir(root), 0o755); err != nil {
		return nil, false, err
	}
	l, err := AcquireLock(ctx, root, timeout)
	return l, created, err
}

// LockRoots takes the lock of every cache root of the model (creating the
// roots that do not exist yet), in a fixed order so that two processes
// cannot deadlock. Apply without a saved plan locks before planning, so
// its plan cannot go stale. Release the locks with ReleaseAll.
func LockRoots(ctx context.Context, m *spec.Model, timeout time.Duration) (map[string]*Lock, error) {
	caches := append([]*spec.Cache(nil), m.Caches...)
	sort.Slice(caches, func(i, j int) bool { return caches[i].Root < caches[j].Root })
	held := map[string]*Lock{}
	for _, c := range caches {
		uid, gid, err := LookupOwner(c.Owner, c.Group)
		if err != nil {
			ReleaseAll(held)
			return nil, fmt.Errorf("cache %q: %w", c.Name, err)
		}
		l, created, err := lockRoot(ctx, c.Root, c.DirMode, uid, gid, timeout)
		if err != nil {
			ReleaseAll(held)
			return nil, fmt.Errorf("cache %q: %w", c.Name, err)
		}
		held[c.Root] = l
		// Whatever an interrupted apply left in staging goes now, even
		// when this root has nothing to change.
		if err := cleanLeftovers(c.Root); err != nil {
			ReleaseAll(held)
			return nil, fmt.Errorf("cache %q: %w", c.Name, err)
		}
		if created {
			if err := recordDirs(c.Root, "."); err != nil {
				ReleaseAll(held)
				return nil, fmt.Errorf("cache %q: %w", c.Name, err)
			}
		}
	}
	return held, nil
}

// cleanLeftovers removes what an interrupted run left in a root's hidden
// directory: the staging area and temporary index files. The lock must be
// held.
func cleanLeftovers(root string) error {
	if err := os.RemoveAll(filepath.Join(MetaDir(root), stagingDir)); err != nil {
		return fmt.Errorf("clean staging area: %w", err)
	}
	tmps, _ := filepath.Glob(filepath.Join(MetaDir(root), "."+indexFile+".tmp-*"))
	for _, t := range tmps {
		if err := os.Remove(t); err != nil {
			return fmt.Errorf("clean %s: %w", t, err)
		}
	}
	return nil
}

// recordDirs adds created directories to a root's index (lock held).
func recordDirs(root string, dirs ...string) error {
	ix, err := ReadIndex(root)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		ix.AddDir(d)
	}
	return WriteIndex(root, ix)
}

// ReleaseAll releases locks taken with LockRoots.
func ReleaseAll(locks map[string]*Lock) {
	for _, l := range locks {
		l.Release()
	}
}

// removeEmptyDirs removes the parents of name that cachectl created and
// that are now empty, deepest first (never the root itself).
func (job *rootJob) removeEmptyDirs(name string) {
	for i := strings.LastIndexByte(name, '/'); i > 0; i = strings.LastIndexByte(name[:i], '/') {
		d := name[:i]
		if !job.ix.HasDir(d) {
			return
		}
		if err := os.Remove(spec.JoinRoot(job.rp.Root, d)); err != nil {
			return // not empty (or gone): keep it recorded only if it exists
		}
		job.ix.RemoveDir(d)
	}
}

// ensureRoot creates the cache root (and missing ancestors) with dirMode.
func ensureRoot(root string, mode spec.Mode, uid, gid int) (created bool, err error) {
	fi, err := os.Lstat(root)
	if err == nil {
		if !fi.IsDir() {
			return false, fmt.Errorf("cache root %s exists and is not a directory", root)
		}
		return false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(root), 0o755); err != nil {
		return false, fmt.Errorf("create cache root: %w", err)
	}
	if err := makeDir(root, mode, uid, gid); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// ensureParents creates the directories between root and name, refusing
// to pass through a symlink or a non-directory. It returns the names of the
// directories it created.
func ensureParents(root, name string, mode spec.Mode, uid, gid int) ([]string, error) {
	parts := strings.Split(name, "/")
	dir := root
	var created []string
	for i, p := range parts[:len(parts)-1] {
		dir = filepath.Join(dir, p)
		fi, err := os.Lstat(dir)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil && fi.Mode()&os.ModeSymlink != 0:
			return created, fmt.Errorf("%s is a symlink; cachectl does not place files through symlinks", dir)
		case err == nil:
			return created, fmt.Errorf("%s is not a directory", dir)
		case !errors.Is(err, fs.ErrNotExist):
			return created, err
		}
		if err := makeDir(dir, mode, uid, gid); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			return created, err
		}
		created = append(created, strings.Join(parts[:i+1], "/"))
	}
	return created, nil
}

func makeDir(dir string, mode spec.Mode, uid, gid int) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return setDirAttrs(dir, mode, uid, gid)
}

// setDirAttrs gives a directory its owner, then its mode (chown clears
// setgid), never following a symlink.
func setDirAttrs(dir string, mode spec.Mode, uid, gid int) error {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer f.Close()
	if uid >= 0 || gid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("set owner of %s: %w", dir, err)
		}
	}
	if err := f.Chmod(mode.FileMode()); err != nil {
		return fmt.Errorf("set mode of %s: %w", dir, err)
	}
	return nil
}
