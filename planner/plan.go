// Package planner compares the spec with the actual state of each cache
// root, produces a plan (data: actions with reasons), renders it, and
// applies it.
package planner

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// FormatVersion is the version of the JSON plan format (plan -json, show
// -json and saved plan files). Minor versions add fields only.
const FormatVersion = "1.0"

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

// Reason codes.
const (
	ReasonMissing         = "missing"
	ReasonFileMissing     = "file_missing"
	ReasonFileChanged     = "file_changed"
	ReasonCorrupt         = "corrupt"
	ReasonNotRegular      = "not_regular"
	ReasonTagMoved        = "tag_moved"
	ReasonSourceChanged   = "source_changed"
	ReasonRefChanged      = "ref_changed"
	ReasonPlatformChanged = "platform_changed"
	ReasonBuilderChanged  = "builder_changed"
	ReasonModeDrift       = "mode_drift"
	ReasonOwnerDrift      = "owner_drift"
	ReasonGroupDrift      = "group_drift"
	ReasonLeftSpec        = "left_spec"
	ReasonReplaceAsked    = "replace_requested"
)

// Reason explains why an action is planned.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Change is the planned action for one artifact.
type Change struct {
	Address string `json:"address"`
	// Kind is "artifact", or "directory" for a directory cachectl created
	// (only ever updated: mode and owner).
	Kind    string   `json:"kind"`
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
	Mode  string `json:"mode"`
	UID   int    `json:"uid"`
	GID   int    `json:"gid"`
	Owner string `json:"owner,omitempty"`
	Group string `json:"group,omitempty"`
	// DirMode for the directories apply creates.
	DirMode string `json:"dir_mode"`
	// Compression for squashfs formats ("" = default).
	Compression string `json:"compression,omitempty"`
	// Before is the index entry of the artifact as it is.
	Before *Entry `json:"before,omitempty"`
	// DownloadBytes is what apply must fetch for this change (blobs already
	// in the store excluded); WriteBytes bounds the size of the file it
	// writes (WriteBound: the unpacked layers plus the format's metadata;
	// the index's size for a rebuild planned offline).
	DownloadBytes int64 `json:"download_bytes"`
	WriteBytes    int64 `json:"write_bytes"`
}

// RootPlan is the state of one cache root when the plan was made.
type RootPlan struct {
	Cache       string          `json:"cache"`
	Runtime     string          `json:"runtime"`
	Root        string          `json:"root"`
	Exists      bool            `json:"exists"`
	Fingerprint string          `json:"fingerprint"`
	Prune       bool            `json:"prune"`
	DirMode     string          `json:"dir_mode"`
	UID         int             `json:"uid"`
	GID         int             `json:"gid"`
	Unmanaged   []UnmanagedFile `json:"unmanaged,omitempty"`
	FreeBytes   int64           `json:"free_bytes,omitempty"`
	WriteBytes  int64           `json:"write_bytes"`
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
	FormatVersion   string     `json:"format_version"`
	CachectlVersion string     `json:"cachectl_version,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	SpecFiles       []string   `json:"spec_files,omitempty"`
	Refreshed       bool       `json:"refreshed"`
	Targets         []string   `json:"targets,omitempty"`
	Roots           []RootPlan `json:"roots"`
	// Changes in cache order, then by name. No-ops are included.
	Changes []Change `json:"changes"`
	Summary Summary  `json:"summary"`
}

// HasChanges reports whether applying the plan would change anything.
func (p *Plan) HasChanges() bool {
	return p.Summary.Add+p.Summary.Change+p.Summary.Destroy > 0
}

// IsChange reports whether an action changes the cache.
func (a Action) IsChange() bool {
	switch a {
	case ActionCreate, ActionUpdate, ActionReplace, ActionDelete:
		return true
	}
	return false
}

// count adds one change to the counters (a replace adds and destroys).
func (s *Summary) count(a Action) {
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

func (p *Plan) summarize() {
	s := Summary{}
	manifests := map[string]bool{}
	for _, c := range p.Changes {
		s.count(c.Action)
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
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// ReadPlanFile loads a plan saved with plan -out.
func ReadPlanFile(path string) (*Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s is not a cachectl plan file: %w", path, err)
	}
	if p.FormatVersion == "" || p.FormatVersion[0] != FormatVersion[0] {
		return nil, fmt.Errorf("%s has plan format %q; this cachectl reads %s", path, p.FormatVersion, FormatVersion)
	}
	return &p, nil
}
