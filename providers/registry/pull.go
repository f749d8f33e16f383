package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/progress"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/providers/store"
)

// Pull fetches exactly the image manifest manifest (by digest, from the
// repository of ref), its config and its layers into st, skipping blobs
// already there, and returns the image backed by the store. Blobs are
// streamed, verified and placed atomically; concurrent pulls of the same
// blob in this process download it once. manifest must be an image
// manifest (Resolved.Manifest), not an index.
func (c *Client) Pull(ctx context.Context, ref string, manifest v1.Hash, st *store.Store) (img v1.Image, stats source.Stats, err error) {
	p, err := c.pull(ctx, ref, manifest, st, false)
	if err != nil {
		return nil, p.stats, err
	}
	return p.Wait()
}

// PullingImage is an image being pulled (PullStream): Image can be read
// at once, Wait gives the outcome.
type PullingImage struct {
	img   v1.Image
	done  chan struct{}
	stats source.Stats
	err   error
	final v1.Image

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when a layer starts or the pull ends
}

// Image returns the image; reading a layer that has not arrived waits for
// it (Store.Follow) and fails when its download fails.
func (p *PullingImage) Image() v1.Image { return p.img }

// Wait waits for the pull to end and returns the complete image from the
// store, or the error that ended it.
func (p *PullingImage) Wait() (v1.Image, source.Stats, error) {
	<-p.done
	return p.final, p.stats, p.err
}

