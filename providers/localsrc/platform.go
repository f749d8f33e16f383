package localsrc

import (
	"bytes"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/registry"
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
	return registry.PickPlatform(idx, h, want)
}

// checkPlatform fails when a single-platform image's config names another
// platform than want.
func checkPlatform(rawCfg []byte, h v1.Hash, want v1.Platform) error {
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return fmt.Errorf("parsing config of %s: %w", h, err)
	}
	if p := cf.Platform(); p != nil && p.OS != "" && p.Architecture != "" && !registry.PlatformMatches(want, *p) {
		return fmt.Errorf("image %s is for platform %s only, not %s", h, p.String(), want.String())
	}
	return nil
}
