package planner

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/spec"
)

// StoreRoots returns the digests the blob store must keep for the spec's
// caches: what each artifact recorded in a cache index was built from (the
// reference's digest and the platform's manifest). The store keeps those
// and every blob they reference (store.Referenced); gc removes the rest.
func StoreRoots(m *spec.Model) ([]v1.Hash, error) {
	var roots []v1.Hash
	for _, cache := range m.Caches {
		ix, err := cacheroot.ReadIndexAt(cache.Root, cache.Runtime)
		if err != nil {
			return nil, fmt.Errorf("cache %q: %w", cache.Name, err)
		}
		for _, e := range ix.Entries {
			for _, d := range []string{e.Digest, e.Manifest} {
				if h, err := v1.NewHash(d); err == nil {
					roots = append(roots, h)
				}
			}
		}
	}
	return roots, nil
}
