// Package planner compares the spec with the actual state of each cache
// root (planner/cacheroot) and the images' sources (providers/source), and
// produces a plan: data, actions with typed reasons, saved and read as
// JSON. planner/apply carries a plan out. What the
// spec's references mean to the providers (the name an image records,
// the local sources as localsrc reads them) is worked out here, so that
// neither spec nor the providers import the other.
package planner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/spec"
)

// FormatVersion is the version of the JSON plan format (plan -json, show
// -json and saved plan files). Minor versions add fields only.
const FormatVersion = "1.1"

// Action is what apply does to one artifact.
type Action string

// The actions of a plan. Orphan is reported only: a managed artifact that
// left the spec of a cache without prune.
const (
	ActionCreate  Action = "create"
	ActionUpdate  Action = "update"
	ActionReplace Action = "replace"
	ActionDelete  Action = "delete"
	ActionNoop    Action = "no-op"
	ActionOrphan  Action = "orphan"
)

// Symbol is the marker the text rendering uses for an action.
func (a Action) Symbol() string {
	switch a {
	case ActionCreate:
		return "+"
	case ActionUpdate:
		return "~"
	case ActionReplace:
		return "-/+"
	case ActionDelete:
		return "-"
	case ActionOrphan:
		return "?"
	}
	return " "
}

// Kind is what a change is about.
type Kind string

// The kinds of change.
const (
	KindArtifact  Kind = "artifact"
	KindDirectory Kind = "directory"
)

// ReasonCode says why a change is planned, in a word that tools can match.
type ReasonCode string

// The reason codes (docs/plan-format.md lists them).
const (
	ReasonMissing         ReasonCode = "missing"
	ReasonFileMissing                = "file_missing"
	ReasonFileChanged                = "file_changed"
	ReasonFileReplaced               = "file_replaced"
	ReasonCorrupt                    = "corrupt"
	ReasonNotRegular                 = "not_regular"
	ReasonTagMoved                   = "tag_moved"
	ReasonSourceChanged              = "source_changed"
	ReasonRefChanged                 = "ref_changed"
	ReasonPlatformChanged            = "platform_changed"
	ReasonBuilderChanged             = "builder_changed"
	ReasonModeDrift                  = "mode_drift"
	ReasonOwnerDrift                 = "owner_drift"
	ReasonGroupDrift                 = "group_drift"
	ReasonLeftSpec                   = "left_spec"
	ReasonReplaceAsked               = "replace_requested"
)

// Reason explains why an action is planned.
type Reason struct {
	Code    ReasonCode `json:"code"`
	Message string     `json:"message"`
}

// Change is the planned action for one artifact.
type Change struct {
	Address string `json:"address"`
	// Kind is KindArtifact, or KindDirectory for a directory cachectl
	// created (only ever updated: mode and owner).
	Kind    Kind     `json:"kind"`
	Cache   string   `json:"cache"`
	Runtime string   `json:"runtime"`
	Ref     string   `json:"ref"`
	Name    string   `json:"name"`
	Path    string   `json:"path"`
	Action  Action   `json:"action"`
	Reasons []Reason `json:"reasons,omitempty"`
	// Platform os/arch[/variant] the artifact is built for.
	Platform string `json:"platform,omitempty"`
	// Digest is the resolved digest of the reference, Manifest the platform
	// manifest that apply will pull and build ("" when unknown: a create
	// planned with -refresh=false is resolved at apply).
	Digest   string `json:"digest,omitempty"`
	Manifest string `json:"manifest,omitempty"`
	// Desired mode and ownership (-1 = not enforced).
	Mode  spec.Mode `json:"mode"`
	UID   int       `json:"uid"`
	GID   int       `json:"gid"`
	Owner string    `json:"owner,omitempty"`
	Group string    `json:"group,omitempty"`
	// DirMode for the directories apply creates.
	DirMode spec.Mode `json:"dir_mode"`
	// Compression for squashfs formats ("" = default).
	Compression string `json:"compression,omitempty"`
	// Before is the index entry of the artifact as it is.
	Before *cacheroot.Entry `json:"before,omitempty"`
	// DownloadBytes is what apply must fetch for this change (blobs already
	// in the store excluded); WriteBytes bounds the size of the file it
	// writes (WriteBound: the unpacked layers plus the format's metadata;
	// the index's size for a rebuild planned offline).
	DownloadBytes int64 `json:"download_bytes"`
	WriteBytes    int64 `json:"write_bytes"`
}

