package views

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/history"
)

// History prints one line per history record, and each artifact that
// did not succeed below it ("No history." when there is none).
func History(w io.Writer, recs []history.Record) error {
	if len(recs) == 0 {
		_, err := fmt.Fprintln(w, "No history.")
		return err
	}
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tCACHE\tCOMMAND\tRESULT\tCHANGES\tDOWNLOADED\tWRITTEN\tTOOK\tBY")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Start.UTC().Format("2006-01-02 15:04:05Z"), r.Cache, r.Command, r.Result, changesString(r.Plan),
			planner.HumanBytes(r.DownloadedBytes), planner.HumanBytes(r.WrittenBytes), durationString(r.DurationSeconds), Runner(&r))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	rows := strings.SplitAfter(table.String(), "\n")
	bw := bufio.NewWriter(w)
	bw.WriteString(rows[0])
	for i, r := range recs {
		bw.WriteString(rows[i+1])
		// What did not succeed, below its record.
		for _, a := range r.Artifacts {
			if a.Result == history.ArtifactDone {
				continue
			}
			msg := a.Result
			if a.Error != "" {
				msg += ": " + a.Error
			}
			fmt.Fprintf(bw, "    %s %s: %s\n", a.Action, a.Address, oneLine(msg))
		}
		if r.Error != "" && len(r.Artifacts) == 0 {
			fmt.Fprintf(bw, "    %s\n", oneLine(r.Error))
		}
	}
	return bw.Flush()
}

func changesString(s history.Summary) string {
	return fmt.Sprintf("+%d ~%d -%d", s.Add, s.Change, s.Destroy)
}

func durationString(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
