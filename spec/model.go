// Package spec reads cachectl's HCL spec: it loads the files (Load,
// LoadSources) with variables, locals, functions and flavors, checks every
// block and reference (ParseRef, ParseLocalRef) with diagnostics that give
// file:line:column, and returns the evaluated Model: the caches, each with
// the artifacts it should hold and where they land (FileName), plus the
// registry settings. Format writes the canonical formatting. It names
// images and files but knows no image format: the providers do not import
// it, and what a reference means to them (its normalized name, a local
// source's path) is derived in planner.
package spec

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Model is the result of loading a spec: fully evaluated and validated.
// Callers must treat it as immutable.
type Model struct {
	// Files are the spec files that were read, in the order they were read.
	Files []string
	// Store is the blob store directory from the spec ("" when unset; the
	// CLI then applies its --store flag or the documented default).
	Store string
	// Sources are bundles (cachectl bundle) that plan and apply read images
	// from instead of registries, from cachectl { source }; the first is
	// looked up, the others supply blobs of an incremental one. The CLI's
	// --source replaces them.
	Sources []string
	// Executor builds apply's artifacts: "" or "local" (this process),
	// "slurm" (cachectl { executor }; the CLI's --executor replaces it).
	Executor string
	// Slurm holds cachectl { slurm { } }.
	Slurm SlurmSettings
	// NodeCaches are the node-local tiers, in declaration order.
	NodeCaches []*NodeCache
	// Registries holds the per-registry settings, sorted by Host.
	Registries []*Registry
	// Caches in declaration order.
	Caches []*Cache
	// Flavors in declaration order.
	Flavors []*Flavor
	// Variables holds the value of each declared variable (after defaults,
	// the environment, -var-file and -var).
	Variables map[string]cty.Value
}

