package localsrc

import (
	"bytes"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/image"
)

// pickPlatform returns the entry of the index raw for platform, with the
// registry's rules (image.PickPlatform).
func pickPlatform(raw []byte, h v1.Hash, want v1.Platform) (v1.Descriptor, error) {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("parsing index %s: %w", h, err)
	}
	return image.PickPlatform(idx, h, want)
}

// checkPlatform fails when a single-platform image's config names another
// platform than want (image.ConfigPlatform).
func checkPlatform(rawCfg []byte, h v1.Hash, want v1.Platform) error {
	_, err := image.ConfigPlatform(rawCfg, h, want)
	return err
}