func (p *PullingImage) notify() {
	p.mu.Lock()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// open returns the compressed stream of layer d, waiting until its
// download started (or it is in the store).
func (p *PullingImage) open(st *store.Store, d v1.Descriptor) (io.ReadCloser, error) {
	for {
		p.mu.Lock()
		ch := p.changed
		p.mu.Unlock()
		rc, err := st.Follow(d.Digest)
		if !errors.Is(err, store.ErrNotStarted) {
			return rc, err
		}
		select {
		case <-p.done:
			if p.err != nil {
				return nil, p.err
			}
			return st.Open(d.Digest)
		case <-ch:
		}
	}
}

// PullStream is Pull that returns once the manifest and the config are in
// st, while the layers download: the newest layer first, one after the
// other (the next one starting as the current one ends), so that a reader
// of the layers newest first (rootfs.Stream) reads them as they arrive.
func (c *Client) PullStream(ctx context.Context, ref string, manifest v1.Hash, st *store.Store) (*PullingImage, error) {
	return c.pull(ctx, ref, manifest, st, true)
}

// pull starts the pull; inOrder downloads the layers one after the other
// (PullStream), otherwise all at once up to the registry's concurrency
// (Pull: nobody reads them before they are all in).
func (c *Client) pull(ctx context.Context, ref string, manifest v1.Hash, st *store.Store, inOrder bool) (p *PullingImage, err error) {
	p = &PullingImage{done: make(chan struct{}), changed: make(chan struct{})}
	defer func() {
		if err != nil {
			p.err = err
			close(p.done)
		}
	}()
	r, err := c.parse(ref)
	if err != nil {
		return p, err
	}
	ts, err := c.targets(r.Context())
	if err != nil {
		return p, err
	}
	if !st.Has(manifest) {
		leader := false
		v, err, _ := c.sf.Do("manifest:"+st.Dir()+"@"+manifest.String(), func() (any, error) {
			leader = true
			if st.Has(manifest) {
				return 0, nil
			}
			var raw []byte
			err := c.eachTarget(ctx, r.Context(), func(t target) error {
				var err error
				raw, _, err = c.getManifest(ctx, t, manifest.String())
				return err
			})
			if err != nil {
				return 0, fmt.Errorf("manifest %s: %w", manifest, err)
			}
			if err := st.PutBytes(ctx, manifest, raw); err != nil {
				return 0, err
			}
			return len(raw), nil
		})
		if err != nil {
			return p, fmt.Errorf("pulling %s: %w", ref, err)
		}
		if n := v.(int); leader && n > 0 {
			p.stats.BytesDownloaded += int64(n)
			p.stats.BlobsDownloaded++
		}
	}
	raw, err := st.ReadAll(manifest)
	if err != nil {
		return p, err
	}
	mt, err := image.ManifestMediaType(raw)
	if err != nil {
		return p, fmt.Errorf("pulling %s: manifest %s: %w", ref, manifest, err)
	}
	if !mt.IsImage() {
		return p, fmt.Errorf("pulling %s: %s is a %s, not an image manifest (resolve a platform first)", ref, manifest, mt)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return p, fmt.Errorf("pulling %s: parsing manifest %s: %w", ref, manifest, err)
	}
	var bytesDl, blobsDl, cached atomic.Int64
	count := func(n int64, downloaded bool) {
		if downloaded {
			bytesDl.Add(n)
			blobsDl.Add(1)
		} else {
			cached.Add(1)
		}
	}
	// The config first (the image needs it), then the layers newest first.
	n, downloaded, err := c.fetchBlob(ctx, ts, ref, m.Config, st)
	if err != nil {
		p.stats.BytesDownloaded += bytesDl.Load()
		return p, fmt.Errorf("pulling %s: %w", ref, err)
	}
	count(n, downloaded)
	seen := map[v1.Hash]bool{m.Config.Digest: true}
	var layers []v1.Descriptor
	for i := len(m.Layers) - 1; i >= 0; i-- {
		if l := m.Layers[i]; !seen[l.Digest] {
			seen[l.Digest] = true
			layers = append(layers, l)
		}
	}
	p.img, err = st.PendingImage(manifest, func(d v1.Descriptor) (io.ReadCloser, error) { return p.open(st, d) })
	if err != nil {
		return p, fmt.Errorf("pulling %s: %w", ref, err)
	}
	go func() {
		// inOrder: one download at a time, in order, so that the layers
		// arrive in the order a reader of the layers newest first needs
		// them; the next one starts as the current one nears its end
		// (hiding the request's round trip), up to the registry's
		// concurrency. Otherwise as many at once as that allows.
		g, gctx := errgroup.WithContext(ctx)
		limit := c.hostConcurrency(ts)
		var mu sync.Mutex
		active := map[v1.Hash]int64{}
		canStart := func() bool {
			mu.Lock()
			defer mu.Unlock()
			if len(active) >= limit {
				return false
			}
			if !inOrder {
				return true
			}
			for h, size := range active {
				if size-st.Written(h) > streamOverlap {
					return false
				}
			}
			return true
		}
	loop:
		for _, d := range layers {
			for !canStart() {
				select {
				case <-time.After(20 * time.Millisecond):
				case <-gctx.Done():
					break loop
				}
			}
			mu.Lock()
			active[d.Digest] = d.Size
			mu.Unlock()
			g.Go(func() error {
				defer func() {
					mu.Lock()
					delete(active, d.Digest)
					mu.Unlock()
				}()
				n, downloaded, err := c.fetchBlob(gctx, ts, ref, d, st, p.notify)
				if err != nil {
					return err
				}
				count(n, downloaded)
				return nil
			})
		}
		err := g.Wait()
		p.stats.BytesDownloaded += bytesDl.Load()
		p.stats.BlobsDownloaded += blobsDl.Load()
		p.stats.BlobsCached += cached.Load()
		if err == nil {
			p.final, err = st.Image(manifest)
		}
		if err != nil {
			p.err = fmt.Errorf("pulling %s: %w", ref, err)
		}
		close(p.done)
		p.notify()
	}()
	return p, nil
}

// streamOverlap is how many bytes a layer download of PullStream has left
// when the next one starts.
const streamOverlap = 8 << 20

// hostConcurrency is how many requests the first target's host takes at
// once.
func (c *Client) hostConcurrency(ts []target) int {
	if len(ts) == 0 {
		return 1
	}
	return max(1, cap(ts[0].host.sem))
}

// fetchBlob makes sure blob d is in st, downloading it unless present or
// being downloaded by another pull of this client.
//
// started, when given, is called once the blob can be followed in st (its
// download began, or it is there).
func (c *Client) fetchBlob(ctx context.Context, ts []target, ref string, d v1.Descriptor, st *store.Store, started ...func()) (n int64, downloaded bool, err error) {
	notify := func() {
		for _, f := range started {
			f()
		}
	}
	if st.Has(d.Digest) {
		notify()
		return 0, false, nil
	}
	leader := false
	v, err, _ := c.sf.Do(st.Dir()+"@"+d.Digest.String(), func() (any, error) {
		leader = true
		if st.Has(d.Digest) {
			return int64(-1), nil
		}
		return c.download(ctx, ts, ref, d, st, notify)
	})
	notify()
	if err != nil {
		return 0, false, err
	}
	n = v.(int64)
	if !leader || n < 0 || (n == 0 && d.Size > 0) {
		return 0, false, nil
	}
	return n, true, nil
}

// download streams blob d into st from the first target that delivers it.
// A blob whose bytes do not match is fetched once more from the start
// before that target is given up.
func (c *Client) download(ctx context.Context, ts []target, ref string, d v1.Descriptor, st *store.Store, started func()) (int64, error) {
	base := progress.Event{ID: d.Digest.String(), Ref: ref, Digest: d.Digest.String(), Total: d.Size}
	start := base
	start.Type = progress.Start
	progress.Emit(c.opts.Progress, start)
	var errs []string
	var last error
	for _, t := range ts {
		for attempt := 0; attempt < 2; attempt++ {
			n, err := c.downloadFrom(ctx, t, base, d, st, started)
			if err == nil {
				done := base
				done.Type, done.Current = progress.Done, n
				progress.Emit(c.opts.Progress, done)
				return n, nil
			}
			last = err
			if ctx.Err() != nil {
				break
			}
			if !errors.Is(err, store.ErrDigestMismatch) && !errors.Is(err, store.ErrSizeMismatch) {
				break
			}
		}
		errs = append(errs, last.Error())
		if ctx.Err() != nil {
			break
		}
	}
	fail := base
	fail.Type, fail.Err = progress.Error, last.Error()
	progress.Emit(c.opts.Progress, fail)
	if len(errs) > 1 {
		// Keep the upstream error wrapped, note the mirror's.
		return 0, fmt.Errorf("blob %s: %w (mirror failed too: %s)", d.Digest, last, errs[0])
	}
	return 0, fmt.Errorf("blob %s: %w", d.Digest, last)
}

func (c *Client) downloadFrom(ctx context.Context, t target, base progress.Event, d v1.Descriptor, st *store.Store, started func()) (int64, error) {
	release, err := c.acquire(ctx, t.host)
	if err != nil {
		return 0, err
	}
	defer release()
	br := &blobReader{ctx: ctx, c: c, t: t, digest: d.Digest, size: d.Size}
	defer br.Close()
	var r io.Reader = br
	if c.opts.Progress != nil {
		r = progress.NewReader(br, c.opts.Progress, base, 0)
	}
	if started != nil {
		r = &firstRead{r: r, f: started}
	}
	n, err := st.Put(ctx, d.Digest, d.Size, r)
	if err != nil {
		return n, fmt.Errorf("from %s: %w", t.repo.RegistryStr(), err)
	}
	return n, nil
}

// blobReader reads a blob from a registry, resuming with a Range request
// (or by skipping already-read bytes) after a connection reset, a truncated
// body or a stall, with back-off. It gives up when no byte has arrived for
// the host's retry time (TotalRetryTime): the attempt running then is cut
// at that bound, so a stalled download never outlasts it.
type blobReader struct {
	ctx    context.Context
	c      *Client
	t      target
	digest v1.Hash
	size   int64

	rc           io.ReadCloser
	off          int64
	attempt      int
	lastProgress time.Time
	started      time.Time
	cancel       context.CancelFunc
	timer        *time.Timer
	expired      atomic.Bool
	lastErr      error
}

func (b *blobReader) Read(p []byte) (int, error) {
	budget := b.t.host.budget
	if b.lastProgress.IsZero() {
		b.lastProgress = time.Now()
		b.started = b.lastProgress
	}
	for {
		if b.rc == nil {
			if time.Since(b.lastProgress) >= budget {
				return 0, b.gaveUp(b.lastErr)
			}
			actx, cancel := context.WithCancel(b.ctx)
			b.expired.Store(false)
			b.cancel = cancel
			b.timer = time.AfterFunc(time.Until(b.lastProgress.Add(budget)), func() { b.expired.Store(true); cancel() })
			rc, err := b.open(actx)
			if err != nil {
				b.stop()
				if b.expired.Load() && b.ctx.Err() == nil {
					return 0, b.gaveUp(b.lastErr)
				}
				return 0, err
			}
			b.rc = rc
		}
		n, err := b.rc.Read(p)
		b.off += int64(n)
		if n > 0 {
			b.lastProgress = time.Now()
			b.timer.Reset(budget)
			b.attempt = 0 // back-off grows only while nothing arrives
		}
		if err == io.EOF && b.size >= 0 && b.off < b.size {
			err = io.ErrUnexpectedEOF
		}
		if err == nil || err == io.EOF {
			return n, err
		}
		b.Close()
		if b.expired.Load() && b.ctx.Err() == nil {
			return n, b.gaveUp(b.lastErr)
		}
		if !retryable(err) || b.ctx.Err() != nil {
			return n, err
		}
		b.lastErr = err
		wait := backoff(b.attempt)
		b.attempt++
		left := budget - time.Since(b.lastProgress)
		if left <= 50*time.Millisecond {
			return n, b.gaveUp(err)
		}
		wait = min(wait, left-50*time.Millisecond) // one more attempt at the end

		if err := sleep(b.ctx, wait); err != nil {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// gaveUp says how long the download went without data, where, and why.
func (b *blobReader) gaveUp(last error) error {
	if last == nil {
		last = errTimeout
	}
	size := "?"
	if b.size >= 0 {
		size = strconv.FormatInt(b.size, 10)
	}
	return fmt.Errorf("no data for %s at byte %d of %s (%d attempt(s) since the last byte); gave up after %s (the retry time is %s, counted from the last byte): %w",
		time.Since(b.lastProgress).Round(100*time.Millisecond), b.off, size, b.attempt+1, time.Since(b.started).Round(100*time.Millisecond), b.t.host.budget, last)
}

// stop releases the current attempt's context and timer.
func (b *blobReader) stop() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if b.cancel != nil {
		b.cancel()
		b.cancel = nil
	}
}

// open GETs the blob from offset b.off.
func (b *blobReader) open(ctx context.Context) (io.ReadCloser, error) {
	t := b.t
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url("blobs/"+b.digest.String()), nil)
	if err != nil {
		return nil, err
	}
	if b.off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", b.off))
	}
	resp, rt, err := b.c.do(ctx, t, req)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if b.off > 0 {
			if _, err := io.CopyN(io.Discard, resp.Body, b.off); err != nil {
				resp.Body.Close()
				return nil, fmt.Errorf("registry %s: skipping to offset %d of blob %s: %w", t.repo.RegistryStr(), b.off, b.digest, err)
			}
		}
		return resp.Body, nil
	case http.StatusPartialContent:
		if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != b.off {
			resp.Body.Close()
			return nil, fmt.Errorf("registry %s: blob %s: asked for bytes from %d, got range %q", t.repo.RegistryStr(), b.digest, b.off, resp.Header.Get("Content-Range"))
		}
		return resp.Body, nil
	}
	return nil, statusError(resp, t.repo.RegistryStr(), t.repo.RepositoryStr(), "blob "+b.digest.String(), rt.hadCreds)
}

// Close releases the current response, if any.
func (b *blobReader) Close() error {
	var err error
	if b.rc != nil {
		err = b.rc.Close()
		b.rc = nil
	}
	b.stop()
	return err
}

// rangeStart parses the first byte of "bytes START-END/SIZE".
func rangeStart(v string) (int64, bool) {
	v, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, false
	}
	s, _, ok := strings.Cut(v, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// firstRead calls f when the first bytes have been read (Put has started
// its temporary file by then, so the blob can be followed).
type firstRead struct {
	r io.Reader
	f func()
}

func (fr *firstRead) Read(p []byte) (int, error) {
	n, err := fr.r.Read(p)
	if fr.f != nil && (n > 0 || err != nil) {
		fr.f()
		fr.f = nil
	}
	return n, err
}
