package main

import (
	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/nodecache"
	"github.com/cachectl/cachectl/spec"
)

// listNodes returns the node coverage list shows: every node cache's
// with no argument, one node cache's when only names it, none when only
// names a cache.
func listNodes(m *spec.Model, only string) ([]nodecache.Coverage, error) {
	if only != "" && m.NodeCache(only) == nil {
		return nil, nil
	}
	return nodecache.Coverages(m, only)
}

// nodeItems lists each wanted artifact on each staged node (list -json).
func nodeItems(m *spec.Model, covs []nodecache.Coverage) []planner.Item {
	var items []planner.Item
	for _, c := range covs {
		rt := ""
		if nc := m.NodeCache(c.NodeCache); nc != nil {
			if from := m.Cache(nc.From); from != nil {
				rt = string(from.Runtime)
			}
		}
		for _, a := range c.Artifacts {
			items = append(items, planner.Item{Cache: c.NodeCache, Runtime: rt, Node: c.Node, Status: planner.Status(a.Status), Ref: a.Ref, Name: a.Name, Path: a.Path, Placed: c.Staged})
		}
	}
	return items
}
