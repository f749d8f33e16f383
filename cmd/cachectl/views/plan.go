package views

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/cachectl/cachectl/planner"
)

// RenderOptions tune the text rendering.
type RenderOptions struct {
	// Color uses ANSI colours (only on a terminal).
	Color bool
	// ShowNoop lists artifacts that need no change.
	ShowNoop bool
}

const (
	ansiReset  = "\x1b[0m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiRed    = "\x1b[31m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
)

func actionVerb(a planner.Action) string {
	switch a {
	case planner.ActionCreate:
		return "will be created"
	case planner.ActionUpdate:
		return "will be updated in place"
	case planner.ActionReplace:
		return "will be replaced"
	case planner.ActionDelete:
		return "will be deleted"
	case planner.ActionOrphan:
		return "is orphaned (kept)"
	}
	return "is up to date"
}

func actionColor(a planner.Action) string {
	switch a {
	case planner.ActionCreate:
		return ansiGreen
	case planner.ActionUpdate, planner.ActionOrphan:
		return ansiYellow
	case planner.ActionReplace, planner.ActionDelete:
		return ansiRed
	}
	return ""
}

// RenderText writes the human-readable plan: one block per change with
// its reasons, unmanaged files, and the closing "Plan: …" line.
func RenderText(w io.Writer, p *planner.Plan, o RenderOptions) error {
	bw := &errWriter{w: w}
	col := func(c, s string) string {
		if !o.Color || c == "" {
			return s
		}
		return c + s + ansiReset
	}
	any := false
	for _, ch := range p.Changes {
		if ch.Action == planner.ActionNoop && !o.ShowNoop {
			continue
		}
		if !any {
			bw.printf("cachectl will perform the following actions:\n\n")
			any = true
		}
		var why []string
		for _, r := range ch.Reasons {
			why = append(why, r.Message)
		}
		bw.printf("  %s\n", col(ansiBold, fmt.Sprintf("# %s %s", ch.Address, actionVerb(ch.Action))))
		for _, r := range why {
			bw.printf("  %s\n", col(ansiDim, "#   "+r))
		}
		bw.printf("%s %s\n", col(actionColor(ch.Action), fmt.Sprintf("%3s", ch.Action.Symbol())), ch.Address)
		bw.printf("      path:     %s\n", ch.Path)
		switch ch.Action {
		case planner.ActionCreate, planner.ActionReplace:
			if ch.Digest != "" {
				d := ch.Digest
				if ch.Manifest != "" && ch.Manifest != ch.Digest {
					d += fmt.Sprintf(" (%s manifest %s)", ch.Platform, ch.Manifest)
				}
				bw.printf("      digest:   %s\n", d)
			} else {
				bw.printf("      digest:   (resolved at apply)\n")
			}
			bw.printf("      mode:     %s%s\n", ch.Mode, ownerSuffix(ch))
			if ch.WriteBytes > 0 || ch.DownloadBytes > 0 {
				bw.printf("      size:     %s to download, at most %s to write\n", planner.HumanBytes(ch.DownloadBytes), planner.HumanBytes(ch.WriteBytes))
			}
		case planner.ActionUpdate:
			bw.printf("      mode:     %s%s\n", ch.Mode, ownerSuffix(ch))
		}
		bw.printf("\n")
	}
	for _, r := range p.Roots {
		if len(r.Unmanaged) == 0 {
			continue
		}
		bw.printf("Unmanaged files in cache %q (not placed by cachectl; never deleted; take them over with \"cachectl adopt %s\", or one file with \"cachectl import\"):\n", r.Cache, r.Cache)
		for _, u := range r.Unmanaged {
			bw.printf("  %s  %s\n", Printable(strings.TrimSuffix(r.Root, "/")+"/"+u.Name), planner.HumanBytes(u.Size))
		}
		bw.printf("\n")
	}
	s := p.Summary
	if !p.HasChanges() {
		bw.printf("%s\n", col(ansiGreen, "No changes. The cache matches the spec."))
		if s.Orphaned > 0 {
			bw.printf("%d orphaned artifact(s) kept (set prune = true to delete them).\n", s.Orphaned)
		}
		return bw.err
	}
	bw.printf("%s\n", col(ansiBold, fmt.Sprintf("Plan: %d to add, %d to change, %d to destroy.", s.Add, s.Change, s.Destroy)))
	if s.DownloadBytes > 0 || s.WriteBytes > 0 {
		bw.printf("Download: %s. Write: at most %s.\n", planner.HumanBytes(s.DownloadBytes), planner.HumanBytes(s.WriteBytes))
	}
	if s.Orphaned > 0 {
		bw.printf("%d orphaned artifact(s) kept (set prune = true to delete them).\n", s.Orphaned)
	}
	return bw.err
}

func ownerSuffix(ch planner.Change) string {
	s := ""
	if ch.Owner != "" {
		s += " owner " + ch.Owner
	}
	if ch.Group != "" {
		s += " group " + ch.Group
	}
	return s
}

// RenderJSON writes the plan in the versioned JSON format.
func RenderJSON(w io.Writer, p *planner.Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
