package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	junit "github.com/joshdk/go-junit"
	"go.yaml.in/yaml/v3"

	"github.com/cachectl/cachectl/planner/history"
	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// The tests of examples/: the CI pipelines, the systemd units, the cron
// line and the Determined configuration. The pipelines and the report jobs
// run for real, with the real cachectl, bash, jq and curl, against the demo
// setup of `make demo` (cmd/demo-registry and examples/demo.hcl); what only
// the CI service does (checking out, storing artifacts, posting a comment)
// is played by the test, and GitLab's API by a local server.

// demoEnv starts cmd/demo-registry (built with go build) and returns the
// environment that points cachectl at it and at fresh cache roots and
// store: what the runner of a cluster provides.
func demoEnv(t *testing.T) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	registrytest.RequireTool(t, "mksquashfs")
	registrytest.RequireTool(t, "jq")
	registrytest.RequireTool(t, "curl")
	goBin := registrytest.RequireTool(t, "go")
	dir := t.TempDir()
	bin := filepath.Join(dir, "demo-registry")
	if out, err := exec.Command(goBin, "build", "-o", bin, "../demo-registry").CombinedOutput(); err != nil {
		t.Fatalf("build demo-registry: %v\n%s", err, out)
	}
	addrFile := filepath.Join(dir, "addr")
	cmd := exec.Command(bin, "-addr-file", addrFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var addr []byte
	for i := 0; i < 200 && len(addr) == 0; i++ {
		time.Sleep(50 * time.Millisecond)
		addr, _ = os.ReadFile(addrFile)
	}
	if len(addr) == 0 {
		t.Fatal("demo-registry did not start")
	}
	return append(os.Environ(),
		"CACHECTL_VAR_registry="+strings.TrimSpace(string(addr)),
		"CACHECTL_VAR_root="+filepath.Join(dir, "caches"),
		"CACHECTL_STORE="+filepath.Join(dir, "store"),
		"CI=true",
	)
}

// checkout makes a fresh workspace holding the spec (examples/demo.hcl as
// cachectl.hcl, what the repository of a cluster would hold).
func checkout(t *testing.T, spec string) string {
	t.Helper()
	ws := t.TempDir()
	b, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "cachectl.hcl"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return ws
}

// shell runs a script with bash -e -o pipefail in dir and returns its
// combined output and exit code.
func shell(t *testing.T, dir string, env []string, script string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", "-e", "-o", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	code := exitStatus(t, cmd.Run())
	return out.String(), code
}

func envOf(base []string, maps ...map[string]string) []string {
	env := append([]string(nil), base...)
	for _, m := range maps {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			env = append(env, k+"="+m[k])
		}
	}
	return env
}

const brokenSpec = `cache "sif" {
  runtime = "apptainer"
  root    = "relative/path"
  images  = ["alpine:3.20"]
}
`

type ghStep struct {
	Name string            `yaml:"name"`
	Uses string            `yaml:"uses"`
	Run  string            `yaml:"run"`
	With map[string]string `yaml:"with"`
	Env  map[string]string `yaml:"env"`
}

type ghWorkflow struct {
	Name string            `yaml:"name"`
	On   map[string]any    `yaml:"on"`
	Env  map[string]string `yaml:"env"`
	Jobs map[string]struct {
		If    string            `yaml:"if"`
		Needs any               `yaml:"needs"`
		Env   map[string]string `yaml:"env"`
		Steps []ghStep          `yaml:"steps"`
	} `yaml:"jobs"`
}

