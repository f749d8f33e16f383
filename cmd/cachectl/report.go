package main

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cachectl/cachectl/cmd/cachectl/views"
	"github.com/google/renameio/v2"

	"github.com/cachectl/cachectl/planner/nodecache"
)

// ReportCmd writes a drift report.
type ReportCmd struct {
	planFlags
	Format           string `name:"format" default:"markdown" enum:"text,json,markdown,prometheus,junit" help:"text, json (the plan format), markdown, prometheus (text-file metrics for node_exporter), or junit (JUnit XML for CI dashboards: a suite per cache, a test case per artifact, drift and errors as failures)."`
	Output           string `short:"o" name:"output" placeholder:"FILE" predictor:"file" help:"Write the report to FILE atomically (temporary file + rename) instead of stdout."`
	DetailedExitcode bool   `name:"detailed-exitcode" help:"Exit 0 when in sync, 1 on error, 2 when there is drift."`
}

// Help shows examples.
func (ReportCmd) Help() string {
	return `Plans (read-only) and writes the result as a report to publish from cron or CI.

Examples:
  cachectl report                                          # Markdown on stdout
  cachectl report -format prometheus -o /var/lib/node_exporter/textfile/cachectl.prom
  cachectl report -format json -refresh=false -detailed-exitcode
  cachectl report -format junit -o cachectl-junit.xml      # errors too are written, then exit 1

Markdown, text and Prometheus output add the last apply of each cache (from
its .cachectl/history.jsonl; see "cachectl history").

With node_cache blocks, text, markdown and prometheus also show each staged
node's coverage ("n17: 2 missing, 1 stale"); -detailed-exitcode counts it
as drift. JSON is the plan format only: node coverage is in 'list -json'.`
}

// Run reports.
func (c *ReportCmd) Run(g *Globals, iox *IO) error {
	p, m, err := planSpec(g, iox, c.planFlags)
	if err != nil && (c.Format != "junit" || errors.Is(err, errReported)) {
		return fmt.Errorf("report: %w", err)
	}
	// JUnit reports plan errors as test errors: written, then exit 1.
	planErr := err
	var opts views.ReportOptions
	if p != nil {
		opts.LastApply = lastApplies(g, iox, p)
	}
	var nodes []nodecache.Coverage
	if m != nil {
		if nodes, err = nodecache.Coverages(m, ""); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	var buf bytes.Buffer
	switch c.Format {
	case "text":
		err = views.RenderText(&buf, p, views.RenderOptions{})
		if err == nil {
			err = views.RenderLastApplyText(&buf, p, opts)
		}
		if err == nil {
			err = views.NodesText(&buf, nodes)
		}
	case "json":
		err = views.RenderJSON(&buf, p)
	case "markdown":
		if err = views.RenderMarkdown(&buf, p, opts); err == nil {
			err = views.NodesMarkdown(&buf, nodes)
		}
	case "prometheus":
		if err = views.RenderPrometheus(&buf, p, opts); err == nil {
			err = views.NodesPrometheus(&buf, nodes)
		}
	case "junit":
		err = views.RenderJUnit(&buf, p, planErr, opts)
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
	if planErr != nil {
		return fmt.Errorf("report: %w", planErr)
	}
	if c.DetailedExitcode && (p.HasChanges() || nodecache.Drifted(nodes)) {
		return &exitError{code: 2}
	}
	return nil
}
