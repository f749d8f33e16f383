package views

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/planner/history"
)

func reportPlan() *planner.Plan {
	p := &planner.Plan{FormatVersion: planner.FormatVersion, CreatedAt: time.Unix(1700000000, 0), Refreshed: true, SpecFiles: []string{"cachectl.hcl"},
		Roots: []planner.RootPlan{
			{Cache: "sif", Runtime: "apptainer", Root: "/shared/sif", Unmanaged: []cacheroot.UnmanagedFile{{Name: "x.sif", Size: 10}}},
			{Cache: `we"ird\`, Runtime: "enroot", Root: "/shared/sqsh"},
		},
		Changes: []planner.Change{
			{Address: `cache.sif["a:1"]`, Kind: "artifact", Cache: "sif", Action: planner.ActionNoop},
			{Address: `cache.sif["b:1"]`, Kind: "artifact", Cache: "sif", Action: planner.ActionReplace, Reasons: []planner.Reason{{Code: planner.ReasonTagMoved, Message: "tag moved: x | y"}}},
			{Address: `cache.sif.dir["team"]`, Kind: "directory", Cache: "sif", Action: planner.ActionUpdate},
			{Address: `cache.we"ird\["c:1"]`, Kind: "artifact", Cache: `we"ird\`, Action: planner.ActionNoop},
		}}
	p.Summarize()
	return p
}

func TestRenderPrometheus(t *testing.T) {
	var b strings.Builder
	if err := RenderPrometheus(&b, reportPlan(), ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	sample := regexp.MustCompile(`^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+]+$`)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		if !sample.MatchString(line) {
			t.Errorf("not a valid sample line: %q", line)
		}
	}
	for _, want := range []string{
		`cachectl_drift{cache="sif",runtime="apptainer"} 1`,
		`cachectl_drift{cache="we\"ird\\",runtime="enroot"} 0`,
		`cachectl_artifacts{cache="sif",action="replace"} 1`,
		`cachectl_artifacts{cache="sif",action="no-op"} 1`,
		`cachectl_artifacts{cache="sif",action="update"} 0`, // directories are not artifacts
		`cachectl_unmanaged_files{cache="sif"} 1`,
		`cachectl_check_timestamp_seconds 1700000000`,
		`cachectl_check_success 1`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

func TestRenderMarkdown(t *testing.T) {
	var b strings.Builder
	if err := RenderMarkdown(&b, reportPlan(), ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"**drift**: 1 to add, 1 to change, 1 to destroy",
		"| sif | apptainer | `/shared/sif` | 1 | 1 | 1 | 1 | 0 | 1 |",
		"| `-/+` replace | `cache.sif[\"b:1\"]` |",
		`tag moved: x \| y`,
		"`/shared/sif/x.sif`",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

// The last apply of each cache (from its history) in Prometheus metrics and
// in the Markdown report.
func TestReportLastApply(t *testing.T) {
	p, _, opts := junitInput()
	opts.LastApply["sif"].DurationSeconds = 9.5
	opts.LastApply["sif"].DownloadedBytes = 2048
	opts.LastApply["sif"].WrittenBytes = 40960
	var b strings.Builder
	if err := RenderPrometheus(&b, p, opts); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# TYPE cachectl_last_apply_timestamp_seconds gauge",
		`cachectl_last_apply_timestamp_seconds{cache="sif"} 1772503209`,
		`cachectl_last_apply_success{cache="sif"} 0`,
		`cachectl_last_apply_duration_seconds{cache="sif"} 9.500`,
		`cachectl_last_apply_downloaded_bytes{cache="sif"} 2048`,
		`cachectl_last_apply_written_bytes{cache="sif"} 40960`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), `cachectl_last_apply_success{cache="we`) {
		t.Error("a cache without history has last-apply series")
	}
	b.Reset()
	if err := RenderMarkdown(&b, p, opts); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## Last apply",
		"| sif | 2026-03-03 02:00 UTC | failed | root@login1, Slurm job 42 | +0 ~0 -0 | 2.0 KiB | 40.0 KiB | 9.5s |",
		"| we\"ird\\ | never |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
}

// A failed check: success 0, the time, the last applies of the roots a
// partial plan names, and no drift gauge (a stale 0 would read "in sync").
func TestRenderFailedPrometheus(t *testing.T) {
	p := reportPlan()
	opts := ReportOptions{LastApply: map[string]*history.Record{"sif": {Result: history.ResultSuccess, End: time.Unix(1699990000, 0), DurationSeconds: 3}}}
	f := CheckFailure{At: time.Unix(1700000100, 0), Problems: ProblemLines(errors.New("2 problems:\n  * cache \"sif\": registry down\n  * x"))}
	if len(f.Problems) != 2 || f.Problems[0] != `cache "sif": registry down` {
		t.Fatalf("ProblemLines = %q", f.Problems)
	}
	for _, tc := range []struct {
		p    *planner.Plan
		want []string
	}{
		{nil, []string{"cachectl_check_success 0", "cachectl_check_timestamp_seconds 1700000100"}},
		{p, []string{"cachectl_check_success 0", `cachectl_last_apply_success{cache="sif"} 1`, `cachectl_last_apply_timestamp_seconds{cache="sif"} 1699990000`}},
	} {
		var b strings.Builder
		if err := RenderFailedPrometheus(&b, tc.p, f, opts); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, want := range tc.want {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("missing %q in:\n%s", want, out)
			}
		}
		for _, bad := range []string{"cachectl_drift", "cachectl_artifacts", "cachectl_unmanaged_files", "cachectl_plan_"} {
			if strings.Contains(out, bad) {
				t.Errorf("a failed check reports %s:\n%s", bad, out)
			}
		}
	}
	var md strings.Builder
	f.Detail = "spec.hcl:1:1: error: ```odd```"
	if err := RenderFailedMarkdown(&md, p, f, opts); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"**check failed**", "- cache \"sif\": registry down\n- x\n", "~~~~\nspec.hcl:1:1: error: ```odd```\n~~~~\n", "## Last apply"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
}
