package nodecache

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/slurmexec"
	"github.com/cachectl/cachectl/providers/slurm"
	"github.com/cachectl/cachectl/spec"
)

// Options are how Stage reaches the cluster.
type Options struct {
	Client   *slurm.Client
	Settings spec.SlurmSettings
	// Store is the blob store directory: the default place of run
	// directories (see slurmexec.LogDir).
	Store string
	// Command is the cachectl program on the nodes.
	Command string
	// Progress receives one line per job state change (may be nil).
	Progress func(string)
}

// Result is what one stage of a node cache did.
type Result struct {
	NodeCache string
	JobID     string
	// Log is the job's log (one line per copy and eviction, per node).
	Log string
	// Nodes are the nodes staged; Skipped the nodes of the set left out,
	// with their Slurm state (down, drained, not responding).
	Nodes   []string
	Skipped map[string]string
	// States are the nodes' states after the job, by node.
	States map[string]*NodeState
}

// Failed reports whether any node recorded an error.
func (r *Result) Failed() bool {
	for _, st := range r.States {
		if len(st.Errors) > 0 {
			return true
		}
	}
	return false
}

// Stage runs one stage task on every usable node of the node cache's set
// (one sbatch job of N nodes whose script runs "srun --ntasks-per-node=1
// cachectl stage-task") and waits for it. A node whose task did not
// record its state gets a state with the error (its holdings as last
// recorded). A cancelled context cancels the job.
func Stage(ctx context.Context, m *spec.Model, nc *spec.NodeCache, opts Options) (*Result, error) {
	from := m.Cache(nc.From)
	if from == nil {
		return nil, fmt.Errorf("node cache %q: no cache %q", nc.Name, nc.From)
	}
	s := opts.Settings.WithDefaults()
	progress := func(format string, args ...any) {
		if opts.Progress != nil {
			opts.Progress(fmt.Sprintf(format, args...))
		}
	}
	uid, gid, err := planner.LookupOwner(nc.Owner, nc.Group)
	if err != nil {
		return nil, fmt.Errorf("node cache %q: %w", nc.Name, err)
	}
	sf := StageFile{Version: StageFileVersion, NodeCache: nc.Name, SharedRoot: from.Root, Runtime: string(from.Runtime),
		Root: nc.Root, MaxSize: nc.MaxSize, UID: uid, GID: gid, FileMode: nc.FileMode.String(), DirMode: nc.DirMode.String()}
	for _, a := range from.Artifacts {
		if nc.Wants(a.Ref) {
			sf.Wanted = append(sf.Wanted, Want{Name: a.Name, Ref: a.Ref})
		}
	}
	all, err := opts.Client.Nodes(ctx, nc.Partition, nc.Nodes)
	if err != nil {
		return nil, fmt.Errorf("node cache %q: %w", nc.Name, err)
	}
	res := &Result{NodeCache: nc.Name, Skipped: map[string]string{}}
	for _, n := range all {
		if n.Usable() {
			res.Nodes = append(res.Nodes, n.Name)
		} else {
			res.Skipped[n.Name] = n.State
		}
	}
	if len(res.Nodes) == 0 {
		return res, fmt.Errorf("node cache %q: no usable node (states: %v)", nc.Name, res.Skipped)
	}
	dir, err := slurmexec.NewRunDir(slurmexec.LogDir(s, opts.Store), "stage")
	if err != nil {
		return nil, err
	}
	file, err := dir.WriteJSON("stage.json", sf)
	if err != nil {
		dir.Remove()
		return nil, err
	}
	script, err := dir.WriteScript("stage.sh", "srun", "--label", "--ntasks-per-node=1", "--kill-on-bad-exit=0", opts.Command, "stage-task", "--file", file)
	if err != nil {
		dir.Remove()
		return nil, err
	}
	res.Log = filepath.Join(dir.Path, "stage.log")
	args := append([]string{"--job-name=cachectl-stage", "--nodes=" + strconv.Itoa(len(res.Nodes)), "--ntasks-per-node=1",
		"--nodelist=" + strings.Join(res.Nodes, ","), "--no-requeue", "--output=" + res.Log, "--chdir=" + dir.Path}, slurmexec.SbatchArgs(nodeSettings(s, nc), "")...)
	start := time.Now().UTC()
	res.JobID, err = opts.Client.Submit(ctx, args, script)
	if err != nil {
		dir.Remove()
		return nil, fmt.Errorf("node cache %q: submit the stage job: %w", nc.Name, err)
	}
	progress("slurm job %s: one stage task on each of %d nodes (%s); log: %s", res.JobID, len(res.Nodes), strings.Join(res.Nodes, ","), res.Log)
	final, werr := waitJob(ctx, opts.Client, res.JobID, s, progress)
	// The nodes' states: those this job wrote (wait a little for a shared
	// file system to show them).
	deadline := time.Now().Add(s.ResultTimeout)
	for {
		if res.States, err = ReadStates(from.Root, nc.Name); err != nil {
			return res, err
		}
		if missing(res, start) == 0 || werr != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(s.PollInterval)
	}
	for _, n := range res.Nodes {
		st := res.States[n]
		if st != nil && fresh(st, res.JobID, start) {
			continue
		}
		why := fmt.Sprintf("the stage task of slurm job %s did not record a state (job %s; see %s)", res.JobID, strings.ToLower(final), res.Log)
		if werr != nil {
			why = fmt.Sprintf("not staged: %v", werr)
		}
		failed := &NodeState{Version: StateVersion, NodeCache: nc.Name, Node: n, Root: nc.RootFor(n), Time: time.Now().UTC(), JobID: res.JobID, MaxSize: nc.MaxSize, Errors: []string{why}}
		if st != nil {
			failed.Held, failed.Size, failed.FreeBytes, failed.TotalBytes = st.Held, st.Size, st.FreeBytes, st.TotalBytes
		}
		if err := writeState(from.Root, failed); err != nil {
			return res, err
		}
		res.States[n] = failed
	}
	if werr != nil {
		return res, werr
	}
	if !res.Failed() {
		dir.Remove()
	}
	return res, nil
}

