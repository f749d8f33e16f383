package main

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/google/renameio/v2"
	"github.com/hashicorp/hcl/v2"

	"github.com/cachectl/cachectl/cmd/cachectl/views"
	"github.com/cachectl/cachectl/planner/nodecache"
	"github.com/cachectl/cachectl/spec"
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

When the check fails (a spec error, a registry down), text, markdown and
prometheus are still written — the check failed and why; Prometheus:
cachectl_check_success 0 and no drift gauges — then the exit status is 1.
JUnit writes the errors as test errors; json writes nothing.

With node_cache blocks, text, markdown and prometheus also show each staged
node's coverage ("n17: 2 missing, 1 stale"); -detailed-exitcode counts it
as drift. JSON is the plan format only: node coverage is in 'list -json'.`
}

// Run reports. When the check fails (the spec does not load, planning
// fails), text, markdown and prometheus still write their report — that
// the check failed and why, no drift it cannot know — before exit 1, so
// that a published report never goes on showing an older state.
func (c *ReportCmd) Run(g *Globals, iox *IO) error {
	start := time.Now()
	p, m, err := planSpec(g, iox, c.planFlags)
	if err != nil && (c.Format == "json" || (c.Format == "junit" && errors.Is(err, errReported))) {
		return fmt.Errorf("report: %w", err)
	}
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
	var failed views.CheckFailure
	if planErr != nil {
		failed = checkFailure(g, iox, start, planErr)
	}
	var buf bytes.Buffer
	switch {
	case c.Format == "junit":
		// JUnit reports plan errors as test errors: written, then exit 1.
		err = views.RenderJUnit(&buf, p, planErr, opts)
	case planErr != nil && c.Format == "text":
		err = views.RenderFailedText(&buf, p, failed, opts)
	case planErr != nil && c.Format == "markdown":
		err = views.RenderFailedMarkdown(&buf, p, failed, opts)
	case planErr != nil && c.Format == "prometheus":
		err = views.RenderFailedPrometheus(&buf, p, failed, opts)
	case c.Format == "text":
		err = views.RenderText(&buf, p, views.RenderOptions{})
		if err == nil {
			err = views.RenderLastApplyText(&buf, p, opts)
		}
	case c.Format == "json":
		err = views.RenderJSON(&buf, p)
	case c.Format == "markdown":
		err = views.RenderMarkdown(&buf, p, opts)
	case c.Format == "prometheus":
		err = views.RenderPrometheus(&buf, p, opts)
	}
	if err == nil {
		switch c.Format {
		case "text":
			err = views.NodesText(&buf, nodes)
		case "markdown":
			err = views.NodesMarkdown(&buf, nodes)
		case "prometheus":
			err = views.NodesPrometheus(&buf, nodes)
		}
	}
	if err != nil {
		return err
	}
	if c.Output == "" {
		_, err = iox.Stdout.Write(buf.Bytes())
	} else {
		err = writeReportFile(c.Output, buf.Bytes())
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

// checkFailure describes a failed check for the report: the plan's
// problems, or, when the spec did not load (its diagnostics went to
// stderr), its errors with their source lines.
func checkFailure(g *Globals, iox *IO, at time.Time, err error) views.CheckFailure {
	f := views.CheckFailure{At: at, Problems: views.ProblemLines(err)}
	if !errors.Is(err, errReported) {
		return f
	}
	f.Problems = []string{fmt.Sprintf("the spec %s has errors", g.Spec)}
	_, diags := spec.Load(g.Spec, loadOptions(g, iox))
	if diags == nil {
		return f
	}
	errs := *diags
	errs.Diagnostics = nil
	for _, d := range diags.Diagnostics {
		if d.Severity == hcl.DiagError {
			errs.Diagnostics = append(errs.Diagnostics, d)
		}
	}
	var b bytes.Buffer
	errs.WriteText(&b, false, 0)
	f.Detail = b.String()
	return f
}

// writeReportFile writes a report through a temporary file and a rename,
// always mode 0644: not renameio.WriteFile, which copies the mode of
// whatever is at the path (a file someone else put there 0666).
func writeReportFile(p string, b []byte) error {
	t, err := renameio.NewPendingFile(p, renameio.WithPermissions(0o644))
	if err != nil {
		return err
	}
	defer t.Cleanup()
	if _, err := t.Write(b); err != nil {
		return err
	}
	return t.CloseAtomicallyReplace()
}
