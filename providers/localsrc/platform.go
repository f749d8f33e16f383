package localsrc

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// pickPlatform returns the entry of the index raw for platform, with the
// registry's rules: entries without a platform or for "unknown"
// (attestations) are skipped; a wanted variant must match (arm64's missing
// variant is v8).
func pickPlatform(raw []byte, h v1.Hash, want v1.Platform) (v1.Descriptor, error) {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("parsing index %s: %w", h, err)
	}
	var avail []string
	seen := map[string]bool{}
	for _, d := range idx.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" {
			continue
		}
		if platformMatches(want, *d.Platform) {
			return d, nil
		}
		if s := d.Platform.String(); !seen[s] {
			seen[s] = true
			avail = append(avail, s)
		}
	}
	sort.Strings(avail)
	if len(avail) == 0 {
		return v1.Descriptor{}, fmt.Errorf("no image for platform %s in index %s (the index lists no platforms)", want.String(), h)
	}
	return v1.Descriptor{}, fmt.Errorf("no image for platform %s in index %s; available: %s", want.String(), h, strings.Join(avail, ", "))
}

func platformMatches(want, have v1.Platform) bool {
	if want.OS != have.OS || want.Architecture != have.Architecture {
		return false
	}
	if want.Variant == "" {
		return true
	}
	return normVariant(want) == normVariant(have)
}

func normVariant(p v1.Platform) string {
	if p.Variant == "" && p.Architecture == "arm64" {
		return "v8"
	}
	return p.Variant
}

// checkPlatform fails when a single-platform image's config names another
// platform than want.
func checkPlatform(rawCfg []byte, h v1.Hash, want v1.Platform) error {
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return fmt.Errorf("parsing config of %s: %w", h, err)
	}
	if p := cf.Platform(); p != nil && p.OS != "" && p.Architecture != "" && !platformMatches(want, *p) {
		return fmt.Errorf("image %s is for platform %s only, not %s", h, p.String(), want.String())
	}
	return nil
}