// TestExampleGitHubActions runs examples/ci/github-actions.yml: the check
// job on the demo spec (and on a broken one: annotations), the plan job of a
// pull request (report in the job summary and the comment, plan uploaded),
// and the apply job after the merge in a fresh checkout with that plan.
func TestExampleGitHubActions(t *testing.T) {
	raw, err := os.ReadFile("../../examples/ci/github-actions.yml")
	if err != nil {
		t.Fatal(err)
	}
	var wf ghWorkflow
	if err := yaml.Unmarshal(raw, &wf); err != nil {
		t.Fatalf("github-actions.yml is not YAML: %v", err)
	}
	if len(wf.Jobs) != 3 || wf.On["pull_request"] == nil {
		t.Fatalf("jobs %v, on %v", wf.Jobs, wf.On)
	}
	for name, job := range wf.Jobs {
		for _, s := range job.Steps {
			if strings.Contains(s.Run, "${{") || strings.Contains(fmt.Sprint(s.Env), "${{") {
				t.Errorf("job %s, step %q: an expression in a shell line", name, s.Name)
			}
		}
	}
	env := demoEnv(t)
	artifacts := map[string][]byte{}
	var comment string
	runJob := func(name, ws string) map[string]string {
		job, ok := wf.Jobs[name]
		if !ok {
			t.Fatalf("no job %q", name)
		}
		summary := filepath.Join(t.TempDir(), "summary.md")
		out := map[string]string{"summary": summary}
		for _, s := range job.Steps {
			action, _, _ := strings.Cut(s.Uses, "@")
			switch action {
			case "":
			case "actions/checkout":
				continue // the workspace is the checkout
			case "actions/upload-artifact":
				b, err := os.ReadFile(filepath.Join(ws, s.With["path"]))
				if err != nil {
					t.Fatalf("upload-artifact: %v", err)
				}
				artifacts[s.With["name"]] = b
				out["artifact:"+s.With["name"]] = s.With["path"]
				continue
			case "dawidd6/action-download-artifact":
				b, ok := artifacts[s.With["name"]]
				if !ok {
					t.Fatalf("download-artifact: no artifact %q", s.With["name"])
				}
				os.WriteFile(filepath.Join(ws, "cache.plan"), b, 0o644)
				continue
			case "marocchino/sticky-pull-request-comment":
				b, err := os.ReadFile(filepath.Join(ws, s.With["path"]))
				if err != nil {
					t.Fatalf("comment: %v", err)
				}
				comment = string(b)
				continue
			default:
				t.Fatalf("job %s uses %s, which this test does not play", name, s.Uses)
			}
			stepEnv := envOf(env, wf.Env, job.Env, s.Env, map[string]string{
				"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": ws, "GITHUB_STEP_SUMMARY": summary,
			})
			o, code := shell(t, ws, stepEnv, s.Run)
			out[s.Name] = o
			if code != 0 {
				out["failed"] = s.Name
				return out
			}
		}
		return out
	}

	// A pull request: check, then plan.
	pr := checkout(t, "../../examples/demo.hcl")
	if out := runJob("check", pr); out["failed"] != "" {
		t.Fatalf("check failed at %q:\n%v", out["failed"], out)
	} else if strings.Contains(out["validate"], "::") {
		t.Errorf("annotations for a valid spec: %s", out["validate"])
	}
	out := runJob("plan", pr)
	if out["failed"] != "" {
		t.Fatalf("plan failed at %q:\n%v", out["failed"], out)
	}
	summary, _ := os.ReadFile(out["summary"])
	for _, s := range []string{string(summary), comment} {
		if !strings.Contains(s, "# cachectl drift report") || !strings.Contains(s, "**drift**: 5 to add") {
			t.Errorf("report not posted:\n%s", s)
		}
	}
	if len(artifacts["cache-plan"]) == 0 {
		t.Fatal("no plan uploaded")
	}

	// After the merge: a fresh checkout applies the uploaded plan.
	merged := checkout(t, "../../examples/demo.hcl")
	out = runJob("apply", merged)
	if out["failed"] != "" {
		t.Fatalf("apply failed at %q:\n%v", out["failed"], out)
	}
	if !strings.Contains(out["apply"], "Apply complete! Resources: 5 added") {
		t.Errorf("apply:\n%s", out["apply"])
	}
	summary, _ = os.ReadFile(out["summary"])
	if !regexp.MustCompile(`(?m) apply +success +\+2 ~0 -0 `).Match(summary) {
		t.Errorf("history not in the summary:\n%s", summary)
	}
	if o, code := shell(t, merged, env, "cachectl plan -detailed-exitcode"); code != 0 {
		t.Errorf("plan after apply: exit %d\n%s", code, o)
	}

	// A broken spec: validate fails with an annotation at the line.
	broken := t.TempDir()
	os.WriteFile(filepath.Join(broken, "cachectl.hcl"), []byte(brokenSpec), 0o644)
	out = runJob("check", broken)
	if out["failed"] != "validate" || !regexp.MustCompile(`(?m)^::error file=cachectl.hcl,line=3,col=\d+,endLine=3,endColumn=\d+::`).MatchString(out["validate"]) {
		t.Errorf("check of a broken spec: failed at %q\n%s", out["failed"], out["validate"])
	}
}

