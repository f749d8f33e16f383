package views

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/history"
)

// ReportOptions add to a report what the plan does not hold.
type ReportOptions struct {
	// LastApply is the newest apply record of each cache root (from its
	// .cachectl/history.jsonl), by cache name; caches without one are
	// missing.
	LastApply map[string]*history.Record
}

// CheckFailure is a check (the plan behind a report) that did not
// complete: the spec did not load, a registry failed, a file is in the
// way. Its report says so instead of showing drift it cannot know.
type CheckFailure struct {
	// At is when the check ran.
	At time.Time
	// Problems are the errors, one per line (ProblemLines).
	Problems []string
	// Detail is text to show verbatim below them (the spec's
	// diagnostics), or "".
	Detail string
}

// ProblemLines splits an error into its problems, one per line: the items
// of a "N problems:" list (planner.ListErrors), or the lines of the
// message.
func ProblemLines(err error) []string {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var out []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "* "))
		if l != "" && !(strings.HasSuffix(l, " problems:") && strings.Count(msg, "\n") > 0) {
			out = append(out, l)
		}
	}
	return out
}

// RenderMarkdown writes a drift report for a wiki, a CI summary or a
// ticket: a table per cache, the last apply of each cache, then every
// change with its reasons.
func RenderMarkdown(w io.Writer, p *planner.Plan, opts ReportOptions) error {
	bw := &errWriter{w: w}
	bw.printf("# cachectl drift report\n\n")
	state := "**in sync**"
	if p.HasChanges() {
		state = fmt.Sprintf("**drift**: %d to add, %d to change, %d to destroy", p.Summary.Add, p.Summary.Change, p.Summary.Destroy)
	}
	refreshed := "registries checked"
	if !p.Refreshed {
		refreshed = "from the index only (-refresh=false)"
	}
	bw.printf("%s, %s, %s (spec: %s).\n\n", p.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"), state, refreshed, strings.Join(p.SpecFiles, ", "))
	bw.printf("| cache | runtime | root | in sync | add | change | destroy | orphaned | unmanaged |\n|---|---|---|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range p.PerCache() {
		bw.printf("| %s | %s | `%s` | %d | %d | %d | %d | %d | %d |\n", mdEscape(s.Cache), s.Runtime, s.Root, s.InSync, s.Add, s.Change, s.Destroy, s.Orphaned, s.Unmanaged)
	}
	lastApplyMarkdown(bw, p, opts)
	var rows []planner.Change
	for _, ch := range p.Changes {
		if ch.Action != planner.ActionNoop {
			rows = append(rows, ch)
		}
	}
	if len(rows) > 0 {
		bw.printf("\n## Changes\n\n| | address | path | why |\n|---|---|---|---|\n")
		for _, ch := range rows {
			var why []string
			for _, r := range ch.Reasons {
				why = append(why, r.Message)
			}
			bw.printf("| `%s` %s | `%s` | `%s` | %s |\n", ch.Action.Symbol(), ch.Action, ch.Address, ch.Path, mdEscape(strings.Join(why, "; ")))
		}
	}
	var unmanaged []string
	for _, r := range p.Roots {
		for _, u := range r.Unmanaged {
			unmanaged = append(unmanaged, fmt.Sprintf("- `%s` (%s, cache %s)", mdEscape(Printable(strings.TrimSuffix(r.Root, "/")+"/"+u.Name)), planner.HumanBytes(u.Size), r.Cache))
		}
	}
	if len(unmanaged) > 0 {
		bw.printf("\n## Unmanaged files\n\nNot placed by cachectl; never deleted; take them over with `cachectl adopt CACHE` (one file: `cachectl import`).\n\n%s\n", strings.Join(unmanaged, "\n"))
	}
	return bw.err
}

// lastApplyMarkdown writes the "Last apply" table of the plan's roots (p
// nil or no records: nothing).
func lastApplyMarkdown(bw *errWriter, p *planner.Plan, opts ReportOptions) {
	if p == nil || len(opts.LastApply) == 0 {
		return
	}
	bw.printf("\n## Last apply\n\n| cache | finished | result | by | changes | downloaded | written | took |\n|---|---|---|---|---|--:|--:|--:|\n")
	for _, r := range p.Roots {
		l := opts.LastApply[r.Cache]
		if l == nil {
			bw.printf("| %s | never | | | | | | |\n", mdEscape(r.Cache))
			continue
		}
		result := l.Result
		if l.Error != "" {
			result += ": " + l.Error
		}
		bw.printf("| %s | %s | %s | %s | +%d ~%d -%d | %s | %s | %.1fs |\n", mdEscape(r.Cache), l.End.UTC().Format("2006-01-02 15:04 UTC"),
			mdEscape(result), mdEscape(Runner(l)), l.Plan.Add, l.Plan.Change, l.Plan.Destroy,
			planner.HumanBytes(l.DownloadedBytes), planner.HumanBytes(l.WrittenBytes), l.DurationSeconds)
	}
}

// RenderFailedMarkdown writes the Markdown report of a check that failed
// (f): that it failed and why, and what is known without a plan — the
// last apply of each cache when p (a partial plan, or nil) names the
// roots.
func RenderFailedMarkdown(w io.Writer, p *planner.Plan, f CheckFailure, opts ReportOptions) error {
	bw := &errWriter{w: w}
	bw.printf("# cachectl drift report\n\n")
	bw.printf("%s, **check failed**: the caches could not be compared with the spec, so their drift is unknown.\n\n## Errors\n\n", f.At.UTC().Format("2006-01-02 15:04 UTC"))
	for _, pr := range f.Problems {
		bw.printf("- %s\n", mdEscape(Printable(pr)))
	}
	if f.Detail != "" {
		fence := "```"
		if strings.Contains(f.Detail, fence) {
			fence = "~~~~"
		}
		bw.printf("\n%s\n%s\n%s\n", fence, strings.TrimRight(PrintableText(f.Detail), "\n"), fence)
	}
	lastApplyMarkdown(bw, p, opts)
	return bw.err
}

// RenderFailedText writes the text report of a check that failed (see
// RenderFailedMarkdown).
func RenderFailedText(w io.Writer, p *planner.Plan, f CheckFailure, opts ReportOptions) error {
	bw := &errWriter{w: w}
	bw.printf("Check failed at %s: the caches could not be compared with the spec, so their drift is unknown.\n", f.At.UTC().Format("2006-01-02 15:04:05 UTC"))
	for _, pr := range f.Problems {
		bw.printf("  * %s\n", Printable(pr))
	}
	if f.Detail != "" {
		for _, l := range strings.Split(strings.TrimRight(PrintableText(f.Detail), "\n"), "\n") {
			bw.printf("    %s\n", l)
		}
	}
	if bw.err != nil || p == nil {
		return bw.err
	}
	return RenderLastApplyText(w, p, opts)
}

// Runner says who ran a history record: "user@host", with the sudo user
// and the Slurm job when there were.
func Runner(r *history.Record) string {
	s := r.User
	if r.SudoUser != "" && r.SudoUser != r.User {
		s += " (sudo " + r.SudoUser + ")"
	}
	s += "@" + r.Host
	if r.SlurmJobID != "" {
		s += ", Slurm job " + r.SlurmJobID
	}
	return s
}

// RenderLastApplyText writes the last apply of each cache as plain lines
// (the text report appends them to the plan).
func RenderLastApplyText(w io.Writer, p *planner.Plan, opts ReportOptions) error {
	if len(opts.LastApply) == 0 {
		return nil
	}
	bw := &errWriter{w: w}
	bw.printf("\nLast apply:\n")
	for _, r := range p.Roots {
		l := opts.LastApply[r.Cache]
		if l == nil {
			bw.printf("  %s: never\n", r.Cache)
			continue
		}
		bw.printf("  %s: %s at %s by %s (+%d ~%d -%d, %s downloaded, %s written, %.1fs)\n", r.Cache, l.Result,
			l.End.UTC().Format("2006-01-02 15:04:05 UTC"), Runner(l), l.Plan.Add, l.Plan.Change, l.Plan.Destroy,
			planner.HumanBytes(l.DownloadedBytes), planner.HumanBytes(l.WrittenBytes), l.DurationSeconds)
		if l.Error != "" {
			bw.printf("    %s\n", strings.Join(strings.Fields(l.Error), " "))
		}
	}
	return bw.err
}

func mdEscape(s string) string { return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s) }

