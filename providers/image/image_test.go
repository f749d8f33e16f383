package image

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestNormalizedName(t *testing.T) {
	for ref, want := range map[string]string{
		"alpine:3.20":                      "docker.io/library/alpine:3.20",
		"alpine":                           "docker.io/library/alpine:latest",
		"docker.io/library/alpine:3.20":    "docker.io/library/alpine:3.20",
		"index.docker.io/x/y:1":            "docker.io/x/y:1",
		"localhost:5000/x:1":               "localhost:5000/x:1",
		"nvcr.io/nvidia/pytorch:24.01-py3": "nvcr.io/nvidia/pytorch:24.01-py3",
		"alpine@sha256:0123456789012345678901234567890123456789012345678901234567890123": "docker.io/library/alpine@sha256:0123456789012345678901234567890123456789012345678901234567890123",
		"Not A Reference": "Not A Reference",
	} {
		if got := NormalizedName(ref); got != want {
			t.Errorf("NormalizedName(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestPlatform(t *testing.T) {
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
	v8 := v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	if got := PlatformString(v8); got != "linux/arm64/v8" {
		t.Errorf("PlatformString = %q", got)
	}
	if got := PlatformString(v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0"}); got != "windows/amd64" {
		t.Errorf("PlatformString with an OS version = %q", got)
	}
	if !PlatformMatches(v8, arm64) || !PlatformMatches(arm64, v8) || PlatformMatches(v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v9"}, arm64) {
		t.Error("arm64 without a variant is v8")
	}
	idx := &v1.IndexManifest{Manifests: []v1.Descriptor{
		{Digest: v1.Hash{Algorithm: "sha256", Hex: "aa"}, Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"}},
		{Digest: v1.Hash{Algorithm: "sha256", Hex: "bb"}, Platform: &arm64},
		{Digest: v1.Hash{Algorithm: "sha256", Hex: "cc"}},
	}}
	d, err := PickPlatform(idx, v1.Hash{}, v8)
	if err != nil || d.Digest.Hex != "bb" {
		t.Errorf("PickPlatform = %v, %v", d.Digest, err)
	}
	_, err = PickPlatform(idx, v1.Hash{}, v1.Platform{OS: "linux", Architecture: "amd64"})
	if !IsPlatformMissing(err) || !strings.HasSuffix(err.Error(), "available: linux/arm64") {
		t.Errorf("PickPlatform of a missing platform: %v", err)
	}
	cfg := []byte(`{"os":"linux","architecture":"arm64","rootfs":{"type":"layers"}}`)
	if p, err := ConfigPlatform(cfg, v1.Hash{}, v8); err != nil || p == nil || p.Architecture != "arm64" {
		t.Errorf("ConfigPlatform = %v, %v", p, err)
	}
	if _, err := ConfigPlatform(cfg, v1.Hash{}, v1.Platform{OS: "linux", Architecture: "amd64"}); err == nil {
		t.Error("ConfigPlatform accepts another platform")
	}
	if p, err := ConfigPlatform([]byte(`{"rootfs":{"type":"layers"}}`), v1.Hash{}, v8); p != nil || err != nil {
		t.Errorf("a config without a platform: %v, %v", p, err)
	}
}
