package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/alecthomas/kong"
)

// ManCmd writes the man page (roff, man(7) macros) generated from the
// command-line definition: every command with its arguments, flags, help
// and examples. `make man` writes it to bin/cachectl.1.
type ManCmd struct{}

// Run writes the page.
func (ManCmd) Run(app *kong.Kong, iox *IO) error {
	return writeMan(iox.Stdout, app.Model)
}

// manExtra are the sections that are not in the command definitions.
const manExtra = `.SH EXIT STATUS
.TP
.B 0
Success; with \-\-detailed\-exitcode (plan, report): no changes.
.TP
.B 1
Error: a bad spec, a registry failure, a stale plan, an artifact that failed, an interrupted apply, fmt \-\-check with files to format, validate \-\-strict with warnings.
.TP
.B 2
plan or report with \-\-detailed\-exitcode: changes are pending (drift).
.SH ENVIRONMENT
.TP
.B CACHECTL_SPEC
The spec file or directory (\-\-spec).
.TP
.B CACHECTL_STORE
The blob store directory (\-\-store).
.TP
.BI CACHECTL_VAR_ name
The value of variable \fIname\fR (below \-\-var\-file and \-\-var).
.TP
.B CACHECTL_CONFIRM_STDIN
When set, apply reads its confirmation from a standard input that is not a terminal.
.TP
.B NO_COLOR
When set, no colour.
.TP
.BR SLURM_JOB_ID ", " SUDO_USER
Recorded in the history of each cache root that apply or import changes.
.SH FILES
.TP
.IB root /.cachectl/index.json
What cachectl placed in a cache root (reference, digests, size, sha256, mode, owner).
.TP
.IB root /.cachectl/history.jsonl
One JSON record per apply or import (newest last, the newest 1000 kept); see \fBcachectl history\fR.
.TP
.IB root /.cachectl/lock
The lock apply and import hold on a root (flock(2)); it names its holder.
.TP
.I /var/cache/cachectl/store
The blob store as root (else \fI~/.cache/cachectl/store\fR).
.SH SEE ALSO
.BR apptainer (1),
.BR enroot (1),
.BR podman (1),
.BR mksquashfs (1),
.BR terraform (1)
`

// writeMan writes app's man page to w.
func writeMan(w io.Writer, app *kong.Application) error {
	ew := &manWriter{w: w}
	help := strings.TrimSpace(app.Help)
	ew.printf(".TH CACHECTL 1 \"\" \"cachectl %s\" \"User Commands\"\n", roffText(Version))
	ew.printf(".nh\n.ad l\n") // no hyphenation, ragged right: names and flags copy whole
	ew.printf(".SH NAME\ncachectl \\- %s\n", roffText(strings.TrimSuffix(lowerFirst(help), ".")))
	ew.printf(".SH SYNOPSIS\n.B cachectl\n[\\fIglobal flags\\fR] \\fIcommand\\fR [\\fIflags\\fR] [\\fIarguments\\fR]\n")
	ew.printf(".SH DESCRIPTION\n%s\n.PP\nEvery command has \\fB\\-\\-help\\fR. Terraform's one\\-dash spelling of long flags (\\fB\\-out\\fR, \\fB\\-auto\\-approve\\fR) is accepted too.\n", roffText(help))
	ew.printf(".SH GLOBAL FLAGS\n")
	manFlags(ew, app.Node.Flags)
	ew.printf(".SH COMMANDS\n")
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, c := range n.Children {
			if c.Hidden {
				continue
			}
			manCommand(ew, c)
			walk(c)
		}
	}
	walk(app.Node)
	ew.printf("%s", manExtra)
	return ew.err
}

func manCommand(w *manWriter, n *kong.Node) {
	w.printf(".SS \"%s\"\n", roffQuoted("cachectl "+n.Summary()))
	if n.Help != "" {
		w.printf("%s\n", roffText(n.Help))
	}
	if len(n.Positional) > 0 {
		w.printf(".PP\nArguments:\n")
		for _, p := range n.Positional {
			w.printf(".TP\n.I %s\n%s\n", roffText(p.Name), roffText(p.Help))
		}
	}
	if len(n.Flags) > 0 {
		w.printf(".PP\nFlags:\n")
		manFlags(w, n.Flags)
	}
	if d := strings.TrimSpace(n.Detail); d != "" {
		manDetail(w, d)
	}
}

// manDetail writes a command's help text (kong's Detail): each run of
// unindented lines is prose, one paragraph that man fills to the page
// width; indented lines (examples, option lists) keep their layout, in a
// no-fill block right below the prose line that introduces them
// ("Examples:").
func manDetail(w *manWriter, d string) {
	lines := strings.Split(d, "\n")
	indented := func(l string) bool { return strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") }
	blank := true // a paragraph break before the next block
	for i := 0; i < len(lines); {
		switch l := lines[i]; {
		case strings.TrimSpace(l) == "":
			blank = true
			i++
		case indented(l):
			if blank {
				w.printf(".PP\n")
			}
			w.printf(".RS 2\n.nf\n")
			for ; i < len(lines) && indented(lines[i]); i++ {
				w.printf("%s\n", roffLine(strings.TrimPrefix(strings.TrimPrefix(lines[i], "  "), "\t")))
			}
			w.printf(".fi\n.RE\n")
			blank = false
		default:
			var para []string
			for ; i < len(lines) && strings.TrimSpace(lines[i]) != "" && !indented(lines[i]); i++ {
				para = append(para, lines[i])
			}
			w.printf(".PP\n%s\n", roffText(strings.Join(para, " ")))
			blank = false
		}
	}
}

func manFlags(w *manWriter, flags []*kong.Flag) {
	for _, f := range flags {
		if f.Hidden {
			continue
		}
		tag := "\\fB\\-\\-" + roffText(f.Name) + "\\fR"
		if f.Short != 0 {
			tag = "\\fB\\-" + roffText(string(f.Short)) + "\\fR, " + tag
		}
		if !f.IsBool() {
			tag += "=\\fI" + roffText(f.FormatPlaceHolder()) + "\\fR"
		}
		help := f.Help
		if f.IsBool() && f.Tag.Negatable != "" {
			help += " (--no-" + f.Name + " to turn off)"
		}
		if f.HasDefault && f.Default != "" && !f.IsBool() {
			help += " Default: " + f.Default + "."
		}
		if len(f.Envs) > 0 {
			help += " Environment: " + strings.Join(f.Envs, ", ") + "."
		}
		w.printf(".TP\n%s\n%s\n", tag, roffText(help))
	}
}

// roffText escapes text for a filled roff line: backslashes, hyphens (so
// that flags copy as ASCII '-'), and a leading '.' or '\” that would make
// the line a request.
func roffText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return roffLine(s)
}

// roffLine escapes one line as roffText does, keeping its spacing (for
// .nf blocks).
func roffLine(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffQuoted escapes s for a quoted macro argument.
func roffQuoted(s string) string {
	return strings.ReplaceAll(roffText(s), `"`, `\(dq`)
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

type manWriter struct {
	w   io.Writer
	err error
}

func (m *manWriter) printf(format string, args ...any) {
	if m.err == nil {
		_, m.err = fmt.Fprintf(m.w, format, args...)
	}
}
