package image

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// PlatformString formats a platform as os/arch[/variant] ("linux/amd64",
// "linux/arm64/v8"): the form plans, indexes and bundles record.
// Unlike v1.Platform.String it leaves out the OS version and features.
func PlatformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// PlatformMatches reports whether have satisfies want: same OS and
// architecture, and the same variant when want names one (arm64's missing
// variant means v8, as in containerd's platforms package).
func PlatformMatches(want, have v1.Platform) bool {
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

// PickPlatform returns the entry of the image index idx (whose digest is
// digest) for the wanted platform. Entries without a platform or for
// "unknown" (attestations) are skipped; a wanted variant must match
// (arm64's missing variant is v8). When none matches, the error lists the
// platforms the index has (IsPlatformMissing reports it).
func PickPlatform(idx *v1.IndexManifest, digest v1.Hash, want v1.Platform) (v1.Descriptor, error) {
	var avail []string
	seen := map[string]bool{}
	for _, d := range idx.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" {
			continue // attestations and the like
		}
		if PlatformMatches(want, *d.Platform) {
			return d, nil
		}
		if s := d.Platform.String(); !seen[s] {
			seen[s] = true
			avail = append(avail, s)
		}
	}
	sort.Strings(avail)
	return v1.Descriptor{}, &errPlatform{want: want, digest: digest, available: avail}
}

// errPlatform reports a platform missing from an index.
type errPlatform struct {
	want      v1.Platform
	digest    v1.Hash
	available []string
}

func (e *errPlatform) Error() string {
	if len(e.available) == 0 {
		return fmt.Sprintf("no image for platform %s in index %s (the index lists no platforms)", e.want, e.digest)
	}
	return fmt.Sprintf("no image for platform %s in index %s; available: %s", e.want, e.digest, strings.Join(e.available, ", "))
}

// IsPlatformMissing reports whether err says an index lacks the platform
// (PickPlatform).
func IsPlatformMissing(err error) bool {
	var pe *errPlatform
	return errors.As(err, &pe)
}

// ConfigPlatform parses the config rawCfg of the single-platform image
// manifest h and returns the platform it names (nil when it names no OS
// and architecture). It fails when that platform does not satisfy want
// (PlatformMatches).
func ConfigPlatform(rawCfg []byte, h v1.Hash, want v1.Platform) (*v1.Platform, error) {
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("parsing config of %s: %w", h, err)
	}
	p := cf.Platform()
	if p == nil || p.OS == "" || p.Architecture == "" {
		return nil, nil
	}
	if !PlatformMatches(want, *p) {
		return p, fmt.Errorf("image %s is for platform %s only, not %s", h, p, want)
	}
	return p, nil
}
