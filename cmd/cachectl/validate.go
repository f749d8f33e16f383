package main

import (
	"fmt"
	"os"

	"golang.org/x/term"

	"github.com/cachectl/cachectl/spec"
)

// ValidateCmd checks the spec without network or cache directories.
type ValidateCmd struct {
	JSON   bool `name:"json" help:"Print the diagnostics as one JSON object on stdout (for CI annotations)."`
	Strict bool `name:"strict" help:"Fail (exit 1) on warnings too."`
}

// Help shows examples.
func (ValidateCmd) Help() string {
	return `Loads the spec (a file, or every *.hcl file of a directory), evaluates its
variables, locals and functions, and checks every cache, flavor and image
reference. Needs no network and no cache directory. Every problem is reported
at once as FILE:LINE:COLUMN with the source line. Exit status: 0 valid
(warnings allowed), 1 errors (or warnings with -strict).

Examples:
  cachectl validate
  cachectl -spec specs/ validate -strict
  cachectl -var determined_version=0.38.1 validate
  cachectl validate -json | jq '.diagnostics[] | .summary'`
}

// validateLoad loads the spec the global flags name.
func validateLoad(g *Globals, iox *IO) (*spec.Model, *spec.Diagnostics) {
	return spec.Load(g.Spec, spec.Options{Vars: g.Var, VarFiles: g.VarFile, Environ: iox.Environ})
}

// writeSpecDiags prints diagnostics on stderr for people.
func writeSpecDiags(g *Globals, iox *IO, d *spec.Diagnostics) {
	var width uint
	if f, ok := iox.Stderr.(*os.File); ok && IsTerminal(f) {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 20 {
			width = uint(w)
		}
	}
	_ = d.WriteText(iox.Stderr, g.Color(iox.Stderr), width)
}

// Run validates.
func (c ValidateCmd) Run(g *Globals, iox *IO) error {
	m, d := validateLoad(g, iox)
	errs, warns := d.Counts()
	failed := errs > 0 || (c.Strict && warns > 0)
	if c.JSON {
		write := d.WriteJSON
		if c.Strict {
			write = d.WriteJSONStrict
		}
		if err := write(iox.Stdout); err != nil {
			return fmt.Errorf("writing JSON: %w", err)
		}
		if failed {
			return &exitError{code: 1}
		}
		return nil
	}
	if len(d.Diagnostics) > 0 {
		writeSpecDiags(g, iox, d)
		fmt.Fprintln(iox.Stderr)
	}
	if errs > 0 {
		fmt.Fprintf(iox.Stderr, "The spec is invalid: %s, %s.\n", countNoun(errs, "error"), countNoun(warns, "warning"))
		return &exitError{code: 1}
	}
	if failed {
		fmt.Fprintf(iox.Stderr, "The spec has %s and -strict fails on warnings.\n", countNoun(warns, "warning"))
		return &exitError{code: 1}
	}
	n := 0
	for _, c := range m.Caches {
		n += len(c.Artifacts)
	}
	suffix := ""
	if warns > 0 {
		suffix = fmt.Sprintf(" (%s)", countNoun(warns, "warning"))
	}
	fmt.Fprintf(iox.Stdout, "The spec is valid: %s, %s%s.\n", countNoun(len(m.Caches), "cache"), countNoun(n, "artifact"), suffix)
	return nil
}

func countNoun(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
