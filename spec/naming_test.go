package spec

import (
	"strings"
	"testing"
)

func TestFileName(t *testing.T) {
	for _, tc := range []struct {
		rt   Runtime
		ref  string
		want string
	}{
		// Apptainer: the reference as written, one directory per "/".
		{RuntimeApptainer, "alpine:3.20", "alpine:3.20"},
		{RuntimeApptainer, "alpine", "alpine"},
		{RuntimeApptainer, "determinedai/environments:cuda-11.3-pytorch-1.10-tf-2.8-gpu-0.19.10", "determinedai/environments:cuda-11.3-pytorch-1.10-tf-2.8-gpu-0.19.10"},
		{RuntimeApptainer, "docker.io/library/alpine:3.20", "docker.io/library/alpine:3.20"},
		{RuntimeApptainer, "localhost:5000/a/b/c:1", "localhost:5000/a/b/c:1"},
		{RuntimeApptainer, "nvcr.io/nvidia/pytorch:24.01-py3", "nvcr.io/nvidia/pytorch:24.01-py3"},
		{RuntimeSingularity, "alpine@sha256:" + strings.Repeat("a", 64), "alpine@sha256:" + strings.Repeat("a", 64)},
		// Enroot: "/" and ":" become "+", plus .sqsh.
		{RuntimeEnroot, "determinedai/pytorch-ngc:0.38.1", "determinedai+pytorch-ngc+0.38.1.sqsh"},
		{RuntimeEnroot, "alpine", "alpine.sqsh"},
		{RuntimeEnroot, "127.0.0.1:5000/x/y:2", "127.0.0.1+5000+x+y+2.sqsh"},
		{RuntimeEnroot, "alpine:3.20@sha256:" + strings.Repeat("b", 64), "alpine+3.20@sha256+" + strings.Repeat("b", 64) + ".sqsh"},
		// Podman: the enroot rule without the suffix.
		{RuntimePodman, "docker.io/library/alpine:3.20", "docker.io+library+alpine+3.20"},
		{RuntimePodman, "localhost:5000/a/b/c:1", "localhost+5000+a+b+c+1"},
	} {
		got, err := FileName(tc.rt, tc.ref)
		if err != nil || got != tc.want {
			t.Errorf("FileName(%s, %q) = %q, %v; want %q", tc.rt, tc.ref, got, err, tc.want)
		}
	}
	if _, err := FileName("docker", "alpine"); err == nil {
		t.Error("FileName with an unknown runtime: no error")
	}
	// An enroot name must fit one path component.
	long := "registry.example.com/" + strings.Repeat("a", 200) + ":" + strings.Repeat("t", 100)
	if _, err := FileName(RuntimeEnroot, long); err == nil {
		t.Error("FileName of a 300-byte enroot name: no error")
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		rt   Runtime
		name string
		ok   bool
	}{
		{RuntimeApptainer, "cuda-11.3-pytorch-1.10-tf-2.8-gpu", true},
		{RuntimeApptainer, "team/tools/busybox", true},
		{RuntimeApptainer, "a:b", true},
		{RuntimeEnroot, "x.sqsh", true},
		{RuntimePodman, "busybox", true},
		{RuntimeApptainer, "", false},
		{RuntimeApptainer, "..", false},
		{RuntimeApptainer, ".", false},
		{RuntimeApptainer, "a/..", false},
		{RuntimeApptainer, "../a", false},
		{RuntimeApptainer, "a/../../b", false},
		{RuntimeApptainer, "/etc/passwd", false},
		{RuntimeApptainer, "a//b", false},
		{RuntimeApptainer, "a/", false},
		{RuntimeApptainer, `a\b`, false},
		{RuntimeApptainer, "a\nb", false},
		{RuntimeApptainer, ".cachectl/index", false},
		{RuntimeApptainer, ".cachectl", false},
		{RuntimeApptainer, strings.Repeat("x", 256), false},
		{RuntimePodman, "a:b", false},
	} {
		err := CheckName(tc.rt, tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CheckName(%s, %q) = %v; want ok=%v", tc.rt, tc.name, err, tc.ok)
		}
	}
}

