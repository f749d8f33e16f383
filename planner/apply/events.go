package apply

import (
	"time"

	"github.com/cachectl/cachectl/planner"
)

// Phase is where one change stands during an apply.
type Phase string

// The phases of a change, in order; PhaseError ends a failed one.
const (
	PhaseStart Phase = "start"
	PhasePull  Phase = "pull"
	PhaseBuild Phase = "build"
	PhasePlace Phase = "place"
	PhaseDone  Phase = "done"
	PhaseError Phase = "error"
)

// Event reports progress of one change (JSON: the apply events of
// --progress=json).
type Event struct {
	Time    time.Time      `json:"time"`
	Address string         `json:"address"`
	Action  planner.Action `json:"action"`
	Phase   Phase          `json:"phase"`
	// Message: the manifest for PhasePull, the format for PhaseBuild, the
	// final path for PhasePlace, the error for PhaseError.
	Message string `json:"message,omitempty"`
}