// RootPlan is the state of one cache root when the plan was made.
type RootPlan struct {
	Cache       string                    `json:"cache"`
	Runtime     string                    `json:"runtime"`
	Root        string                    `json:"root"`
	Exists      bool                      `json:"exists"`
	Fingerprint string                    `json:"fingerprint"`
	Prune       bool                      `json:"prune"`
	DirMode     spec.Mode                 `json:"dir_mode"`
	UID         int                       `json:"uid"`
	GID         int                       `json:"gid"`
	Unmanaged   []cacheroot.UnmanagedFile `json:"unmanaged,omitempty"`
	FreeBytes   int64                     `json:"free_bytes,omitempty"`
	WriteBytes  int64                     `json:"write_bytes"`
	// Rehashed is the scan's RootState.Rehashed: files whose change time
	// alone had moved and whose content is still what was placed. An
	// apply that planned under the root's lock records them (apply.
	// RecordChangeTimes); not saved with the plan.
	Rehashed map[string]cacheroot.FileState `json:"-"`
}

// Summary counts a plan's changes.
type Summary struct {
	Add           int   `json:"add"`
	Change        int   `json:"change"`
	Destroy       int   `json:"destroy"`
	Orphaned      int   `json:"orphaned"`
	Unmanaged     int   `json:"unmanaged"`
	DownloadBytes int64 `json:"download_bytes"`
	WriteBytes    int64 `json:"write_bytes"`
}

