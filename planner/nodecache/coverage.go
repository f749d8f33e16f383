package nodecache

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/spec"
)

// Coverage is how well one node's local tier matches what it should hold:
// the artifacts of its cache that the node cache wants and that the
// shared cache holds (their sha256 as the shared index records it now).
type Coverage struct {
	NodeCache string `json:"node_cache"`
	Node      string `json:"node"`
	Root      string `json:"root"`
	// OK, Missing and Stale (held with another sha256: the shared artifact
	// was rebuilt since) count the wanted artifacts; Extra counts held
	// unwanted ones (kept until max_size needs the space).
	OK      int      `json:"ok"`
	Missing []string `json:"missing,omitempty"`
	Stale   []string `json:"stale,omitempty"`
	Extra   int      `json:"extra"`
	// Artifacts has one line per wanted artifact: reference, status and
	// local path.
	Artifacts []ArtifactCoverage `json:"artifacts"`
	Size      int64              `json:"size"`
	FreeBytes int64              `json:"free_bytes"`
	Staged    time.Time          `json:"staged"`
	Errors    []string           `json:"errors,omitempty"`
}

// ArtifactCoverage is one wanted artifact on one node.
type ArtifactCoverage struct {
	Ref    string `json:"ref"`
	Name   string `json:"name"`
	Path   string `json:"path"`
	Status string `json:"status"` // ok, missing, stale
}

// Drifted reports whether the node lacks or has stale wanted artifacts,
// or its last stage had errors.
func (c Coverage) Drifted() bool { return len(c.Missing)+len(c.Stale)+len(c.Errors) > 0 }

// String is the one-line summary: "n17: 2 missing, 1 stale".
func (c Coverage) String() string {
	var parts []string
	if n := len(c.Missing); n > 0 {
		parts = append(parts, fmt.Sprintf("%d missing", n))
	}
	if n := len(c.Stale); n > 0 {
		parts = append(parts, fmt.Sprintf("%d stale", n))
	}
	if n := len(c.Errors); n > 0 {
		parts = append(parts, fmt.Sprintf("%d error(s): %s", n, strings.Join(c.Errors, "; ")))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%s: ok (%d)", c.Node, c.OK)
	}
	return c.Node + ": " + strings.Join(parts, ", ")
}

// Coverages reads the recorded state of every node of the model's node
// caches (only is a node cache name, "" for all) and compares it with the
// shared caches' indexes. Nodes never staged do not appear. No network,
// no Slurm.
func Coverages(m *spec.Model, only string) ([]Coverage, error) {
	var out []Coverage
	for _, nc := range m.NodeCaches {
		if only != "" && nc.Name != only {
			continue
		}
		from := m.Cache(nc.From)
		rs, err := cacheroot.Scan(from.Root, cacheroot.ScanOptions{Runtime: from.Runtime, SkipUnmanaged: true})
		if err != nil {
			return nil, fmt.Errorf("node cache %q: %w", nc.Name, err)
		}
		states, err := ReadStates(from.Root, nc.Name)
		if err != nil {
			return nil, fmt.Errorf("node cache %q: %w", nc.Name, err)
		}
		var nodes []string
		for n := range states {
			nodes = append(nodes, n)
		}
		sort.Strings(nodes)
		for _, n := range nodes {
			out = append(out, cover(nc, from, rs.Index, states[n]))
		}
	}
	return out, nil
}

func cover(nc *spec.NodeCache, from *spec.Cache, ix *cacheroot.Index, st *NodeState) Coverage {
	c := Coverage{NodeCache: nc.Name, Node: st.Node, Root: nc.RootFor(st.Node), Size: st.Size, FreeBytes: st.FreeBytes, Staged: st.Time, Errors: st.Errors}
	held := map[string]Holding{}
	for _, h := range st.Held {
		held[h.Name] = h
	}
	wanted := map[string]bool{}
	for _, a := range from.Artifacts {
		if !nc.Wants(a.Ref) {
			continue
		}
		se, ok := ix.Lookup(a.Name)
		if !ok {
			continue // not in the shared cache yet: plan shows that
		}
		wanted[a.Name] = true
		ac := ArtifactCoverage{Ref: a.Ref, Name: a.Name, Path: spec.JoinRoot(c.Root, a.Name)}
		switch h, ok := held[a.Name]; {
		case !ok:
			ac.Status = "missing"
			c.Missing = append(c.Missing, a.Ref)
		case h.SHA256 != se.SHA256:
			ac.Status = "stale"
			c.Stale = append(c.Stale, a.Ref)
		default:
			ac.Status = "ok"
			c.OK++
		}
		c.Artifacts = append(c.Artifacts, ac)
	}
	for name := range held {
		if !wanted[name] {
			c.Extra++
		}
	}
	return c
}
