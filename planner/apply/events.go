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
	// PhaseTask: a batch executor's task for the change changed state
	// (Event.Task says how); between PhaseBuild and PhasePlace.
	PhaseTask  Phase = "task"
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
	// Task is set for PhaseTask.
	Task *TaskState `json:"task,omitempty"`
}

// TaskState is the state of the task (a Slurm array element) that builds
// a change on another node.
type TaskState struct {
	// ID is the scheduler's id of the task ("1234_5": Slurm job 1234,
	// array index 5).
	ID string `json:"id"`
	// State is pending, running, done or failed.
	State string `json:"state"`
	// Node runs (ran) the task ("" while pending).
	Node string `json:"node,omitempty"`
	// Log is the task's log file.
	Log string `json:"log,omitempty"`
	// Detail: why a task waits (pending) or failed.
	Detail string `json:"detail,omitempty"`
}

// The states of TaskState.
const (
	TaskPending = "pending"
	TaskRunning = "running"
	TaskDone    = "done"
	TaskFailed  = "failed"
)