// Plan is the result of planning: data, rendered elsewhere.
type Plan struct {
	FormatVersion   string    `json:"format_version"`
	CachectlVersion string    `json:"cachectl_version,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	SpecFiles       []string  `json:"spec_files,omitempty"`
	// SpecDigest is SpecDigest of the model the plan was made from: apply
	// of a saved plan refuses it when the spec given now differs.
	SpecDigest string     `json:"spec_digest,omitempty"`
	Refreshed  bool       `json:"refreshed"`
	Targets    []string   `json:"targets,omitempty"`
	Roots      []RootPlan `json:"roots"`
	// Changes in cache order, then by name. No-ops are included.
	Changes []Change `json:"changes"`
	Summary Summary  `json:"summary"`
}

// HasChanges reports whether applying the plan would change anything.
func (p *Plan) HasChanges() bool {
	return p.Summary.Add+p.Summary.Change+p.Summary.Destroy > 0
}

// Progressive is the action as a verb in progress ("creating"), for
// progress lines.
func (a Action) Progressive() string {
	switch a {
	case ActionCreate:
		return "creating"
	case ActionUpdate:
		return "updating"
	case ActionReplace:
		return "replacing"
	case ActionDelete:
		return "deleting"
	}
	return string(a)
}

// IsChange reports whether an action changes the cache.
func (a Action) IsChange() bool {
	switch a {
	case ActionCreate, ActionUpdate, ActionReplace, ActionDelete:
		return true
	}
	return false
}

// Count adds one change to the counters (a replace adds and destroys).
func (s *Summary) Count(a Action) {
	switch a {
	case ActionCreate:
		s.Add++
	case ActionReplace:
		s.Add++
		s.Destroy++
	case ActionUpdate:
		s.Change++
	case ActionDelete:
		s.Destroy++
	case ActionOrphan:
		s.Orphaned++
	}
}

// Summarize computes the plan's Summary from its changes and roots.
func (p *Plan) Summarize() {
	s := Summary{}
	manifests := map[string]bool{}
	for _, c := range p.Changes {
		s.Count(c.Action)
		if c.Action == ActionCreate || c.Action == ActionReplace {
			s.WriteBytes += c.WriteBytes
			if c.Manifest == "" || !manifests[c.Manifest] {
				s.DownloadBytes += c.DownloadBytes
				manifests[c.Manifest] = true
			}
		}
	}
	for _, r := range p.Roots {
		s.Unmanaged += len(r.Unmanaged)
	}
	p.Summary = s
}

// Root returns the plan's record of a cache root.
func (p *Plan) Root(cache string) *RootPlan {
	for i := range p.Roots {
		if p.Roots[i].Cache == cache {
			return &p.Roots[i]
		}
	}
	return nil
}

// WriteFile saves the plan as JSON (the same format as plan -json).
func (p *Plan) WriteFile(path string) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	// A new file (0600) renamed into place: an existing file or symlink at
	// path is replaced, never written through.
	return renameio.WriteFile(path, append(b, '\n'), 0o600, renameio.WithStaticPermissions(0o600))
}

// maxPlanSize bounds a plan file cachectl reads.
const maxPlanSize = 256 << 20

// ErrUntrustedPlan is wrapped by ReadPlanFile's refusal of a plan file that
// others could have edited; ShowPlanFile reads such a file anyway.
var ErrUntrustedPlan = errors.New("the plan file could have been edited by another user")

// ReadPlanFile loads a plan saved with plan -out, for apply. A plan is
// input to validate, not instructions: a file that group or others can
// write, or that another user owns, is refused (wrapping ErrUntrustedPlan),
// and apply checks every change against the spec (CheckPlanSpec,
// CheckPlanChanges) before it changes anything.
func ReadPlanFile(path string) (*Plan, error) { return readPlanFile(path, true) }

// ShowPlanFile loads a saved plan for reading only (cachectl show): an
// untrusted file is read too, and why it is untrusted returned as warning.
func ShowPlanFile(path string) (p *Plan, warning error, err error) {
	p, err = readPlanFile(path, false)
	if err != nil {
		return nil, nil, err
	}
	if fi, err := os.Stat(path); err == nil {
		warning = untrusted(path, fi)
	}
	return p, warning, nil
}

// untrusted says why a plan file could have been edited by someone else
// than root or the running user (nil: it could not).
func untrusted(path string, fi os.FileInfo) error {
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %04o), so anyone there could have edited it; review it (cachectl show %s), then chmod go-w %s", ErrUntrustedPlan, path, fi.Mode().Perm(), path, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s belongs to uid %d, not to root or to you (uid %d), so its owner could have edited it; review it (cachectl show %s), then take it over (chown $(id -u) %s) or make the plan again", ErrUntrustedPlan, path, st.Uid, os.Geteuid(), path, path)
	}
	return nil
}

func readPlanFile(path string, strict bool) (*Plan, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read plan: %s is not a regular file", path)
	}
	if err := untrusted(path, fi); err != nil && strict {
		return nil, fmt.Errorf("refusing plan: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPlanSize+1))
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	if len(b) > maxPlanSize {
		return nil, fmt.Errorf("%s is not a cachectl plan file: larger than %d MiB", path, maxPlanSize>>20)
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s is not a cachectl plan file: %s", path, cacheroot.JSONProblem(err))
	}
	if p.FormatVersion == "" || p.FormatVersion[0] != FormatVersion[0] {
		return nil, fmt.Errorf("%s has plan format %q; this cachectl reads %s", path, p.FormatVersion, FormatVersion)
	}
	return &p, nil
}

// CacheSummary counts a plan's changes for one cache.
type CacheSummary struct {
	Cache, Runtime, Root string
	InSync               int
	Summary              // counts of this cache's changes (bytes left zero)
}

// Drifted reports whether the cache differs from the spec.
func (s CacheSummary) Drifted() bool { return s.Add+s.Change+s.Destroy > 0 }

// PerCache summarises a plan per cache, in the plan's root order.
func (p *Plan) PerCache() []CacheSummary {
	out := make([]CacheSummary, 0, len(p.Roots))
	idx := map[string]int{}
	for _, r := range p.Roots {
		idx[r.Cache] = len(out)
		out = append(out, CacheSummary{Cache: r.Cache, Runtime: r.Runtime, Root: r.Root, Summary: Summary{Unmanaged: len(r.Unmanaged)}})
	}
	for _, ch := range p.Changes {
		i, ok := idx[ch.Cache]
		if !ok {
			continue
		}
		s := &out[i]
		if ch.Action == ActionNoop {
			s.InSync++
		}
		s.Count(ch.Action)
	}
	return out
}
