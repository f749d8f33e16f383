package planner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/spec"
)

// Source resolves references and fetches images: the registry client, a
// bundle, local sources, or a MultiSource of them.
type Source interface {
	source.Resolver
	source.Fetcher
}

// MultiSource sends each reference to the source that serves it: local
// sources (oci-layout:, oci-archive:, docker-archive:) to Local, every other
// reference to Fallback (the registry, or a bundle). One plan can so mix
// local and registry images. It implements source.Resolver and source.Fetcher.
type MultiSource struct {
	// Local serves local references; nil refuses them.
	Local *LocalSource
	// Fallback serves all other references; nil refuses them.
	Fallback Source
}

// NewMultiSource returns a MultiSource of local and fallback (either may be nil).
func NewMultiSource(local *LocalSource, fallback Source) *MultiSource {
	return &MultiSource{Local: local, Fallback: fallback}
}

// ResolveAll resolves the local and the other requests concurrently and
// merges the results; errors of both are joined.
func (m *MultiSource) ResolveAll(ctx context.Context, reqs []source.ResolveRequest) (map[source.ResolveKey]source.Resolution, error) {
	var local, other []source.ResolveRequest
	for _, r := range reqs {
		if spec.IsLocalRef(r.Ref) {
			local = append(local, r)
		} else {
			other = append(other, r)
		}
	}
	var (
		wg                         sync.WaitGroup
		lres, ores                 map[source.ResolveKey]source.Resolution
		lerr, oerr                 error
		refusedLocal, refusedOther []error
	)
	if len(local) > 0 {
		if m.Local == nil {
			for _, r := range local {
				refusedLocal = append(refusedLocal, fmt.Errorf("%s: local sources are not available here", r.Ref))
			}
		} else {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lres, lerr = m.Local.ResolveAll(ctx, local)
			}()
		}
	}
	if len(other) > 0 {
		if m.Fallback == nil {
			for _, r := range other {
				refusedOther = append(refusedOther, fmt.Errorf("%s: no registry or bundle source to resolve it from", r.Ref))
			}
		} else {
			ores, oerr = m.Fallback.ResolveAll(ctx, other)
		}
	}
	wg.Wait()
	out := make(map[source.ResolveKey]source.Resolution, len(lres)+len(ores))
	for k, v := range ores {
		out[k] = v
	}
	for k, v := range lres {
		out[k] = v
	}
	errs := append(append(refusedLocal, refusedOther...), lerr, oerr)
	return out, errors.Join(errs...)
}

// UnpackedSize asks the source that serves ref.
func (m *MultiSource) UnpackedSize(ctx context.Context, ref string, d v1.Descriptor) (int64, bool) {
	if spec.IsLocalRef(ref) {
		if m.Local == nil {
			return 0, false
		}
		return m.Local.UnpackedSize(ctx, ref, d)
	}
	if us, ok := m.Fallback.(source.UnpackedSizer); ok {
		return us.UnpackedSize(ctx, ref, d)
	}
	return 0, false
}

// Fetch fetches from the source that serves ref.
func (m *MultiSource) Fetch(ctx context.Context, ref, manifest string) (v1.Image, error) {
	if spec.IsLocalRef(ref) {
		if m.Local == nil {
			return nil, fmt.Errorf("%s: local sources are not available here", ref)
		}
		return m.Local.Fetch(ctx, ref, manifest)
	}
	if m.Fallback == nil {
		return nil, fmt.Errorf("%s: no registry or bundle source to fetch it from", ref)
	}
	return m.Fallback.Fetch(ctx, ref, manifest)
}

// Stats adds what the local source copied to the fallback's statistics
// (when it reports any: RegistrySource and BundleSource do).
func (m *MultiSource) Stats() source.Stats {
	var st source.Stats
	if m.Local != nil {
		st = m.Local.Stats()
	}
	if s, ok := m.Fallback.(interface{ Stats() source.Stats }); ok {
		f := s.Stats()
		st.BytesDownloaded += f.BytesDownloaded
		st.BlobsDownloaded += f.BlobsDownloaded
		st.BlobsCached += f.BlobsCached
	}
	return st
}

// Close closes the fallback when it has a Close method (a bundle does).
func (m *MultiSource) Close() error {
	if c, ok := m.Fallback.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
