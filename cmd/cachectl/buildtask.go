package main

import (
	"github.com/cachectl/cachectl/planner/slurmexec"
)

// BuildTaskCmd is what one element of apply's Slurm array job runs on its
// compute node (hidden: apply writes the script that calls it).
type BuildTaskCmd struct {
	Tasks string `name:"tasks" required:"" placeholder:"FILE" help:"The job's task list (tasks.json in its run directory)."`
	Index int    `name:"index" required:"" help:"The task to build (the array index, $SLURM_ARRAY_TASK_ID)."`
}

// Run builds the task into its work directory and records the result.
func (c *BuildTaskCmd) Run(g *Globals, iox *IO) error {
	return slurmexec.RunTask(iox.Ctx, c.Tasks, c.Index, builderFor)
}
