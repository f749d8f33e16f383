package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/cachectl/cachectl/spec"
)

// FmtCmd rewrites spec files in the canonical format.
type FmtCmd struct {
	Paths []string `arg:"" optional:"" name:"path" predictor:"spec" help:"Files, directories (searched recursively for *.hcl) or - for stdin. Default: the spec (-spec)."`
	Check bool     `name:"check" help:"Write nothing; list the files that are not formatted and exit 1 if there are any."`
	Diff  bool     `name:"diff" help:"Print a unified diff of the changes on stdout."`
	Write bool     `name:"write" default:"true" negatable:"" help:"Rewrite the files (-write=false only reports)."`
	List  bool     `name:"list" default:"true" negatable:"" help:"Print the names of the files that change (-list=false for none)."`
}

// Help shows examples.
func (FmtCmd) Help() string {
	return `Rewrites spec files in the canonical HCL format (aligned "=", two-space
indentation). With no PATH it formats the spec that -spec names (default
cachectl.hcl). Directories are searched recursively for *.hcl files (hidden
directories skipped). "-" formats stdin to stdout. Formatting is idempotent.
Exit status: 0 success, 1 a file has syntax errors or, with -check, is not
formatted.

Examples:
  cachectl fmt
  cachectl fmt specs/
  cachectl fmt -check -diff .
  cat cachectl.hcl | cachectl fmt - > formatted.hcl`
}

// Run formats.
func (c FmtCmd) Run(g *Globals, iox *IO) error {
	paths := c.Paths
	if len(paths) == 0 {
		paths = []string{g.Spec}
	}
	write := c.Write && !c.Check
	failed, unformatted := false, false
	for _, p := range paths {
		if p == "-" {
			src, err := io.ReadAll(iox.Stdin)
			if err != nil {
				return fmt.Errorf("reading stdin: %w", err)
			}
			out, ok := c.formatOne(g, iox, "<stdin>", src)
			switch {
			case !ok:
				failed = true
			case c.Check || c.Diff:
				if !bytes.Equal(src, out) {
					unformatted = true
					if c.Diff {
						writeUnifiedDiff(iox.Stdout, "<stdin>", src, out)
					}
				}
			default:
				iox.Stdout.Write(out)
			}
			continue
		}
		files, err := hclFiles(p)
		if err != nil {
			fmt.Fprintf(iox.Stderr, "Error: %v\n", err)
			failed = true
			continue
		}
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				fmt.Fprintf(iox.Stderr, "Error: %v\n", err)
				failed = true
				continue
			}
			out, ok := c.formatOne(g, iox, f, src)
			if !ok {
				failed = true
				continue
			}
			if bytes.Equal(src, out) {
				continue
			}
			unformatted = true
			if c.List {
				fmt.Fprintln(iox.Stdout, f)
			}
			if c.Diff {
				writeUnifiedDiff(iox.Stdout, f, src, out)
			}
			if write {
				if err := rewrite(f, out); err != nil {
					fmt.Fprintf(iox.Stderr, "Error: %v\n", err)
					failed = true
				}
			}
		}
	}
	if failed || (c.Check && unformatted) {
		return &exitError{code: 1}
	}
	return nil
}

// formatOne formats one source, printing syntax errors.
func (c FmtCmd) formatOne(g *Globals, iox *IO, name string, src []byte) ([]byte, bool) {
	out, diags := spec.Format(src, name)
	if diags.HasErrors() {
		d := &spec.Diagnostics{Diagnostics: diags, Files: map[string]*hcl.File{name: {Bytes: src}}}
		writeSpecDiags(g, iox, d)
		return nil, false
	}
	return out, true
}

// hclFiles lists p itself when it is a file, or the *.hcl files below the
// directory p (recursively, hidden directories skipped), sorted.
func hclFiles(p string) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	var out []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != p && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && strings.HasSuffix(d.Name(), ".hcl") {
			out = append(out, path)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// rewrite replaces a file's content, keeping its mode.
func rewrite(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, data, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("rewrite %s: %w", path, err)
	}
	return nil
}

// writeUnifiedDiff writes a unified diff (3 lines of context) of a and b.
func writeUnifiedDiff(w io.Writer, name string, a, b []byte) {
	al, bl := splitLines(a), splitLines(b)
	ops := diffLines(al, bl)
	fmt.Fprintf(w, "--- %s\n+++ %s (formatted)\n", name, name)
	const ctx = 3
	// Find runs of changes and print them with context as hunks.
	i := 0
	for i < len(ops) {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(i-ctx, 0)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			// A run of equal lines: the hunk ends unless a change follows closely.
			j := end
			for j < len(ops) && ops[j].kind == ' ' {
				j++
			}
			if j == len(ops) || j-end > 2*ctx {
				end = min(end+ctx, len(ops))
				break
			}
			end = j
		}
		h := ops[start:end]
		aStart, bStart := h[0].ai, h[0].bi
		var an, bn int
		for _, o := range h {
			if o.kind != '+' {
				an++
			}
			if o.kind != '-' {
				bn++
			}
		}
		fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(aStart, an), hunkRange(bStart, bn))
		for _, o := range h {
			fmt.Fprintf(w, "%c%s\n", o.kind, o.text)
		}
		i = end
	}
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func splitLines(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

type diffOp struct {
	kind   byte // ' ', '-', '+'
	text   string
	ai, bi int // line index in a and b where the op applies
}

// diffLines is a longest-common-subsequence line diff. Inputs beyond a few
// thousand lines each degrade to "replace everything" to bound memory.
func diffLines(a, b []string) []diffOp {
	var ops []diffOp
	if len(a)*len(b) > 4_000_000 {
		for i, l := range a {
			ops = append(ops, diffOp{'-', l, i, 0})
		}
		for j, l := range b {
			ops = append(ops, diffOp{'+', l, len(a), j})
		}
		return ops
	}
	n, m := len(a), len(b)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, diffOp{' ', a[i], i, j})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, diffOp{'-', a[i], i, j})
			i++
		default:
			ops = append(ops, diffOp{'+', b[j], i, j})
			j++
		}
	}
	return ops
}
