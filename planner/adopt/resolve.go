package adopt

import (
	"context"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/registry"
	"github.com/cachectl/cachectl/providers/source"
)

// Resolver resolves references against registries; *registry.Client is
// one. Results and errors are indexed like the requests.
type Resolver interface {
	ResolveAll(ctx context.Context, reqs []source.ResolveRequest) ([]registry.Resolved, []error)
}

// Resolve settles ambiguous names against the registry: a name is the one
// of its readings that the registry (or its mirror) has; with none, or
// more than one, it stays ambiguous (and the message says what the
// registry answered). With track, every adopted file also gets its tag's
// current digest (see Track). wanted is Options.Wanted, to keep one file
// per reference.
func (r *Result) Resolve(ctx context.Context, res Resolver, platform v1.Platform, track bool, wanted map[string]string) {
	var reqs []source.ResolveRequest
	for _, f := range r.Files {
		if f.Status == StatusAmbiguous {
			for _, ref := range f.Readings {
				reqs = append(reqs, source.ResolveRequest{Ref: ref, Platform: platform})
			}
		}
	}
	if len(reqs) > 0 {
		out, errs := res.ResolveAll(ctx, reqs)
		found := map[string]registry.Resolved{}
		failed := map[string]error{}
		for i, q := range reqs {
			if errs[i] == nil {
				found[q.Ref] = out[i]
			} else if !registry.NotFound(errs[i]) {
				failed[q.Ref] = errs[i]
			}
		}
		for _, f := range r.Files {
			if f.Status != StatusAmbiguous {
				continue
			}
			var have []string
			var firstErr error
			for _, ref := range f.Readings {
				if _, ok := found[ref]; ok {
					have = append(have, ref)
				} else if err := failed[ref]; err != nil && firstErr == nil {
					firstErr = err
				}
			}
			switch {
			case len(have) == 1:
				set(f, r.Runtime, have[0], "registry")
				f.Reason = ""
			case len(have) > 1:
				f.Reason = fmt.Sprintf("the registry has %s; give --map '%s=REF'", strings.Join(have, " and "), f.Name)
			case firstErr != nil:
				f.Status = StatusUnresolved
				f.Reason = fmt.Sprintf("the name reads as %s and the registry could not settle it (%v); give --map '%s=REF'", strings.Join(f.Readings, " or "), firstErr, f.Name)
			default:
				f.Status = StatusUnresolved
				f.Reason = fmt.Sprintf("the name reads as %s and the registry has none of them; give --map '%s=REF'", strings.Join(f.Readings, " or "), f.Name)
			}
		}
		r.dedupe(wanted)
	}
	if track {
		r.Track(ctx, res, platform)
	}
}

// Track records each adopted file's digest so that a later tag move shows
// as drift. A SIF that names the digest it was built from keeps it
// (DigestFrom "file"; when the registry's tag points there, the registry's
// spelling, index or manifest, is recorded). Other files get the tag's
// current digest from the registry, marked "unverified content"
// (DigestFrom "registry"): nothing checks the file against it. A file the
// registry cannot resolve stays pinned, with a note.
func (r *Result) Track(ctx context.Context, res Resolver, platform v1.Platform) {
	files := r.Adoptable()
	if len(files) == 0 {
		return
	}
	reqs := make([]source.ResolveRequest, len(files))
	for i, f := range files {
		reqs[i] = source.ResolveRequest{Ref: f.Ref, Platform: platform}
	}
	out, errs := res.ResolveAll(ctx, reqs)
	for i, f := range files {
		f.track = errs[i] == nil
		if errs[i] != nil {
			f.Reason = fmt.Sprintf("kept pinned: its tag could not be resolved (%v)", errs[i])
			continue
		}
		d, m := out[i].Digest.String(), out[i].Manifest.String()
		switch {
		case f.Digest != "" && (f.Digest == d || f.Digest == m):
			f.Digest = d // the registry's spelling (index or manifest)
		case f.Digest != "":
			// The tag moved since the file was built: plan shows it.
		default:
			f.Digest, f.Info.DigestFrom = d, "registry"
		}
	}
}