type glJob struct {
	Stage        string   `yaml:"stage"`
	BeforeScript []string `yaml:"before_script"`
	Script       []string `yaml:"script"`
	Artifacts    struct {
		Paths   []string          `yaml:"paths"`
		Reports map[string]string `yaml:"reports"`
	} `yaml:"artifacts"`
}

// fakeGitLab is the part of GitLab's REST API (v4) the pipeline uses.
type fakeGitLab struct {
	t       *testing.T
	token   string
	mu      sync.Mutex
	notes   []string
	planJob []byte
}

func (g *fakeGitLab) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("PRIVATE-TOKEN") != g.token {
		http.Error(w, `{"message":"401 Unauthorized"}`, http.StatusUnauthorized)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	p := r.URL.EscapedPath()
	switch {
	case r.Method == http.MethodPost && p == "/api/v4/projects/42/merge_requests/7/notes":
		r.ParseForm()
		g.notes = append(g.notes, r.PostForm.Get("body"))
		fmt.Fprint(w, `{"id":1}`)
	case r.Method == http.MethodGet && p == "/api/v4/projects/42/repository/commits/0123abcd/merge_requests":
		fmt.Fprint(w, `[{"iid":7,"state":"merged"}]`)
	case r.Method == http.MethodGet && p == "/api/v4/projects/42/merge_requests/7/pipelines":
		fmt.Fprint(w, `[{"id":101,"status":"running"},{"id":100,"status":"success"}]`)
	case r.Method == http.MethodGet && p == "/api/v4/projects/42/pipelines/100/jobs" && r.URL.Query().Get("scope[]") == "success":
		fmt.Fprint(w, `[{"id":554,"name":"check"},{"id":555,"name":"plan"}]`)
	case r.Method == http.MethodGet && p == "/api/v4/projects/42/jobs/555/artifacts/cache.plan" && g.planJob != nil:
		w.Write(g.planJob)
	default:
		g.t.Errorf("unexpected GitLab API call %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	}
}

// TestExampleGitLabCI runs examples/ci/gitlab-ci.yml: check (Code Quality
// report), plan in a merge request (note posted through the API, JUnit
// report), apply on the default branch in a fresh checkout with the plan
// fetched through the API.
func TestExampleGitLabCI(t *testing.T) {
	raw, err := os.ReadFile("../../examples/ci/gitlab-ci.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("gitlab-ci.yml is not YAML: %v", err)
	}
	var stages []string
	var vars map[string]string
	jobs := map[string]glJob{}
	for k, n := range doc {
		switch k {
		case "stages":
			n.Decode(&stages)
		case "variables":
			n.Decode(&vars)
		case "default", "workflow", "include":
		default:
			var j glJob
			if err := n.Decode(&j); err != nil {
				t.Fatalf("job %s: %v", k, err)
			}
			jobs[k] = j
		}
	}
	if strings.Join(stages, ",") != "check,plan,apply" || len(jobs) != 3 {
		t.Fatalf("stages %v, jobs %v", stages, jobs)
	}
	env := demoEnv(t)
	api := &fakeGitLab{t: t, token: "glpat-test"}
	srv := httptest.NewServer(api)
	defer srv.Close()
	ci := map[string]string{
		"GITLAB_CI": "true", "CI_API_V4_URL": srv.URL + "/api/v4", "CI_PROJECT_ID": "42",
		"CACHECTL_BOT_TOKEN": api.token, "CI_DEFAULT_BRANCH": "main",
	}
	runJob := func(name, ws string, extra map[string]string) (string, int) {
		j := jobs[name]
		script := strings.Join(append(append([]string(nil), j.BeforeScript...), j.Script...), "\n")
		return shell(t, ws, envOf(env, vars, ci, extra, map[string]string{"CI_PROJECT_DIR": ws, "CI_JOB_NAME": name}), script)
	}

	mr := checkout(t, "../../examples/demo.hcl")
	mrVars := map[string]string{"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "7", "CI_COMMIT_SHA": "feedbeef"}
	if out, code := runJob("check", mr, mrVars); code != 0 {
		t.Fatalf("check: exit %d\n%s", code, out)
	}
	var cq []map[string]any
	if b, err := os.ReadFile(filepath.Join(mr, jobs["check"].Artifacts.Reports["codequality"])); err != nil || json.Unmarshal(b, &cq) != nil || len(cq) != 0 {
		t.Errorf("code quality report of a valid spec: %v %s", err, b)
	}
	if out, code := runJob("plan", mr, mrVars); code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, out)
	}
	for _, p := range jobs["plan"].Artifacts.Paths {
		if _, err := os.Stat(filepath.Join(mr, p)); err != nil {
			t.Errorf("artifact %s: %v", p, err)
		}
	}
	if len(api.notes) != 1 || !strings.Contains(api.notes[0], "# cachectl drift report") || !strings.Contains(api.notes[0], "**drift**: 5 to add") {
		t.Errorf("notes posted: %q", api.notes)
	}
	suites, err := junit.IngestFile(filepath.Join(mr, jobs["plan"].Artifacts.Reports["junit"]))
	if err != nil || len(suites) != 3 {
		t.Fatalf("JUnit report: %v, %d suites", err, len(suites))
	}
	failed := 0
	for _, s := range suites {
		failed += s.Totals.Failed
	}
	if failed != 5 {
		t.Errorf("JUnit: %d failed test cases, want the 5 artifacts to create", failed)
	}

	// After the merge: the default branch's pipeline, in a fresh checkout.
	api.planJob, _ = os.ReadFile(filepath.Join(mr, "cache.plan"))
	main := checkout(t, "../../examples/demo.hcl")
	out, code := runJob("apply", main, map[string]string{"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "main", "CI_COMMIT_SHA": "0123abcd"})
	if code != 0 || !strings.Contains(out, "Apply complete! Resources: 5 added") || !regexp.MustCompile(`(?m) sif +apply +success `).MatchString(out) {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	recs, _, err := history.ReadRoot(filepath.Join(envValue(env, "CACHECTL_VAR_root"), "sif"))
	if err != nil || len(recs) == 0 || recs[len(recs)-1].PlanFile != "cache.plan" {
		t.Errorf("history: %+v %v", recs, err)
	}

	// A broken spec: check fails, with the problem in the Code Quality report.
	broken := t.TempDir()
	os.WriteFile(filepath.Join(broken, "cachectl.hcl"), []byte(brokenSpec), 0o644)
	if out, code := runJob("check", broken, mrVars); code != 1 {
		t.Errorf("check of a broken spec: exit %d\n%s", code, out)
	}
	b, _ := os.ReadFile(filepath.Join(broken, "gl-code-quality.json"))
	if err := json.Unmarshal(b, &cq); err != nil || len(cq) != 1 || fmt.Sprint(cq[0]["location"]) != "map[lines:map[begin:3] path:cachectl.hcl]" || cq[0]["severity"] != "major" {
		t.Errorf("code quality report: %v\n%s", err, b)
	}
}

func envValue(env []string, key string) string {
	v := ""
	for _, e := range env {
		if k, val, ok := strings.Cut(e, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// TestExampleReportTimer: the systemd units pass systemd-analyze verify
// (where it runs; with the generated man page for Documentation=), and the
// service's commands, like the cron line's, write the Prometheus text file
// and the Markdown report of the demo setup.
func TestExampleReportTimer(t *testing.T) {
	env := demoEnv(t)
	bin, err := exec.LookPath("cachectl")
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := os.ReadFile("../../examples/systemd/cachectl-report.service")
	timer, _ := os.ReadFile("../../examples/systemd/cachectl-report.timer")
	out := t.TempDir()
	// The paths of a host, moved under the test's directory.
	local := strings.NewReplacer("/usr/local/bin/cachectl", bin, "/var/lib/", out+"/", "/etc/cachectl/cachectl.hcl", filepath.Join(out, "cachectl.hcl"))
	ws := checkout(t, "../../examples/demo.hcl")
	os.Rename(filepath.Join(ws, "cachectl.hcl"), filepath.Join(out, "cachectl.hcl"))

	t.Run("systemd-analyze", func(t *testing.T) {
		sa, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze not installed")
		}
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "man", "man1"), 0o755)
		var page bytes.Buffer
		Run(t.Context(), []string{"man"}, nil, &page, io.Discard)
		os.WriteFile(filepath.Join(dir, "man", "man1", "cachectl.1"), page.Bytes(), 0o644)
		os.WriteFile(filepath.Join(dir, "cachectl-report.service"), []byte(local.Replace(string(svc))), 0o644)
		os.WriteFile(filepath.Join(dir, "cachectl-report.timer"), timer, 0o644)
		cmd := exec.Command(sa, "verify", filepath.Join(dir, "cachectl-report.service"), filepath.Join(dir, "cachectl-report.timer"))
		cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(dir, "man"))
		b, err := cmd.CombinedOutput()
		if err != nil && bytes.Contains(b, []byte("Failed to")) && !bytes.Contains(b, []byte("cachectl")) {
			t.Skipf("systemd-analyze verify does not run here: %s", b)
		}
		if err != nil || len(bytes.TrimSpace(b)) > 0 {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, b)
		}
	})

	// The service's Environment= and ExecStart= lines, as systemd runs them.
	svcEnv := map[string]string{}
	var execs []string
	for _, l := range strings.Split(local.Replace(string(svc)), "\n") {
		if v, ok := strings.CutPrefix(l, "Environment="); ok {
			k, val, _ := strings.Cut(v, "=")
			svcEnv[k] = val
		}
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			execs = append(execs, v)
		}
	}
	svcEnv["CACHECTL_STORE"] = envValue(env, "CACHECTL_STORE")
	if len(execs) != 2 {
		t.Fatalf("ExecStart lines: %q", execs)
	}
	os.MkdirAll(filepath.Join(out, "node_exporter", "textfile"), 0o755)
	os.MkdirAll(filepath.Join(out, "cachectl"), 0o755)
	// runService runs the ExecStart= lines in order as systemd does for a
	// oneshot unit: a failing command stops the unit unless its line
	// starts with "-" (failure ignored). It returns the unit's output and
	// whether it failed.
	runService := func() (string, bool) {
		var all strings.Builder
		for _, e := range execs {
			cmdline, ignore := strings.CutPrefix(e, "-")
			o, code := shell(t, out, envOf(env, svcEnv), cmdline)
			all.WriteString(o)
			if code != 0 && !ignore {
				return all.String(), true
			}
		}
		return all.String(), false
	}
	if o, failed := runService(); failed {
		t.Fatalf("the service failed:\n%s", o)
	}
	checkReports(t, out, true)

	// The cron line: the same reports.
	cron, _ := os.ReadFile("../../examples/cron/cachectl")
	cronEnv := map[string]string{}
	line := regexp.MustCompile(`^(\S+ \S+ \S+ \S+ \S+) (\S+) (.+)$`)
	var cronCmds []string
	for _, l := range strings.Split(local.Replace(string(cron)), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if m := line.FindStringSubmatch(l); m != nil && !strings.Contains(m[1], "=") {
			if !regexp.MustCompile(`^[0-9*/,-]+( [0-9*/,-]+){4}$`).MatchString(m[1]) || m[2] != "root" {
				t.Errorf("cron schedule or user: %q", l)
			}
			cronCmds = append(cronCmds, m[3])
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("not a cron line: %q", l)
		}
		cronEnv[k] = v
	}
	if len(cronCmds) != 1 || cronEnv["SHELL"] != "/bin/sh" {
		t.Fatalf("cron lines %q, SHELL=%q", cronCmds, cronEnv["SHELL"])
	}
	cronEnv["CACHECTL_STORE"] = envValue(env, "CACHECTL_STORE")
	cronEnv["PATH"] = filepath.Dir(bin) + ":" + os.Getenv("PATH")
	// runCron runs the cron line as cron does: SHELL -c LINE.
	runCron := func() (string, int) {
		os.Remove(filepath.Join(out, "node_exporter", "textfile", "cachectl.prom"))
		os.Remove(filepath.Join(out, "cachectl", "report.md"))
		cmd := exec.Command(cronEnv["SHELL"], "-c", cronCmds[0])
		cmd.Dir, cmd.Env = out, envOf(env, cronEnv)
		b, err := cmd.CombinedOutput()
		return string(b), exitStatus(t, err)
	}
	if o, code := runCron(); code != 0 {
		t.Fatalf("cron command: exit %d\n%s", code, o)
	}
	checkReports(t, out, true)

	// A check that fails (here a spec error) still rewrites both reports,
	// saying so, and fails the unit and the cron job.
	specFile := filepath.Join(out, "cachectl.hcl")
	good, _ := os.ReadFile(specFile)
	os.WriteFile(specFile, append(append([]byte(nil), good...), "\ncache \"broken\" {\n  runtime = \"nope\"\n}\n"...), 0o644)
	defer os.WriteFile(specFile, good, 0o644)
	os.Remove(filepath.Join(out, "node_exporter", "textfile", "cachectl.prom"))
	os.Remove(filepath.Join(out, "cachectl", "report.md"))
	if o, failed := runService(); !failed {
		t.Errorf("the service succeeded with a failed check:\n%s", o)
	}
	checkReports(t, out, false)
	if o, code := runCron(); code == 0 {
		t.Errorf("the cron command exited 0 with a failed check:\n%s", o)
	}
	checkReports(t, out, false)
}

// checkReports checks the Prometheus text file and the Markdown report
// the examples write: of the demo set-up's drift (ok), or of a failed
// check.
func checkReports(t *testing.T, dir string, ok bool) {
	t.Helper()
	prom, err := os.ReadFile(filepath.Join(dir, "node_exporter", "textfile", "cachectl.prom"))
	wantProm, wantMD := `cachectl_drift{cache="sif",runtime="apptainer"} 1`, "# cachectl drift report"
	if !ok {
		wantProm, wantMD = "cachectl_check_success 0\n", "**check failed**"
	}
	if err != nil || !bytes.Contains(prom, []byte(wantProm)) {
		t.Errorf("Prometheus text file: %v\n%s", err, prom)
	}
	md, err := os.ReadFile(filepath.Join(dir, "cachectl", "report.md"))
	if err != nil || !bytes.Contains(md, []byte(wantMD)) {
		t.Errorf("Markdown report: %v\n%s", err, md)
	}
}

// TestExampleDetermined: master.yaml and experiment.yaml parse, and their
// image settings are what `list --determined` prints for
// examples/determined.hcl.
func TestExampleDetermined(t *testing.T) {
	var master struct {
		ResourceManager struct {
			Type                 string `yaml:"type"`
			ContainerRunType     string `yaml:"container_run_type"`
			SingularityImageRoot string `yaml:"singularity_image_root"`
		} `yaml:"resource_manager"`
		TaskContainerDefaults struct {
			Image map[string]string `yaml:"image"`
		} `yaml:"task_container_defaults"`
	}
	var exp struct {
		Environment struct {
			Image map[string]string `yaml:"image"`
		} `yaml:"environment"`
	}
	for f, v := range map[string]any{"master.yaml": &master, "experiment.yaml": &exp} {
		b, err := os.ReadFile("../../examples/determined/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	var out bytes.Buffer
	if code := Run(t.Context(), []string{"-f", "../../examples/determined.hcl", "list", "--determined"}, nil, &out, os.Stderr); code != 0 {
		t.Fatalf("list --determined: exit %d", code)
	}
	// The block of cache "sif".
	block := out.String()[strings.Index(out.String(), `# cache "sif"`):]
	block = block[:strings.Index(block, "\n\n")]
	root := regexp.MustCompile(`singularity_image_root: (\S+)`).FindStringSubmatch(block)
	if master.ResourceManager.Type != "slurm" || master.ResourceManager.ContainerRunType != "singularity" || root == nil || master.ResourceManager.SingularityImageRoot != root[1] {
		t.Errorf("resource_manager %+v; list prints %q", master.ResourceManager, root)
	}
	var defaults struct {
		TaskContainerDefaults struct {
			Image map[string]string `yaml:"image"`
		} `yaml:"task_container_defaults"`
	}
	if err := yaml.Unmarshal([]byte(out.String()[strings.Index(out.String(), "task_container_defaults:"):]), &defaults); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(master.TaskContainerDefaults.Image) != fmt.Sprint(defaults.TaskContainerDefaults.Image) || len(defaults.TaskContainerDefaults.Image) == 0 {
		t.Errorf("task_container_defaults.image %v, list prints %v", master.TaskContainerDefaults.Image, defaults.TaskContainerDefaults.Image)
	}
	for typ, img := range exp.Environment.Image {
		if !strings.Contains(block, "environment.image: "+img+" ") {
			t.Errorf("experiment image %s: %q is not an image of cache \"sif\"", typ, img)
		}
	}
}
