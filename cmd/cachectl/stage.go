package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/nodecache"
	"github.com/cachectl/cachectl/planner/slurmexec"
	"github.com/cachectl/cachectl/providers/slurm"
	"github.com/cachectl/cachectl/spec"
)

// StageCmd fills the node-local tiers through Slurm.
type StageCmd struct {
	NodeCache []string `arg:"" optional:"" name:"node-cache" help:"Only these node caches (default: all of the spec's node_cache blocks)."`
}

// Help shows examples.
func (StageCmd) Help() string {
	return `Runs one task on every node of each node cache's set (one sbatch job, srun --ntasks-per-node=1): the task copies the wanted artifacts from the shared cache to the node's local root (sha256-verified, placed atomically), evicts unwanted copies least recently used first to stay under max_size, and records the node's state in the shared root, which list and report show. Run apply first: stage copies what the shared cache holds.

Examples:
  cachectl stage             # every node_cache of the spec
  cachectl stage local       # one node cache`
}

// Run stages.
func (c *StageCmd) Run(g *Globals, iox *IO) error {
	m, err := loadModel(g, iox)
	if err != nil {
		return err
	}
	var ncs []*spec.NodeCache
	for _, name := range c.NodeCache {
		nc := m.NodeCache(name)
		if nc == nil {
			var names []string
			for _, n := range m.NodeCaches {
				names = append(names, n.Name)
			}
			if len(names) == 0 {
				return fmt.Errorf("no node_cache named %q: the spec has no node_cache block; add one, e.g. node_cache %q { from = \"CACHE\"  root = \"/local/enroot\"  partition = \"gpu\" } (see docs/slurm.md)", name, name)
			}
			return fmt.Errorf("no node_cache named %q in the spec (node caches: %s)", name, strings.Join(names, ", "))
		}
		ncs = append(ncs, nc)
	}
	if len(c.NodeCache) == 0 {
		ncs = m.NodeCaches
	}
	if len(ncs) == 0 {
		return errors.New("the spec has no node_cache block; add one (see docs/slurm.md) to stage images onto node-local disks")
	}
	client := &slurm.Client{}
	if err := client.Available(); err != nil {
		return fmt.Errorf("stage runs its tasks through Slurm, but %v; run it on a host with Slurm's client commands and configuration (a login or admin node)", err)
	}
	cmd, err := slurmexec.Command(m.Slurm)
	if err != nil {
		return fmt.Errorf("cannot tell the path of cachectl for the nodes (%v); set command in the spec's cachectl { slurm { } } block", err)
	}
	if err := slurmexec.CheckLogDir(slurmexec.LogDir(m.Slurm, storeDir(g, m))); err != nil {
		return err
	}
	var mu sync.Mutex
	failed := 0
	for _, nc := range ncs {
		fmt.Fprintf(iox.Stdout, "Staging node cache %q (cache %q → %s):\n", nc.Name, nc.From, nc.Root)
		res, err := nodecache.Stage(iox.Ctx, m, nc, nodecache.Options{
			Client: client, Settings: m.Slurm, Store: storeDir(g, m), Command: cmd,
			Progress: func(line string) {
				mu.Lock()
				defer mu.Unlock()
				fmt.Fprintf(iox.Stdout, "  %s\n", line)
			},
		})
		if res != nil {
			printStage(iox, res)
		}
		if err != nil {
			return err
		}
		if res.Failed() {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("stage: %d node cache(s) had errors (see above; the job logs have each node's lines)", failed)
	}
	fmt.Fprintln(iox.Stdout, "\nStage complete!")
	return nil
}

func printStage(iox *IO, res *nodecache.Result) {
	var skipped []string
	for n, st := range res.Skipped {
		skipped = append(skipped, n+" ("+st+")")
	}
	sort.Strings(skipped)
	for _, n := range res.Nodes {
		st := res.States[n]
		if st == nil {
			continue
		}
		line := fmt.Sprintf("  %s: %d held, %s", n, len(st.Held), planner.HumanBytes(st.Size))
		if st.MaxSize > 0 {
			line += " of " + planner.HumanBytes(st.MaxSize)
		}
		line += fmt.Sprintf("; %d copied, %d evicted; %s free", len(st.Copied), len(st.Evicted), planner.HumanBytes(st.FreeBytes))
		fmt.Fprintln(iox.Stdout, line)
		for _, e := range st.Errors {
			fmt.Fprintf(iox.Stdout, "  %s: error: %s\n", n, e)
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintf(iox.Stdout, "  not staged (not usable): %s\n", strings.Join(skipped, ", "))
	}
}

// StageTaskCmd is what stage's job runs on each node (hidden).
type StageTaskCmd struct {
	File string `name:"file" required:"" placeholder:"FILE" help:"The stage job's task file (stage.json in its run directory)."`
}

// Run stages this node.
func (c *StageTaskCmd) Run(g *Globals, iox *IO) error {
	node := os.Getenv("SLURMD_NODENAME")
	if node == "" {
		node, _ = os.Hostname()
	}
	return nodecache.RunTask(iox.Ctx, c.File, node, iox.Stdout)
}
