package views

import (
	"fmt"

	"github.com/cachectl/cachectl/planner/apply"
)

// ApplyLine is the progress line apply prints for an event: when a change
// starts ("cache.sif["alpine:3.20"]: creating…"), is done, or failed; ""
// a Slurm task's state change; "" for the phases in between (logged at
// debug level).
func ApplyLine(e apply.Event) string {
	switch e.Phase {
	case apply.PhaseStart:
		return fmt.Sprintf("%s: %s…", e.Address, e.Action.Progressive())
	case apply.PhaseDone:
		return fmt.Sprintf("%s: %s complete", e.Address, e.Action)
	case apply.PhaseError:
		return fmt.Sprintf("%s: failed: %s", e.Address, e.Message)
	case apply.PhaseTask:
		return taskLine(e)
	}
	return ""
}

// taskLine renders a state change of a build task on a cluster (the Slurm
// executor): pending, running on NODE, done, failed with its log.
func taskLine(e apply.Event) string {
	t := e.Task
	switch t.State {
	case apply.TaskPending:
		if t.Detail != "" && t.Detail != "None" {
			return fmt.Sprintf("%s: slurm task %s pending (%s)", e.Address, t.ID, t.Detail)
		}
		return fmt.Sprintf("%s: slurm task %s pending", e.Address, t.ID)
	case apply.TaskRunning:
		return fmt.Sprintf("%s: slurm task %s running on %s", e.Address, t.ID, t.Node)
	case apply.TaskDone:
		return fmt.Sprintf("%s: slurm task %s done on %s (%s)", e.Address, t.ID, t.Node, t.Detail)
	}
	if t.Node == "" {
		return fmt.Sprintf("%s: slurm task %s failed: %s (log: %s)", e.Address, t.ID, t.Detail, t.Log)
	}
	return fmt.Sprintf("%s: slurm task %s failed on %s: %s (log: %s)", e.Address, t.ID, t.Node, t.Detail, t.Log)
}
