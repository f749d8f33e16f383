package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/mitchellh/go-wordwrap"
)

// Diagnostics are the problems found while loading a spec, with the parsed
// files so that they can be shown with their source lines.
type Diagnostics struct {
	hcl.Diagnostics
	// Files maps a file name (as in the diagnostics' ranges) to its parsed file.
	Files map[string]*hcl.File
}

// HasErrors reports whether any diagnostic is an error.
func (d *Diagnostics) HasErrors() bool { return d != nil && d.Diagnostics.HasErrors() }

// Counts returns the number of errors and of warnings.
func (d *Diagnostics) Counts() (errors, warnings int) {
	if d == nil {
		return 0, 0
	}
	for _, x := range d.Diagnostics {
		if x.Severity == hcl.DiagError {
			errors++
		} else {
			warnings++
		}
	}
	return errors, warnings
}

// sortAndDedupe orders diagnostics by file and position (those without a
// position first) and drops exact repeats.
func (d *Diagnostics) sortAndDedupe() {
	sort.SliceStable(d.Diagnostics, func(i, j int) bool {
		a, b := d.Diagnostics[i].Subject, d.Diagnostics[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
	type key struct {
		sev             hcl.DiagnosticSeverity
		summary, detail string
		rng             hcl.Range
	}
	seen := map[key]bool{}
	out := d.Diagnostics[:0]
	for _, x := range d.Diagnostics {
		k := key{sev: x.Severity, summary: x.Summary, detail: x.Detail}
		if x.Subject != nil {
			k.rng = *x.Subject
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, x)
	}
	d.Diagnostics = out
}

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[1;31m"
	ansiYellow = "\x1b[1;33m"
)

// WriteText writes the diagnostics for people, one block per diagnostic:
//
//	cachectl.hcl:3:13: error: Unknown runtime
//	   3 |   runtime = "apptainr"
//	     |             ^^^^^^^^^^
//	  The runtime must be one of ...
//
// The first line is FILE:LINE:COLUMN as editors and CI annotators expect.
// color adds ANSI colours; width > 0 wraps the detail text.
func (d *Diagnostics) WriteText(w io.Writer, color bool, width uint) error {
	if d == nil {
		return nil
	}
	var buf bytes.Buffer
	for i, x := range d.Diagnostics {
		if i > 0 {
			buf.WriteByte('\n')
		}
		sev, col := "error", ansiRed
		if x.Severity == hcl.DiagWarning {
			sev, col = "warning", ansiYellow
		}
		if color {
			sev = col + sev + ansiReset
		}
		summary := x.Summary
		if color {
			summary = ansiBold + summary + ansiReset
		}
		if x.Subject != nil {
			fmt.Fprintf(&buf, "%s:%d:%d: %s: %s\n", x.Subject.Filename, x.Subject.Start.Line, x.Subject.Start.Column, sev, summary)
			d.writeSnippet(&buf, x.Subject, color, col)
		} else {
			fmt.Fprintf(&buf, "%s: %s\n", sev, summary)
		}
		if x.Detail != "" {
			detail := x.Detail
			if width > 4 {
				detail = wordwrap.WrapString(detail, width-2)
			}
			for _, l := range strings.Split(detail, "\n") {
				if l == "" {
					buf.WriteByte('\n')
					continue
				}
				buf.WriteString("  " + l + "\n")
			}
		}
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// writeSnippet writes the source line of the start of rng with a caret
// line under the range (to the end of the line for multi-line ranges).
func (d *Diagnostics) writeSnippet(buf *bytes.Buffer, rng *hcl.Range, color bool, col string) {
	f := d.Files[rng.Filename]
	if f == nil || rng.Start.Byte > len(f.Bytes) || rng.Start.Byte < 0 {
		return
	}
	src := f.Bytes
	ls := bytes.LastIndexByte(src[:rng.Start.Byte], '\n') + 1
	le := bytes.IndexByte(src[rng.Start.Byte:], '\n')
	if le < 0 {
		le = len(src)
	} else {
		le += rng.Start.Byte
	}
	line := strings.TrimRight(string(src[ls:le]), "\r")
	if !utf8.ValidString(line) {
		return
	}
	end := rng.End.Byte
	if end > le || end < rng.Start.Byte {
		end = le
	}
	var pad strings.Builder
	for _, r := range string(src[ls:rng.Start.Byte]) {
		if r == '\t' {
			pad.WriteByte('\t')
		} else {
			pad.WriteByte(' ')
		}
	}
	n := utf8.RuneCount(src[rng.Start.Byte:end])
	if n < 1 {
		n = 1
	}
	num := fmt.Sprintf("%d", rng.Start.Line)
	carets := strings.Repeat("^", n)
	if color {
		carets = col + carets + ansiReset
	}
	fmt.Fprintf(buf, "%5s | %s\n", num, line)
	fmt.Fprintf(buf, "%5s | %s%s\n", "", pad.String(), carets)
}

// JSON shapes of WriteJSON.
type (
	jsonReport struct {
		Valid        bool       `json:"valid"`
		ErrorCount   int        `json:"error_count"`
		WarningCount int        `json:"warning_count"`
		Diagnostics  []jsonDiag `json:"diagnostics"`
	}
	jsonDiag struct {
		Severity string     `json:"severity"`
		Summary  string     `json:"summary"`
		Detail   string     `json:"detail,omitempty"`
		Range    *jsonRange `json:"range,omitempty"`
	}
	jsonRange struct {
		Filename string  `json:"filename"`
		Start    jsonPos `json:"start"`
		End      jsonPos `json:"end"`
	}
	jsonPos struct {
		Line   int `json:"line"`
		Column int `json:"column"`
		Byte   int `json:"byte"`
	}
)

// WriteJSON writes the diagnostics as one JSON object:
//
//	{"valid": bool, "error_count": N, "warning_count": N, "diagnostics": [
//	  {"severity": "error"|"warning", "summary": "...", "detail": "...",
//	   "range": {"filename": "...", "start": {"line","column","byte"}, "end": {...}}}]}
//
// "range" is absent for diagnostics without a source position; "valid" is
// true when there are no errors.
func (d *Diagnostics) WriteJSON(w io.Writer) error {
	return d.writeJSON(w, false)
}

func (d *Diagnostics) writeJSON(w io.Writer, strict bool) error {
	e, wn := d.Counts()
	rep := jsonReport{Valid: e == 0 && (!strict || wn == 0), ErrorCount: e, WarningCount: wn, Diagnostics: []jsonDiag{}}
	if d != nil {
		for _, x := range d.Diagnostics {
			jd := jsonDiag{Severity: "error", Summary: x.Summary, Detail: x.Detail}
			if x.Severity == hcl.DiagWarning {
				jd.Severity = "warning"
			}
			if r := x.Subject; r != nil {
				jd.Range = &jsonRange{
					Filename: r.Filename,
					Start:    jsonPos{r.Start.Line, r.Start.Column, r.Start.Byte},
					End:      jsonPos{r.End.Line, r.End.Column, r.End.Byte},
				}
			}
			rep.Diagnostics = append(rep.Diagnostics, jd)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteJSONStrict is WriteJSON with "valid" false also when there are
// warnings (validate -strict).
func (d *Diagnostics) WriteJSONStrict(w io.Writer) error { return d.writeJSON(w, true) }
