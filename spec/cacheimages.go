package spec

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// cacheImagesSchema is the body of a cache_images "CACHE" block: more
// images for a cache defined elsewhere, written like the cache's own.
var cacheImagesSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "images"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "image"}},
}

// collectCacheImages keeps the cache_images blocks by the cache they add
// to; decodeCaches reads them with the cache.
func (l *loader) collectCacheImages(blocks []*hcl.Block) {
	l.cacheImages = map[string][]*hcl.Block{}
	for _, b := range blocks {
		l.cacheImages[b.Labels[0]] = append(l.cacheImages[b.Labels[0]], b)
	}
}

// checkCacheImages reports cache_images blocks for caches the spec does
// not define.
func (l *loader) checkCacheImages(m *Model) {
	var names []string
	for _, c := range m.Caches {
		names = append(names, c.Name)
	}
	for name, blocks := range l.cacheImages {
		if m.Cache(name) != nil {
			continue
		}
		for _, b := range blocks {
			lr := b.LabelRanges[0]
			l.errorf(&lr, "Undefined cache", "cache_images %q adds images to a cache that no cache block defines.%s Define the cache with a cache %q { runtime = ..., root = ... } block, or remove this block.", name, suggest(name, names, ""), name)
		}
	}
}

// variableValues returns the value of every declared variable that has
// one.
func (l *loader) variableValues() map[string]cty.Value {
	out := make(map[string]cty.Value, len(l.vars))
	for name, v := range l.vars {
		if !v.failed && v.value != cty.NilVal {
			out[name] = v.value
		}
	}
	return out
}
