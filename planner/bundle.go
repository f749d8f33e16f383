package planner

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/spec"
)

// BundleRequests lists each distinct reference and platform of the spec
// (or of the target addresses: artifacts, or cache.NAME for every image of
// a cache), in spec order, and the normalized name of
// each reference.
func BundleRequests(m *spec.Model, targets []string) ([]source.ResolveRequest, map[string]string, error) {
	want := newTargetSet(targets)
	found := map[string]bool{}
	seen := map[source.ResolveKey]bool{}
	var reqs []source.ResolveRequest
	names := map[string]string{}
	var notRegistry []string
	for _, c := range m.Caches {
		if want.cacheTargeted(c.Name) {
			found["cache."+c.Name] = true
		}
		for _, a := range c.Artifacts {
			if !want.artifact(c.Name, a.Address()) {
				continue
			}
			found[a.Address()] = true
			if a.Parsed == nil {
				notRegistry = append(notRegistry, a.Address())
				continue
			}
			names[a.Ref] = image.NormalizedName(a.Ref)
			k := source.ResolveKey{Ref: a.Ref, Platform: image.PlatformString(a.Platform)}
			if seen[k] {
				continue
			}
			seen[k] = true
			reqs = append(reqs, source.ResolveRequest{Ref: a.Ref, Platform: a.Platform})
		}
	}
	var unknown []string
	for _, t := range targets {
		if !found[t] {
			unknown = append(unknown, t)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, nil, fmt.Errorf("-target %s matches no artifact of the spec; addresses look like cache.NAME[\"REF\"], or cache.NAME for a whole cache (see \"cachectl list\")", strings.Join(unknown, ", "))
	}
	if len(notRegistry) > 0 {
		return nil, nil, fmt.Errorf("bundles carry registry images only; these artifacts have a local source: %s (leave them out with -target)", strings.Join(notRegistry, ", "))
	}
	if len(reqs) == 0 {
		return nil, nil, errors.New("the spec has no images to bundle")
	}
	return reqs, names, nil
}
