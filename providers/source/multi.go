package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Multi sends each reference to the source that serves it: the references
// IsLocal accepts (the spec's local sources: oci-layout:, oci-archive:,
// docker-archive:, see spec.IsLocalRef) to Local, every other reference
// to Fallback (the registries, or bundles). One plan can so mix local and
// registry images. It is a Source, a StatsReporter, an UnpackedSizer, a
// StreamFetcher and an io.Closer whatever its parts are.
type Multi struct {
	// IsLocal tells the references Local serves.
	IsLocal func(ref string) bool
	// Local serves local references; nil refuses them.
	Local Source
	// Fallback serves all other references; nil refuses them.
	Fallback Source
}

// NewMulti returns a Multi of local and fallback (either may be nil),
// dispatching with isLocal.
func NewMulti(isLocal func(ref string) bool, local, fallback Source) *Multi {
	return &Multi{IsLocal: isLocal, Local: local, Fallback: fallback}
}

// serving returns the source that serves ref (nil: none here).
func (m *Multi) serving(ref string) Source {
	if m.IsLocal(ref) {
		return m.Local
	}
	return m.Fallback
}

// missing says that no source here serves ref (to verb it from).
func (m *Multi) missing(ref, verb string) error {
	if m.IsLocal(ref) {
		return fmt.Errorf("%s: local sources are not available here", ref)
	}
	return fmt.Errorf("%s: no registry or bundle source to %s it from", ref, verb)
}

// ResolveAll resolves the local and the other requests concurrently and
// merges the results; the errors of both are joined, with one for each
// request no source here serves.
func (m *Multi) ResolveAll(ctx context.Context, reqs []ResolveRequest) (map[ResolveKey]Resolution, error) {
	var local, other []ResolveRequest
	for _, r := range reqs {
		if m.IsLocal(r.Ref) {
			local = append(local, r)
		} else {
			other = append(other, r)
		}
	}
	var refused []error
	if m.Local == nil {
		for _, r := range local {
			refused = append(refused, m.missing(r.Ref, "resolve"))
		}
		local = nil
	}
	if m.Fallback == nil {
		for _, r := range other {
			refused = append(refused, m.missing(r.Ref, "resolve"))
		}
		other = nil
	}
	var (
		wg         sync.WaitGroup
		lres, ores map[ResolveKey]Resolution
		lerr, oerr error
	)
	if len(local) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lres, lerr = m.Local.ResolveAll(ctx, local)
		}()
	}
	if len(other) > 0 {
		ores, oerr = m.Fallback.ResolveAll(ctx, other)
	}
	wg.Wait()
	out := make(map[ResolveKey]Resolution, len(lres)+len(ores))
	for k, v := range ores {
		out[k] = v
	}
	for k, v := range lres {
		out[k] = v
	}
	return out, errors.Join(append(refused, lerr, oerr)...)
}

// Fetch fetches from the source that serves ref.
func (m *Multi) Fetch(ctx context.Context, ref, manifest string) (v1.Image, error) {
	src := m.serving(ref)
	if src == nil {
		return nil, m.missing(ref, "fetch")
	}
	return src.Fetch(ctx, ref, manifest)
}

// FetchStream streams from the source that serves ref when it is a
// StreamFetcher, and fetches (then returns a wait that has nothing left to
// wait for) otherwise.
func (m *Multi) FetchStream(ctx context.Context, ref, manifest string) (v1.Image, func() error, error) {
	src := m.serving(ref)
	if src == nil {
		return nil, nil, m.missing(ref, "fetch")
	}
	if sf, ok := src.(StreamFetcher); ok {
		return sf.FetchStream(ctx, ref, manifest)
	}
	img, err := src.Fetch(ctx, ref, manifest)
	return img, func() error { return nil }, err
}

// UnpackedSize asks the source that serves ref, when it is an
// UnpackedSizer.
func (m *Multi) UnpackedSize(ctx context.Context, ref string, d v1.Descriptor) (int64, bool) {
	if us, ok := m.serving(ref).(UnpackedSizer); ok {
		return us.UnpackedSize(ctx, ref, d)
	}
	return 0, false
}

// Stats adds up the Stats of the parts that are StatsReporters.
func (m *Multi) Stats() Stats {
	var st Stats
	for _, src := range []Source{m.Local, m.Fallback} {
		if r, ok := src.(StatsReporter); ok {
			st.Add(r.Stats())
		}
	}
	return st
}

// Close closes the parts that are io.Closers (bundles hold files open).
func (m *Multi) Close() error {
	var errs []error
	for _, src := range []Source{m.Local, m.Fallback} {
		if c, ok := src.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}