// RenderPrometheus writes the plan as Prometheus text-format metrics, for
// node_exporter's textfile collector (write to a temporary file in the
// collector directory and rename it), with the last apply of each cache
// that has one.
func RenderPrometheus(w io.Writer, p *planner.Plan, opts ReportOptions) error {
	bw := &errWriter{w: w}
	metric := func(name, typ, help string) { promMetric(bw, name, typ, help) }
	per := p.PerCache()
	checkMetrics(bw, p.CreatedAt, true)
	metric("cachectl_drift", "gauge", "1 when the cache differs from the spec (apply would change it), else 0.")
	for _, s := range per {
		d := 0
		if s.Drifted() {
			d = 1
		}
		bw.printf("cachectl_drift{cache=%s,runtime=%s} %d\n", promLabel(s.Cache), promLabel(s.Runtime), d)
	}
	metric("cachectl_artifacts", "gauge", "Artifacts of the cache by planned action (no-op means in sync).")
	for _, s := range per {
		counts := map[string]int{}
		for _, a := range []planner.Action{planner.ActionNoop, planner.ActionCreate, planner.ActionUpdate, planner.ActionReplace, planner.ActionDelete, planner.ActionOrphan} {
			counts[string(a)] = 0 // every series present, also at zero
		}
		for _, ch := range p.Changes {
			if ch.Cache == s.Cache && ch.Kind != planner.KindDirectory {
				counts[string(ch.Action)]++
			}
		}
		var actions []string
		for a := range counts {
			actions = append(actions, a)
		}
		sort.Strings(actions)
		for _, a := range actions {
			bw.printf("cachectl_artifacts{cache=%s,action=%s} %d\n", promLabel(s.Cache), promLabel(a), counts[a])
		}
	}
	metric("cachectl_unmanaged_files", "gauge", "Files under the cache root that cachectl did not place.")
	for _, s := range per {
		bw.printf("cachectl_unmanaged_files{cache=%s} %d\n", promLabel(s.Cache), s.Unmanaged)
	}
	metric("cachectl_plan_download_bytes", "gauge", "Bytes apply would download (blobs not in the store).")
	bw.printf("cachectl_plan_download_bytes %d\n", p.Summary.DownloadBytes)
	metric("cachectl_plan_write_bytes", "gauge", "Upper bound of the bytes apply would write.")
	bw.printf("cachectl_plan_write_bytes %d\n", p.Summary.WriteBytes)
	lastApplyPrometheus(bw, p, opts)
	return bw.err
}