// Cache returns the cache with the given name, or nil.
func (m *Model) Cache(name string) *Cache {
	for _, c := range m.Caches {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Registry returns the settings for a registry host, or nil.
func (m *Model) Registry(host string) *Registry {
	for _, r := range m.Registries {
		if r.Host == host {
			return r
		}
	}
	return nil
}

// Flavor is a named list of images (cpu, cuda, rocm, ...).
type Flavor struct {
	Name   string
	Images []string
	Range  hcl.Range
}

// Registry holds the settings of one registry host.
type Registry struct {
	// Host as written in the block label, e.g. "docker.io" or "127.0.0.1:5000".
	Host string
	// Mirror is a host[:port] tried before Host ("" = none).
	Mirror string
	// CAFile is a PEM bundle added to the system roots ("" = none).
	CAFile string
	// AuthFile is a Docker config.json style credentials file ("" = default keychain).
	AuthFile string
	// Insecure allows plain HTTP and skips TLS verification.
	Insecure bool
	// MaxConcurrency bounds concurrent requests to this host (0 = default).
	MaxConcurrency int
	// Timeout bounds the wait for a response and any silence while a body
	// is read (0 = the client's default, 60 s).
	Timeout time.Duration
	// RetryTime bounds how long one request, or one blob download without
	// progress, is retried before cachectl gives up (0 = default, 2 min).
	RetryTime time.Duration
	Range     hcl.Range
}

// Runtime names a container runtime and so the artifact format.
type Runtime string

// The runtimes cachectl builds artifacts for.
const (
	// RuntimeApptainer caches hold the SIF files Apptainer 1.5.3 builds.
	RuntimeApptainer Runtime = "apptainer"
	// RuntimeSingularity caches hold the SIF files SingularityCE 4.5.1
	// builds (its own action scripts, prompt and labels).
	RuntimeSingularity Runtime = "singularity"
	RuntimeEnroot      Runtime = "enroot"
	RuntimePodman      Runtime = "podman"
)

// Runtimes lists the valid runtime names.
var Runtimes = []Runtime{RuntimeApptainer, RuntimeSingularity, RuntimeEnroot, RuntimePodman}

// Format returns the artifact format a runtime reads: "sif", "sqsh" or "oci-archive".
func (r Runtime) Format() string {
	switch r {
	case RuntimeApptainer, RuntimeSingularity:
		return "sif"
	case RuntimeEnroot:
		return "sqsh"
	case RuntimePodman:
		return "oci-archive"
	}
	return ""
}

// Mode is a set of Unix permission bits, 0 to 07777 (setuid, setgid, sticky included).
type Mode uint32

// String renders the mode as four octal digits ("0644", "2775").
func (m Mode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// MarshalText renders the mode as four octal digits (plans keep modes as
// "0644" strings).
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses an octal mode string.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// FileMode converts to an os.FileMode with the special bits mapped.
func (m Mode) FileMode() os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// ModeOf converts an os.FileMode's permission and special bits to a Mode.
func ModeOf(fm os.FileMode) Mode {
	m := Mode(fm.Perm())
	if fm&os.ModeSetuid != 0 {
		m |= 0o4000
	}
	if fm&os.ModeSetgid != 0 {
		m |= 0o2000
	}
	if fm&os.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

// ParseMode parses an octal mode string such as "0644" or "2775".
func ParseMode(s string) (Mode, error) {
	if s == "" {
		return 0, fmt.Errorf("empty mode")
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not an octal number", s)
	}
	if v > 0o7777 {
		return 0, fmt.Errorf("%q exceeds 07777", s)
	}
	return Mode(v), nil
}

// Defaults for cache settings the spec leaves out.
const (
	DefaultFileMode Mode = 0o644
	DefaultDirMode  Mode = 0o755
)

// DefaultPlatform is used when a cache sets no platform.
var DefaultPlatform = v1.Platform{OS: "linux", Architecture: "amd64"}

// Cache is one cache root and the artifacts it should hold.
type Cache struct {
	Name    string
	Runtime Runtime
	// Root is absolute and clean.
	Root string
	// Platform of the images in this cache unless an image overrides it.
	Platform v1.Platform
	// Owner and Group are user/group names or numeric ids ("" = leave as created).
	Owner, Group string
	FileMode     Mode
	DirMode      Mode
	// Prune deletes managed artifacts that left the spec.
	Prune bool
	// Compression is the squashfs compressor ("" = the runtime's default:
	// gzip for apptainer/singularity, lzo for enroot). Unused for podman.
	Compression string
	// Flavors named by the cache, in order.
	Flavors []string
	// Artifacts sorted by Name.
	Artifacts []*Artifact
	Range     hcl.Range
}

// Artifact is one file a cache should hold.
type Artifact struct {
	// Cache is the name of the cache holding it.
	Cache string
	// Ref is the image reference exactly as written in the spec (after evaluation).
	Ref string
	// Parsed is Ref parsed by go-containerregistry (normalized: docker.io/library/...).
	// It is nil exactly for local sources (see Local).
	Parsed name.Reference
	// Local is the local source the image comes from (oci-layout,
	// oci-archive, docker-archive), with its path resolved against the
	// directory of the spec file; nil for registry references.
	Local *LocalRef
	// Name is the path of the file relative to the cache root, slash separated.
	Name string
	// Path is the absolute path of the file: Root joined with Name.
	Path string
	// Platform to pick from an image index.
	Platform v1.Platform
	// Flavors that brought this image into the cache (empty for cache-only images).
	Flavors []string
	// Range of the expression that named the image.
	Range hcl.Range
}

// ArtifactNames returns the file names of the cache's artifacts, relative
// to its root.
func (c *Cache) ArtifactNames() []string {
	names := make([]string, len(c.Artifacts))
	for i, a := range c.Artifacts {
		names[i] = a.Name
	}
	return names
}

// Address identifies the artifact in plans and -target: cache.NAME["REF"].
func (a *Artifact) Address() string { return Address(a.Cache, a.Ref) }

// Address formats an artifact address from a cache name and a reference.
func Address(cache, ref string) string { return fmt.Sprintf("cache.%s[%q]", cache, ref) }
