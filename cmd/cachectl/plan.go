package main

import (
	"fmt"

	"github.com/cachectl/cachectl/cmd/cachectl/views"
	"github.com/cachectl/cachectl/planner"
)

// PlanCmd shows what apply would change.
type PlanCmd struct {
	planFlags
	sourceFlags
	Out              string `name:"out" placeholder:"FILE" predictor:"file" help:"Save the plan to FILE for review and 'cachectl apply FILE'."`
	JSON             bool   `name:"json" help:"Print the plan as JSON (format_version 1.1)."`
	DetailedExitcode bool   `name:"detailed-exitcode" help:"Exit 0 when in sync, 1 on error, 2 when there are changes."`
}

// Help shows examples.
func (PlanCmd) Help() string {
	return `Examples:
  cachectl plan
  cachectl plan -out cache.plan            # save for review, then: cachectl apply cache.plan
  cachectl plan -detailed-exitcode         # cron/CI drift check: 0 in sync, 2 drift, 1 error
  cachectl plan -refresh=false             # offline, from the index only
  cachectl plan -target 'cache.sif["alpine:3.20"]' -json`
}

// Run plans.
func (c *PlanCmd) Run(g *Globals, iox *IO) error {
	p, _, err := planSpec(g, iox, c.planFlags)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	if c.JSON {
		if err := views.RenderJSON(iox.Stdout, p); err != nil {
			return err
		}
	} else if err := writePlanText(g, iox.Stdout, p); err != nil {
		return err
	}
	if c.Out != "" {
		if err := p.WriteFile(c.Out); err != nil {
			return fmt.Errorf("save plan: %w", err)
		}
		if !c.JSON {
			fmt.Fprintf(iox.Stdout, "\nSaved the plan to %s. Apply exactly this plan with:\n  cachectl apply %s\n", c.Out, c.Out)
		}
	}
	if c.DetailedExitcode && p.HasChanges() {
		return &exitError{code: 2}
	}
	return nil
}

// ShowCmd prints a saved plan.
type ShowCmd struct {
	File string `arg:"" name:"planfile" type:"existingfile" predictor:"file" help:"A plan saved with 'cachectl plan -out'."`
	JSON bool   `name:"json" help:"Print the plan as JSON."`
}

// Help shows examples.
func (ShowCmd) Help() string {
	return "Examples:\n  cachectl show cache.plan\n  cachectl show -json cache.plan | jq .summary"
}

// Run shows.
func (c *ShowCmd) Run(g *Globals, iox *IO) error {
	p, warning, err := planner.ShowPlanFile(c.File)
	if err != nil {
		return err
	}
	if warning != nil {
		fmt.Fprintf(iox.Stderr, "Warning: %v (apply refuses it as it is)\n", warning)
	}
	if c.JSON {
		return views.RenderJSON(iox.Stdout, p)
	}
	return writePlanText(g, iox.Stdout, p)
}
