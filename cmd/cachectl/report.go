package main

import (
	"bytes"
	"fmt"

	"github.com/google/renameio/v2"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/nodecache"
)

// ReportCmd writes a drift report.
type ReportCmd struct {
	planFlags
	Format           string `name:"format" default:"markdown" enum:"text,json,markdown,prometheus" help:"text, json (the plan format), markdown, or prometheus (text-file metrics for node_exporter)."`
	Output           string `short:"o" name:"output" placeholder:"FILE" help:"Write the report to FILE atomically (temporary file + rename) instead of stdout."`
	DetailedExitcode bool   `name:"detailed-exitcode" help:"Exit 0 when in sync, 1 on error, 2 when there is drift."`
}

// Help shows examples.
func (ReportCmd) Help() string {
	return `Plans (read-only) and writes the result as a report to publish from cron or CI.

Examples:
  cachectl report                                          # Markdown on stdout
  cachectl report -format prometheus -o /var/lib/node_exporter/textfile/cachectl.prom
  cachectl report -format json -refresh=false -detailed-exitcode

With node_cache blocks, text, markdown and prometheus also show each staged
node's coverage ("n17: 2 missing, 1 stale"); -detailed-exitcode counts it
as drift. JSON is the plan format only: node coverage is in 'list -json'.`
}

// Run reports.
func (c *ReportCmd) Run(g *Globals, iox *IO) error {
	p, m, err := planSpec(g, iox, c.planFlags)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	nodes, err := nodecache.Coverages(m, "")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	var buf bytes.Buffer
	switch c.Format {
	case "text":
		if err = planner.RenderText(&buf, p, planner.RenderOptions{}); err == nil {
			err = nodecache.RenderText(&buf, nodes)
		}
	case "json":
		err = planner.RenderJSON(&buf, p)
	case "markdown":
		if err = planner.RenderMarkdown(&buf, p); err == nil {
			err = nodecache.RenderMarkdown(&buf, nodes)
		}
	case "prometheus":
		if err = planner.RenderPrometheus(&buf, p); err == nil {
			err = nodecache.RenderPrometheus(&buf, nodes)
		}
	}
	if err != nil {
		return err
	}
	if c.Output == "" {
		_, err = iox.Stdout.Write(buf.Bytes())
	} else {
		err = renameio.WriteFile(c.Output, buf.Bytes(), 0o644)
	}
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if c.DetailedExitcode && (p.HasChanges() || nodecache.Drifted(nodes)) {
		return &exitError{code: 2}
	}
	return nil
}
