package views

import (
	"fmt"

	"github.com/cachectl/cachectl/planner/apply"
)

// ApplyLine is the progress line apply prints for an event: when a change
// starts ("cache.sif["alpine:3.20"]: creating…"), is done, or failed; ""
// for the phases in between (logged at debug level).
func ApplyLine(e apply.Event) string {
	switch e.Phase {
	case apply.PhaseStart:
		return fmt.Sprintf("%s: %s…", e.Address, e.Action.Progressive())
	case apply.PhaseDone:
		return fmt.Sprintf("%s: %s complete", e.Address, e.Action)
	case apply.PhaseError:
		return fmt.Sprintf("%s: failed: %s", e.Address, e.Message)
	}
	return ""
}