// nodeSettings are the sbatch options of a stage job: the spec's slurm
// settings, with the node cache's partition (not the build partition).
func nodeSettings(s spec.SlurmSettings, nc *spec.NodeCache) spec.SlurmSettings {
	s.Partition = nc.Partition
	return s
}

func fresh(st *NodeState, jobID string, start time.Time) bool {
	return st.JobID == jobID && !st.Time.Before(start.Add(-time.Minute))
}

func missing(res *Result, start time.Time) int {
	n := 0
	for _, node := range res.Nodes {
		if st := res.States[node]; st == nil || !fresh(st, res.JobID, start) {
			n++
		}
	}
	return n
}

// waitJob polls squeue until the job has ended and returns its final
// state; a cancelled context cancels the job.
func waitJob(ctx context.Context, c *slurm.Client, jobID string, s spec.SlurmSettings, progress func(string, ...any)) (string, error) {
	poll := slurmexec.NewQueuePoller(c, jobID, s)
	defer poll.Stop()
	last := ""
	var gone time.Time
	for {
		q, qerr, err := poll.Next(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return "CANCELLED", fmt.Errorf("interrupted: slurm job %s was cancelled", jobID)
		case err != nil:
			return "CANCELLED", err
		case qerr != nil:
			continue
		}
		var t *slurm.Task
		for i := range q {
			if q[i].ID == jobID {
				t = &q[i]
			}
		}
		if t == nil {
			if gone.IsZero() {
				gone = time.Now()
			}
			if time.Since(gone) > s.ResultTimeout {
				return "gone from the queue", nil
			}
			continue
		}
		state := t.State
		if state != last {
			switch {
			case state == "PENDING":
				progress("slurm job %s pending (%s)", jobID, t.Reason)
			case state == "RUNNING":
				progress("slurm job %s running on %s", jobID, t.Nodes)
			default:
				progress("slurm job %s %s", jobID, strings.ToLower(state))
			}
			last = state
		}
		if slurm.Ended(state) {
			return state, nil
		}
	}
}
