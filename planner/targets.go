package planner

import (
	"strings"

	"github.com/cachectl/cachectl/spec"
)

// A -target address names one artifact (cache.NAME["REF"], spec.Address)
// or a whole cache (cache.NAME): every artifact of the cache, those that
// left the spec included, and the directory changes of its root — as
// Terraform's -target takes one resource or a whole module.

// CacheAddress returns the cache a whole-cache address (cache.NAME) names;
// ok is false for any other address.
func CacheAddress(addr string) (name string, ok bool) {
	name, ok = strings.CutPrefix(addr, "cache.")
	if !ok || name == "" || strings.ContainsAny(name, ".[]\"") {
		return "", false
	}
	return name, true
}

// IsCacheTarget reports whether addr is the whole-cache address of a cache
// of the model.
func IsCacheTarget(m *spec.Model, addr string) bool {
	name, ok := CacheAddress(addr)
	return ok && m.Cache(name) != nil
}

// targetSet is a parsed list of -target addresses; the zero list targets
// everything.
type targetSet struct {
	all       bool
	artifacts map[string]bool // artifact addresses
	caches    map[string]bool // caches targeted whole
}

func newTargetSet(addrs []string) targetSet {
	t := targetSet{all: len(addrs) == 0, artifacts: map[string]bool{}, caches: map[string]bool{}}
	for _, a := range addrs {
		if name, ok := CacheAddress(a); ok {
			t.caches[name] = true
		} else {
			t.artifacts[a] = true
		}
	}
	return t
}

// artifact reports whether the artifact at address addr of cache is
// targeted.
func (t targetSet) artifact(cache, addr string) bool {
	return t.all || t.caches[cache] || t.artifacts[addr]
}

// dirs reports whether the directory changes of cache are planned: with
// no targets, or with the cache targeted whole.
func (t targetSet) dirs(cache string) bool { return t.all || t.caches[cache] }

// cacheTargeted reports whether the whole cache is a target (an artifact
// address of it alone is not).
func (t targetSet) cacheTargeted(cache string) bool { return t.caches[cache] }
