// Package slurm runs Slurm's client commands (sbatch, squeue, sacct,
// scancel, sinfo) and parses what they print: the little of Slurm that
// cachectl uses to fan work out over a cluster. Arguments are passed as
// argv, never through a shell. The commands find the cluster as they
// always do (slurm.conf, or SLURM_CONF in the environment).
//
// Output formats are those of Slurm 22.05 (Debian 12) and later:
// "sbatch --parsable" prints "JOBID[;CLUSTER]", "squeue -h -r -o FMT" one
// line per array element, "sacct -n -P" '|'-separated fields.
package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// ErrNoSlurm is returned (wrapped) when Slurm's client commands are not
// on PATH.
var ErrNoSlurm = errors.New("Slurm's client commands are not installed on this host")

// Client runs Slurm commands.
type Client struct {
	// Env is added to the commands' environment (e.g. SLURM_CONF=...);
	// nil: the process's own.
	Env []string
}

// Available checks that sbatch, squeue and scancel are on PATH.
func (c *Client) Available() error {
	for _, p := range []string{"sbatch", "squeue", "scancel"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%w (%s not found on PATH)", ErrNoSlurm, p)
		}
	}
	return nil
}

func (c *Client) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if c.Env != nil {
		cmd.Env = append(cmd.Environ(), c.Env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		if msg != "" {
			return stdout.Bytes(), fmt.Errorf("%s: %w: %s", name, err, msg)
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w", name, err)
	}
	return stdout.Bytes(), nil
}

// Submit runs "sbatch --parsable ARGS... SCRIPT" and returns the job id.
func (c *Client) Submit(ctx context.Context, args []string, script string) (string, error) {
	out, err := c.run(ctx, "sbatch", append(append([]string{"--parsable"}, args...), script)...)
	if err != nil {
		return "", err
	}
	id, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	if id == "" || strings.Trim(id, "0123456789") != "" {
		return "", fmt.Errorf("sbatch printed %q, not a job id", strings.TrimSpace(string(out)))
	}
	return id, nil
}

// Task is the state of one job or array element.
type Task struct {
	// ID is "JOBID" or "JOBID_INDEX" for an array element ("JOBID_[0-9]"
	// for elements squeue has not split yet).
	ID string
	// State is Slurm's state name (PENDING, RUNNING, COMPLETING,
	// COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL...).
	State string
	// Nodes is the node list ("" while pending).
	Nodes string
	// Reason is why a pending job waits (squeue), or the exit code
	// "CODE:SIGNAL" (sacct).
	Reason string
}

// Queue lists the elements of job (squeue -r) that the controller still
// knows: pending, running, and recently ended ones (until MinJobAge).
func (c *Client) Queue(ctx context.Context, job string) ([]Task, error) {
	out, err := c.run(ctx, "squeue", "-h", "-r", "-j", job, "-t", "all", "-o", "%i|%T|%N|%r")
	if err != nil {
		// A job the controller has forgotten is an error for squeue -j.
		if strings.Contains(err.Error(), "Invalid job id") {
			return nil, nil
		}
		return nil, err
	}
	return parseTasks(out, 4), nil
}

// Accounting returns the elements of job from the accounting database
// (sacct -X); ok is false when sacct is missing or accounting is disabled.
func (c *Client) Accounting(ctx context.Context, job string) (tasks []Task, ok bool) {
	if _, err := exec.LookPath("sacct"); err != nil {
		return nil, false
	}
	out, err := c.run(ctx, "sacct", "-n", "-P", "-X", "-j", job, "-o", "JobID,State,NodeList,ExitCode")
	if err != nil {
		return nil, false
	}
	ts := parseTasks(out, 4)
	for i := range ts {
		// "CANCELLED by 0" -> "CANCELLED"
		ts[i].State, _, _ = strings.Cut(ts[i].State, " ")
	}
	return ts, true
}

func parseTasks(out []byte, n int) []Task {
	var ts []Task
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.SplitN(strings.TrimSpace(l), "|", n)
		if len(f) < 2 || f[0] == "" {
			continue
		}
		for len(f) < 4 {
			f = append(f, "")
		}
		nodes := f[2]
		if nodes == "None assigned" || nodes == "(null)" {
			nodes = ""
		}
		ts = append(ts, Task{ID: f[0], State: f[1], Nodes: nodes, Reason: f[3]})
	}
	return ts
}

// Cancel runs scancel on ids (jobs or array elements "JOBID_INDEX").
func (c *Client) Cancel(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := c.run(ctx, "scancel", ids...)
	return err
}

// Node is a node and its state as sinfo shows it ("idle", "mix",
// "alloc", "down*", "drain", ...; a trailing "*" means not responding).
type Node struct {
	Name, State string
}

// Usable reports whether the node can run a job now or once its current
// jobs end (not down, drained, failing or not responding).
func (n Node) Usable() bool {
	switch n.State {
	case "idle", "mix", "alloc", "comp", "plnd", "mixed", "allocated", "completing", "planned":
		return true
	}
	return false
}

// Nodes lists the nodes of a partition and/or of a node list expression
// ("n[1-3],gpu07"), each once, in sinfo's order.
func (c *Client) Nodes(ctx context.Context, partition, nodelist string) ([]Node, error) {
	args := []string{"-h", "-N", "-o", "%N %t"}
	if partition != "" {
		args = append(args, "-p", partition)
	}
	if nodelist != "" {
		args = append(args, "-n", nodelist)
	}
	out, err := c.run(ctx, "sinfo", args...)
	if err != nil {
		return nil, err
	}
	var nodes []Node
	seen := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 || seen[f[0]] {
			continue
		}
		seen[f[0]] = true
		nodes = append(nodes, Node{Name: f[0], State: f[1]})
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("sinfo lists no nodes for partition %q, nodes %q", partition, nodelist)
	}
	return nodes, nil
}

// Ended reports whether a state is final (the element no longer runs).
func Ended(state string) bool {
	switch state {
	case "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD":
		return false
	}
	return state != ""
}