// RenderFailedPrometheus writes the metrics of a check that failed:
// cachectl_check_success 0 and the time, no drift gauges (the drift is
// unknown: a stale 0 would say "in sync"), and the last apply of each
// cache when p (a partial plan, or nil) names the roots. An alert on
// cachectl_check_success == 0 catches a check that keeps failing.
func RenderFailedPrometheus(w io.Writer, p *planner.Plan, f CheckFailure, opts ReportOptions) error {
	bw := &errWriter{w: w}
	checkMetrics(bw, f.At, false)
	lastApplyPrometheus(bw, p, opts)
	return bw.err
}

func promMetric(bw *errWriter, name, typ, help string) {
	bw.printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// checkMetrics writes cachectl_check_success (1: the check ran) and
// cachectl_check_timestamp_seconds.
func checkMetrics(bw *errWriter, at time.Time, ok bool) {
	promMetric(bw, "cachectl_check_success", "gauge", "1 when the check (the plan behind this report) ran, 0 when it failed: then no drift metrics are written, the drift being unknown.")
	v := 0
	if ok {
		v = 1
	}
	bw.printf("cachectl_check_success %d\n", v)
	promMetric(bw, "cachectl_check_timestamp_seconds", "gauge", "When the check ran (Unix time).")
	bw.printf("cachectl_check_timestamp_seconds %d\n", at.Unix())
}

// lastApplyPrometheus writes the cachectl_last_apply_* gauges of the
// plan's roots that have a record (p nil: none).
func lastApplyPrometheus(bw *errWriter, p *planner.Plan, opts ReportOptions) {
	if p == nil || len(opts.LastApply) == 0 {
		return
	}
	last := func(name, help string, value func(*history.Record) string) {
		promMetric(bw, name, "gauge", help)
		for _, r := range p.Roots {
			if l := opts.LastApply[r.Cache]; l != nil {
				bw.printf("%s{cache=%s} %s\n", name, promLabel(r.Cache), value(l))
			}
		}
	}
	last("cachectl_last_apply_timestamp_seconds", "When the last apply on the cache root finished (Unix time).",
		func(l *history.Record) string { return strconv.FormatInt(l.End.Unix(), 10) })
	last("cachectl_last_apply_success", "1 when the last apply on the cache root made every change it planned, else 0.",
		func(l *history.Record) string {
			if l.Success() {
				return "1"
			}
			return "0"
		})
	last("cachectl_last_apply_duration_seconds", "How long the last apply on the cache root ran.",
		func(l *history.Record) string { return strconv.FormatFloat(l.DurationSeconds, 'f', 3, 64) })
	last("cachectl_last_apply_downloaded_bytes", "Bytes the last apply downloaded from registries for the cache's images.",
		func(l *history.Record) string { return strconv.FormatInt(l.DownloadedBytes, 10) })
	last("cachectl_last_apply_written_bytes", "Bytes of the files the last apply placed in the cache root.",
		func(l *history.Record) string { return strconv.FormatInt(l.WrittenBytes, 10) })
}

// promLabel quotes a label value per the Prometheus text format.
func promLabel(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v) + `"`
}
