package planner

import (
	"fmt"
	"time"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/spec"
)

// Item is one line of the inventory (cachectl list).
type Item struct {
	Cache   string `json:"cache"`
	Runtime string `json:"runtime"`
	// Node is set for a node-local cache's artifact on one node (Cache is
	// then the node_cache's name).
	Node     string    `json:"node,omitempty"`
	Address  string    `json:"address,omitempty"`
	Status   Status    `json:"status"`
	Ref      string    `json:"ref,omitempty"`
	Name     string    `json:"name"`
	Path     string    `json:"path"`
	Digest   string    `json:"digest,omitempty"`
	Manifest string    `json:"manifest,omitempty"`
	Platform string    `json:"platform,omitempty"`
	Size     int64     `json:"size"`
	Placed   time.Time `json:"placed,omitempty"`
	Imported bool      `json:"imported,omitempty"`
	// Adopted marks a file another tool made that cachectl adopt took
	// over; Unverified one whose digest came from the registry at adoption.
	Adopted    bool     `json:"adopted,omitempty"`
	Unverified bool     `json:"unverified,omitempty"`
	Flavors    []string `json:"flavors,omitempty"`
	Reasons    []string `json:"reasons,omitempty"`
}

// Status is an inventory line's state.
type Status string

// Inventory statuses.
const (
	StatusOK        Status = "ok"
	StatusMissing          = "missing"
	StatusDrifted          = "drifted"
	StatusOrphaned         = "orphaned"
	StatusUnmanaged        = "unmanaged"
)

// Inventory lists every artifact of the model's caches (or of one cache)
// with its status, from the index and a stat of each file (no network).
func Inventory(m *spec.Model, only string, builder func(spec.Runtime) BuilderInfo, verify bool) ([]Item, error) {
	var items []Item
	found := only == ""
	for _, c := range m.Caches {
		if only != "" && c.Name != only {
			continue
		}
		found = true
		st, err := cacheroot.Scan(c.Root, cacheroot.ScanOptions{Runtime: c.Runtime, Owner: OwnerUID(c), Verify: verify, Names: c.ArtifactNames()})
		if err != nil {
			return nil, fmt.Errorf("cache %q: %w", c.Name, err)
		}
		uid, gid, err := LookupOwner(c.Owner, c.Group)
		if err != nil {
			uid, gid = -1, -1
		}
		ci := CacheInput{Cache: c, State: st, UID: uid, GID: gid}
		if builder != nil {
			ci.Builder = builder(c.Runtime)
		}
		changes, _ := Diff(DiffInput{Caches: []CacheInput{ci}})
		flavors := map[string][]string{}
		for _, a := range c.Artifacts {
			flavors[a.Name] = a.Flavors
		}
		for _, ch := range changes {
			if ch.Kind == KindDirectory {
				continue // list is about artifacts; plan shows directory drift
			}
			it := Item{Cache: c.Name, Runtime: string(c.Runtime), Address: ch.Address, Ref: ch.Ref, Name: ch.Name, Path: ch.Path, Platform: ch.Platform, Flavors: flavors[ch.Name]}
			if e := ch.Before; e != nil {
				it.Digest, it.Manifest, it.Size, it.Placed, it.Imported = e.Digest, e.Manifest, e.Size, e.Placed, e.Imported
				it.Adopted, it.Unverified = e.Adopted != nil, e.Unverified()
			}
			for _, r := range ch.Reasons {
				it.Reasons = append(it.Reasons, r.Message)
			}
			switch ch.Action {
			case ActionNoop:
				it.Status = StatusOK
			case ActionCreate:
				it.Status = StatusMissing
			case ActionUpdate, ActionReplace:
				it.Status = StatusDrifted
			default:
				it.Status = StatusOrphaned
			}
			items = append(items, it)
		}
		for _, u := range st.Unmanaged {
			items = append(items, Item{Cache: c.Name, Runtime: string(c.Runtime), Status: StatusUnmanaged, Name: u.Name, Path: spec.JoinRoot(c.Root, u.Name), Size: u.Size, Placed: u.ModTime})
		}
	}
	if !found {
		return nil, fmt.Errorf("no cache named %q in the spec", only)
	}
	return items, nil
}
