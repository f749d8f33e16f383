package main

import (
	"errors"
	"fmt"

	"github.com/cachectl/cachectl/planner/apply"
	"github.com/cachectl/cachectl/planner/slurmexec"
	"github.com/cachectl/cachectl/providers/slurm"
	"github.com/cachectl/cachectl/spec"
)

// executorName is --executor, else the spec's cachectl { executor }, else
// "local".
func executorName(flag string, m *spec.Model) string {
	switch {
	case flag != "":
		return flag
	case m.Executor != "":
		return m.Executor
	}
	return "local"
}

// newExecutor returns apply's executor: nil for local builds, or the Slurm
// executor (events go to *events once set). Without Slurm's commands on
// this host it says so and how to build locally.
func newExecutor(g *Globals, m *spec.Model, name string, events *func(apply.Event)) (apply.Executor, error) {
	if name != "slurm" {
		return nil, nil
	}
	c := &slurm.Client{}
	if err := c.Available(); err != nil {
		if errors.Is(err, slurm.ErrNoSlurm) {
			return nil, fmt.Errorf("the slurm executor submits the builds with sbatch, but %v; run apply on a host with Slurm's client commands and configuration (a login or admin node), or build on this host with --executor local (or executor = \"local\" in the spec's cachectl block)", err)
		}
		return nil, err
	}
	cmd, err := slurmexec.Command(m.Slurm)
	if err != nil {
		return nil, fmt.Errorf("the slurm executor: cannot tell the path of cachectl for the nodes (%v); set command in the spec's cachectl { slurm { } } block", err)
	}
	if err := slurmexec.CheckLogDir(slurmexec.LogDir(m.Slurm, storeDir(g, m))); err != nil {
		return nil, err
	}
	return &slurmexec.Executor{
		Client: c, Settings: m.Slurm, Store: storeDir(g, m), Command: cmd,
		Events: func(e apply.Event) {
			if *events != nil {
				(*events)(e)
			}
		},
	}, nil
}
