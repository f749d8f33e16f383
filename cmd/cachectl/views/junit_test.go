package views

import (
	"encoding/xml"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	junit "github.com/joshdk/go-junit"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/history"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/NAME (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := "testdata/" + name
	if *updateGolden {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update to accept):\n%s", path, got)
	}
}

func junitInput() (*planner.Plan, error, ReportOptions) {
	p := reportPlan()
	p.Changes = append(p.Changes, planner.Change{Address: `cache.sif["old:1"]`, Kind: "artifact", Cache: "sif", Action: planner.ActionOrphan,
		Reasons: []planner.Reason{{Code: planner.ReasonLeftSpec, Message: "no longer in the spec; prune is off"}}})
	err := errors.New("2 problems:\n  * cache.sif[\"b:1\"]: /shared/sif/b:1 exists and was not placed by cachectl <adopt>\n  * registry r.example: connection refused")
	end := time.Date(2026, 3, 3, 2, 0, 9, 0, time.UTC)
	opts := ReportOptions{LastApply: map[string]*history.Record{
		"sif": {Command: "apply", Cache: "sif", End: end, Result: history.ResultFailed, User: "root", Host: "login1", SlurmJobID: "42"},
	}}
	return p, err, opts
}

// TestRenderJUnitGolden: one suite per cache, one case per artifact, drift
// as failures with their reasons, plan errors as errors; encoding/xml and a
// JUnit consumer (github.com/joshdk/go-junit) read it back.
func TestRenderJUnitGolden(t *testing.T) {
	p, perr, opts := junitInput()
	var b strings.Builder
	if err := RenderJUnit(&b, p, perr, opts); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.junit.xml", b.String())

	var back junitSuites
	if err := xml.Unmarshal([]byte(b.String()), &back); err != nil {
		t.Fatalf("encoding/xml: %v", err)
	}
	if back.Tests != 6 || back.Failures != 1 || back.Errors != 2 || len(back.Suites) != 3 {
		t.Errorf("totals: %d tests, %d failures, %d errors, %d suites", back.Tests, back.Failures, back.Errors, len(back.Suites))
	}

	suites, err := junit.Ingest([]byte(b.String()))
	if err != nil {
		t.Fatalf("go-junit: %v", err)
	}
	status := map[string]junit.Status{}
	msgs := map[string]string{}
	for _, s := range suites {
		for _, tc := range s.Tests {
			status[s.Name+" "+tc.Name] = tc.Status
			if tc.Error != nil {
				msgs[s.Name+" "+tc.Name] = tc.Error.Error()
			}
		}
	}
	want := map[string]junit.Status{
		`sif cache.sif["a:1"]`:         junit.StatusPassed,
		`sif cache.sif["b:1"]`:         junit.StatusError, // drift and an error: the error wins
		`sif cache.sif.dir["team"]`:    junit.StatusFailed,
		`sif cache.sif["old:1"]`:       junit.StatusSkipped,
		`we"ird\ cache.we"ird\["c:1"]`: junit.StatusPassed,
		`cachectl plan`:                junit.StatusError,
	}
	for k, v := range want {
		if status[k] != v {
			t.Errorf("%s: status %q, want %q (all: %v)", k, status[k], v, status)
		}
	}
	if !strings.Contains(msgs[`cachectl plan`], "connection refused") || !strings.Contains(msgs[`sif cache.sif["b:1"]`], "<adopt>") {
		t.Errorf("error messages: %v", msgs)
	}
}

// With no plan at all (the plan failed), the report is still JUnit with the
// error.
func TestRenderJUnitNoPlan(t *testing.T) {
	var b strings.Builder
	if err := RenderJUnit(&b, nil, errors.New(`cache "sif": scan /x: permission denied`), ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	suites, err := junit.Ingest([]byte(b.String()))
	if err != nil || len(suites) != 1 || len(suites[0].Tests) != 1 || suites[0].Tests[0].Status != junit.StatusError {
		t.Fatalf("%v %+v\n%s", err, suites, b.String())
	}
}
