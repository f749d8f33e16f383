// Package nodecache keeps node-local tiers (the spec's node_cache blocks):
// copies of a shared cache's artifacts on each compute node's local disk,
// where Pyxis/Enroot and Apptainer jobs start them without reading the
// shared file system. "cachectl stage" submits one Slurm task per node
// (Stage); each task (RunTask) copies the wanted artifacts from the shared
// cache into the node's local root, verified by sha256 and placed
// atomically through that root's own index and lock (planner/cacheroot),
// evicts unwanted copies least recently used first to stay under
// max_size, and records the node's state in the shared root
// (<root>/.cachectl/nodes/<node cache>/<node>.json). Coverage reads those
// states for list and report.
package nodecache

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/cachectl/cachectl/planner/cacheroot"
)

// StateVersion is the format version of a node state.
const StateVersion = 1

// maxState bounds a node state file.
const maxState = 16 << 20

// NodeState is what a stage task recorded for its node.
type NodeState struct {
	Version   int       `json:"version"`
	NodeCache string    `json:"node_cache"`
	Node      string    `json:"node"`
	Root      string    `json:"root"`
	Time      time.Time `json:"time"`
	JobID     string    `json:"job_id,omitempty"`
	// Held are the artifacts in the local root, by name.
	Held []Holding `json:"held"`
	// Size is what Held takes; MaxSize the tier's bound (0 = none).
	Size    int64 `json:"size"`
	MaxSize int64 `json:"max_size,omitempty"`
	// FreeBytes and TotalBytes of the local file system.
	FreeBytes  int64 `json:"free_bytes"`
	TotalBytes int64 `json:"total_bytes"`
	// Copied and Evicted name what this run copied and removed.
	Copied  []string `json:"copied,omitempty"`
	Evicted []string `json:"evicted,omitempty"`
	Errors  []string `json:"errors,omitempty"`
}

// Holding is one artifact a node holds.
type Holding struct {
	Name   string `json:"name"`
	Ref    string `json:"ref"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// LastUsed is the later of the file's access time and its placement.
	LastUsed time.Time `json:"last_used"`
}

// ReadStates reads the node states of node cache set from the shared
// cache root at root, by node; a root or state directory that does not
// exist yet gives none.
func ReadStates(root, set string) (map[string]*NodeState, error) {
	r, err := cacheroot.OpenRoot(root)
	if err != nil {
		if isNotExist(err) {
			return map[string]*NodeState{}, nil
		}
		return nil, err
	}
	defer r.Close()
	sd, err := r.OpenState(false)
	if err != nil {
		if isNotExist(err) {
			return map[string]*NodeState{}, nil
		}
		return nil, err
	}
	defer sd.Close()
	raw, err := sd.NodeStates(set, maxState)
	if err != nil {
		return nil, err
	}
	out := map[string]*NodeState{}
	for node, data := range raw {
		var st NodeState
		if err := json.Unmarshal(data, &st); err != nil || st.Node != node {
			// A state that does not parse says so, without quoting it.
			out[node] = &NodeState{Version: StateVersion, NodeCache: set, Node: node,
				Errors: []string{fmt.Sprintf("the node state file of %s does not parse; stage the node again", node)}}
			continue
		}
		out[node] = &st
	}
	return out, nil
}

// writeState records st in the shared root at root.
func writeState(root string, st *NodeState) error {
	r, err := cacheroot.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	sd, err := r.OpenState(false)
	if err != nil {
		return err
	}
	defer sd.Close()
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return sd.WriteNodeState(st.NodeCache, st.Node, data)
}