func TestParseRef(t *testing.T) {
	digest := "sha256:" + strings.Repeat("0", 64)
	for _, tc := range []struct {
		ref                      string
		registry, repo, tag, dig string
		norm                     string
		err                      string
	}{
		{ref: "alpine", repo: "alpine", norm: "index.docker.io/library/alpine:latest"},
		{ref: "alpine:3.20", repo: "alpine", tag: "3.20", norm: "index.docker.io/library/alpine:3.20"},
		{ref: "docker.io/library/alpine:3.20", registry: "docker.io", repo: "library/alpine", tag: "3.20", norm: "index.docker.io/library/alpine:3.20"},
		{ref: "localhost:5000/a/b/c:1", registry: "localhost:5000", repo: "a/b/c", tag: "1", norm: "localhost:5000/a/b/c:1"},
		{ref: "localhost/a", registry: "localhost", repo: "a", norm: "localhost/a:latest"},
		{ref: "127.0.0.1:5000/x", registry: "127.0.0.1:5000", repo: "x", norm: "127.0.0.1:5000/x:latest"},
		{ref: "[::1]:5000/x:y", registry: "[::1]:5000", repo: "x", tag: "y", norm: "[::1]:5000/x:y"},
		{ref: "nvcr.io/nvidia/pytorch:24.01-py3", registry: "nvcr.io", repo: "nvidia/pytorch", tag: "24.01-py3", norm: "nvcr.io/nvidia/pytorch:24.01-py3"},
		{ref: "alpine@" + digest, repo: "alpine", dig: digest, norm: "index.docker.io/library/alpine@" + digest},
		{ref: "alpine:3.20@" + digest, repo: "alpine", tag: "3.20", dig: digest, norm: "index.docker.io/library/alpine@" + digest},
		{ref: "a_b__c-d---e/f.g:Tag_1.x-y", repo: "a_b__c-d---e/f.g", tag: "Tag_1.x-y", norm: "index.docker.io/a_b__c-d---e/f.g:Tag_1.x-y"},
		{ref: "a_b.c/x", err: "host name component"},
		{ref: "", err: "empty"},
		{ref: "Alpine", err: "lowercase"},
		{ref: "library/Alpine:1", err: "lowercase"},
		{ref: "alpine:", err: "tag after"},
		{ref: "alpine:-x", err: "invalid tag"},
		{ref: "alpine:" + strings.Repeat("t", 129), err: "invalid tag"},
		{ref: "alpine@sha256:abc", err: "64 hex digits"},
		{ref: "alpine@sha256:" + strings.Repeat("A", 64), err: "lowercase hex"},
		{ref: "alpine@md5:" + strings.Repeat("a", 32), err: "unsupported digest algorithm"},
		{ref: "alpine@", err: "invalid digest"},
		{ref: "localhost:abc/x", err: "port"},
		{ref: "host:0/x", err: "port"},
		{ref: "host:99999/x", err: "port"},
		{ref: "-bad.host/x", err: "host name component"},
		{ref: "a//b", err: "empty path component"},
		{ref: "a/../b", err: "invalid repository path component"},
		{ref: ".a", err: "invalid repository path component"},
		{ref: "a b", err: "white space"},
		{ref: " alpine", err: "white space"},
		{ref: "docker.io/", err: "empty path component"},
	} {
		info, err := ParseRef(tc.ref)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRef(%q) = %v; want an error containing %q", tc.ref, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRef(%q): %v", tc.ref, err)
			continue
		}
		if info.Registry != tc.registry || info.Repository != tc.repo || info.Tag != tc.tag || info.Digest != tc.dig || info.Parsed.Name() != tc.norm {
			t.Errorf("ParseRef(%q) = %+v (%s); want registry %q repo %q tag %q digest %q norm %q", tc.ref, *info, info.Parsed.Name(), tc.registry, tc.repo, tc.tag, tc.dig, tc.norm)
		}
	}
}

func TestJoinRootWithin(t *testing.T) {
	if got := JoinRoot("/shared/sif", "a/b:1"); got != "/shared/sif/a/b:1" {
		t.Errorf("JoinRoot = %q", got)
	}
	for _, tc := range []struct {
		root, p string
		want    bool
	}{
		{"/a", "/a/b", true}, {"/a", "/a", false}, {"/a", "/ab", false}, {"/a/", "/a/b/", true}, {"/", "/x", true},
	} {
		if got := Within(tc.root, tc.p); got != tc.want {
			t.Errorf("Within(%q, %q) = %v", tc.root, tc.p, got)
		}
	}
}

func TestRefGrammarHelpers(t *testing.T) {
	for s, want := range map[string]bool{
		"a": true, "a.b": true, "a_b": true, "a__b": true, "a---b": true, "a0-9": true,
		"": false, "a___b": false, "a..b": false, ".a": false, "a.": false, "-a": false, "a-": false, "A": false, "a_-b": false,
	} {
		if got := validPathComponent(s); got != want {
			t.Errorf("validPathComponent(%q) = %v", s, got)
		}
	}
	for s, want := range map[string]bool{
		"1": true, "_x": true, "v1.2-rc_3": true, "Latest": true, strings.Repeat("a", 128): true,
		"": false, ".x": false, "-x": false, "a/b": false, "a+b": false, strings.Repeat("a", 129): false,
	} {
		if got := validTag(s); got != want {
			t.Errorf("validTag(%q) = %v", s, got)
		}
	}
}
