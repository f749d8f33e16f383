package views

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/cachectl/cachectl/planner"
)

// JUnit XML, as CI dashboards read it (Jenkins' junit-10.xsd, GitLab's and
// GitHub test reporters): <testsuites> of <testsuite name tests failures
// errors skipped> of <testcase name classname> with <failure>, <error> or
// <skipped>.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties *junitPropList  `xml:"properties,omitempty"`
	Cases      []junitTestCase `xml:"testcase"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

type junitPropList struct {
	Props []junitProp `xml:"property"`
}

type junitProp struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitTestCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",cdata"`
}

// RenderJUnit writes a drift report as JUnit XML for CI dashboards: one
// test suite per cache, one test case per artifact (and per directory
// cachectl created). An artifact in sync passes; one apply would change
// fails with the action and its reasons; an orphan (left the spec, no
// prune) is skipped. planErr, the error planning returned (p may then be
// nil or partial), becomes <error> elements: on the test case of the
// artifact a problem names, else on a "plan" test case of its cache, else
// of a "cachectl" suite.
func RenderJUnit(w io.Writer, p *planner.Plan, planErr error, opts ReportOptions) error {
	out := junitSuites{Name: "cachectl drift", Time: "0"}
	problems := ProblemLines(planErr)
	used := make([]bool, len(problems))
	take := func(match func(string) bool) []string {
		var mine []string
		for i, pr := range problems {
			if !used[i] && match(pr) {
				used[i] = true
				mine = append(mine, pr)
			}
		}
		return mine
	}
	if p != nil {
		stamp := p.CreatedAt.UTC().Format("2006-01-02T15:04:05")
		for _, r := range p.Roots {
			s := junitSuite{Name: r.Cache, Time: "0", Timestamp: stamp}
			props := []junitProp{{"runtime", r.Runtime}, {"root", r.Root}}
			if l := opts.LastApply[r.Cache]; l != nil {
				props = append(props, junitProp{"last_apply_result", l.Result},
					junitProp{"last_apply_finished", l.End.UTC().Format("2006-01-02T15:04:05Z")},
					junitProp{"last_apply_by", Runner(l)})
			}
			s.Properties = &junitPropList{props}
			for _, ch := range p.Changes {
				if ch.Cache != r.Cache {
					continue
				}
				tc := junitTestCase{Name: ch.Address, Classname: "cachectl." + r.Cache, Time: "0"}
				var why []string
				for _, rs := range ch.Reasons {
					why = append(why, rs.Message)
				}
				switch {
				case ch.Action == planner.ActionOrphan:
					tc.Skipped = &junitMessage{Message: "orphaned: " + strings.Join(why, "; ")}
				case ch.Action.IsChange():
					msg, text := string(ch.Action), fmt.Sprintf("%s %s\n", ch.Action.Symbol(), ch.Address)
					if len(why) > 0 {
						msg += ": " + strings.Join(why, "; ")
					}
					if ch.Path != "" {
						text += "path: " + ch.Path + "\n"
					}
					for _, w := range why {
						text += w + "\n"
					}
					tc.Failure = &junitMessage{Message: msg, Type: string(ch.Action), Text: text}
				}
				addr := ch.Address
				if errs := take(func(pr string) bool { return strings.HasPrefix(pr, addr+":") }); len(errs) > 0 {
					tc.Error = &junitMessage{Message: errs[0], Type: "error", Text: strings.Join(errs, "\n") + "\n"}
				}
				s.add(tc)
			}
			prefix := fmt.Sprintf("cache %q:", r.Cache)
			if errs := take(func(pr string) bool { return strings.HasPrefix(pr, prefix) }); len(errs) > 0 {
				s.add(junitTestCase{Name: "plan", Classname: "cachectl." + r.Cache, Time: "0",
					Error: &junitMessage{Message: errs[0], Type: "error", Text: strings.Join(errs, "\n") + "\n"}})
			}
			var un []string
			for _, u := range r.Unmanaged {
				un = append(un, fmt.Sprintf("unmanaged: %s (%s)", Printable(strings.TrimSuffix(r.Root, "/")+"/"+u.Name), planner.HumanBytes(u.Size)))
			}
			if len(un) > 0 {
				s.SystemOut = strings.Join(un, "\n") + "\n"
			}
			out.add(s)
		}
	}
	if rest := take(func(string) bool { return true }); len(rest) > 0 {
		s := junitSuite{Name: "cachectl", Time: "0"}
		s.add(junitTestCase{Name: "plan", Classname: "cachectl", Time: "0",
			Error: &junitMessage{Message: rest[0], Type: "error", Text: strings.Join(rest, "\n") + "\n"}})
		out.add(s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func (s *junitSuite) add(tc junitTestCase) {
	s.Tests++
	switch {
	case tc.Error != nil:
		s.Errors++
	case tc.Failure != nil:
		s.Failures++
	case tc.Skipped != nil:
		s.Skipped++
	}
	s.Cases = append(s.Cases, tc)
}

func (out *junitSuites) add(s junitSuite) {
	out.Tests += s.Tests
	out.Failures += s.Failures
	out.Errors += s.Errors
	out.Suites = append(out.Suites, s)
}
