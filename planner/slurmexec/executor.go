package slurmexec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cachectl/cachectl/planner/apply"
	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/slurm"
	"github.com/cachectl/cachectl/spec"
)

// Executor builds an apply's artifacts on a Slurm cluster: one sbatch
// array job, one element per artifact, each running "cachectl build-task"
// (RunTask) into the work directory the engine made in its root's staging
// area on the shared file system. It implements apply.BatchExecutor: the
// job is submitted once every build of the apply has been handed over
// (after all pulls), and each Build returns when its element has ended and
// its file passed the builder's format check; the engine then finishes,
// checks the recorded sha256, places and indexes the file itself.
//
// It waits by polling squeue (and sacct, when accounting is enabled) and
// the result records every PollInterval; an element Slurm reports ended
// without a record counts as failed after ResultTimeout. A cancelled
// context (Ctrl-C) or a failure to submit cancels the job (scancel).
type Executor struct {
	Client   *slurm.Client
	Settings spec.SlurmSettings
	// Store is the blob store directory (on the shared file system).
	Store string
	// Command is the cachectl program on the nodes (see Command).
	Command string
	// Events receives a PhaseTask event per state change (may be nil).
	Events func(apply.Event)

	mu       sync.Mutex
	ctx      context.Context
	expected int
	skipped  int
	tasks    []*task
	started  bool
}

type task struct {
	job   apply.BuildJob
	index int
	id    string // JOBID_INDEX
	log   string
	state string // as last reported
	node  string
	ended time.Time // when Slurm first showed it ended (or gone)
	final string    // Slurm's final state, when known
	over  bool      // finished (err set, done closing)
	cost  float64   // estimated build time, relative
	done  chan struct{}
	err   error
}

var _ apply.BatchExecutor = (*Executor)(nil)

// Expect sets the number of builds of the apply.
func (e *Executor) Expect(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.expected = n
}

// Skip withdraws one expected build.
func (e *Executor) Skip() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.skipped++
	e.maybeStart()
}

// Build hands one build over and waits until its task has ended.
func (e *Executor) Build(ctx context.Context, job apply.BuildJob) error {
	t := &task{job: job, done: make(chan struct{})}
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return fmt.Errorf("%s: handed to the Slurm executor after its job was submitted (more builds than Expect said)", job.Change.Address)
	}
	if e.ctx == nil {
		e.ctx = ctx
	}
	e.tasks = append(e.tasks, t)
	e.maybeStart()
	e.mu.Unlock()
	<-t.done
	return t.err
}

// maybeStart submits the job once every expected build is in (mu held).
func (e *Executor) maybeStart() {
	if e.started || len(e.tasks) == 0 || len(e.tasks)+e.skipped < e.expected {
		return
	}
	e.started = true
	go e.run(e.ctx, e.tasks)
}

func (e *Executor) settings() spec.SlurmSettings { return e.Settings.WithDefaults() }

func (e *Executor) event(t *task, state, detail string) {
	t.state = state
	if e.Events == nil {
		return
	}
	ch := t.job.Change
	e.Events(apply.Event{Time: time.Now(), Address: ch.Address, Action: ch.Action, Phase: apply.PhaseTask,
		Task: &apply.TaskState{ID: t.id, State: state, Node: t.node, Log: t.log, Detail: detail}})
}

// formatCost is the relative build time per byte of image of each format,
// from BENCHMARKS.md ("Conversions on Slurm": SIF ≈ 2× .sqsh, an OCI
// archive ≈ 1/20 of a .sqsh).
var formatCost = map[string]float64{"sif": 2, "sqsh": 1, "oci-archive": 0.05}

// estimatedCost estimates a build's time: the image's blob bytes times its
// format's cost.
func estimatedCost(job apply.BuildJob) float64 {
	var size int64
	if m, err := job.Image.Manifest(); err == nil {
		for _, l := range m.Layers {
			size += l.Size
		}
	}
	w, ok := formatCost[job.Builder.Format()]
	if !ok {
		w = 1
	}
	return w * float64(size)
}

// finish ends a task with err (nil: done).
func (t *task) finish(err error) {
	t.over, t.err = true, err
	close(t.done)
}

// run submits the job and follows it until every task is over.
func (e *Executor) run(ctx context.Context, tasks []*task) {
	s := e.settings()
	// Largest first: Slurm starts array elements in index order, and a
	// long build started last would finish last (BENCHMARKS.md).
	for _, t := range tasks {
		t.cost = estimatedCost(t.job)
	}
	sort.Slice(tasks, func(i, j int) bool {
		if tasks[i].cost != tasks[j].cost {
			return tasks[i].cost > tasks[j].cost
		}
		return tasks[i].job.Change.Address < tasks[j].job.Change.Address
	})
	fail := func(err error) {
		for _, t := range tasks {
			if !t.over {
				t.finish(err)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		fail(err)
		return
	}
	dir, jobID, err := e.submit(ctx, s, tasks)
	if err != nil {
		if dir != nil {
			dir.Remove()
		}
		fail(err)
		return
	}
	for _, t := range tasks {
		e.event(t, apply.TaskPending, "")
	}
	failed := e.follow(ctx, s, jobID, tasks)
	if !failed {
		dir.Remove()
	}
}

// submit writes the task list and the script into a new run directory
// and submits the array job.
func (e *Executor) submit(ctx context.Context, s spec.SlurmSettings, tasks []*task) (*RunDir, string, error) {
	tf := TaskFile{Version: TaskFileVersion, Store: e.Store}
	for i, t := range tasks {
		t.index = i
		ch, req := t.job.Change, t.job.Request
		tf.Tasks = append(tf.Tasks, Task{
			Address: ch.Address, Root: t.job.Root, WorkDir: t.job.WorkDir, Runtime: ch.Runtime,
			Manifest: ch.Manifest, Ref: ch.Ref, NormalizedName: req.NormalizedName,
			Platform: image.PlatformString(req.Platform), Compression: ch.Compression,
		})
	}
	dir, err := NewRunDir(LogDir(s, e.Store), "build")
	if err != nil {
		return nil, "", err
	}
	list, err := dir.WriteJSON("tasks.json", tf)
	if err != nil {
		return dir, "", err
	}
	script, err := dir.WriteScript("build.sh", e.Command, "build-task", "--tasks", list, "--index", `"$SLURM_ARRAY_TASK_ID"`)
	if err != nil {
		return dir, "", err
	}
	array := fmt.Sprintf("--array=0-%d", len(tasks)-1)
	if s.MaxParallel > 0 {
		array += "%" + strconv.Itoa(s.MaxParallel)
	}
	args := append([]string{array, "--job-name=cachectl-build", "--no-requeue",
		"--output=" + filepath.Join(dir.Path, "%A_%a.log"), "--chdir=" + dir.Path}, SbatchArgs(s, "")...)
	jobID, err := e.Client.Submit(ctx, args, script)
	if err != nil {
		return dir, "", fmt.Errorf("submit the build job: %w", err)
	}
	for _, t := range tasks {
		t.id = fmt.Sprintf("%s_%d", jobID, t.index)
		t.log = filepath.Join(dir.Path, t.id+".log")
	}
	return dir, jobID, nil
}

// follow polls until every task is over; it reports whether any failed.
func (e *Executor) follow(ctx context.Context, s spec.SlurmSettings, jobID string, tasks []*task) (failed bool) {
	var verifying sync.WaitGroup
	defer verifying.Wait()
	poll := NewQueuePoller(e.Client, jobID, s)
	defer poll.Stop()
	for {
		open := 0
		for _, t := range tasks {
			if !t.over {
				open++
			}
		}
		if open == 0 {
			return failed
		}
		queue, qerr, err := poll.Next(ctx)
		if err != nil {
			for _, t := range tasks {
				if t.over {
					continue
				}
				if ctx.Err() != nil {
					e.event(t, apply.TaskFailed, "cancelled")
					t.finish(ctx.Err())
				} else {
					e.event(t, apply.TaskFailed, err.Error())
					t.finish(err)
				}
			}
			return true
		}
		byID := map[string]slurm.Task{}
		for _, q := range queue {
			byID[q.ID] = q
		}
		var acct map[string]slurm.Task
		for _, t := range tasks {
			if t.over {
				continue
			}
			if rec, err := readResult(t.job.Request.TempDir); err != nil || rec != nil {
				if rec != nil && rec.Node != "" {
					t.node = rec.Node
				}
				if err != nil || !rec.OK {
					failed = true
					msg := "unreadable result record: " + fmt.Sprint(err)
					if err == nil {
						msg = rec.Error
					}
					e.event(t, apply.TaskFailed, msg)
					t.finish(fmt.Errorf("slurm task %s on %s failed: %s (log: %s)", t.id, t.node, msg, t.log))
					continue
				}
				t.over = true // verified below, outside the poll loop
				verifying.Add(1)
				go func(t *task, rec *Result) {
					defer verifying.Done()
					t.err = e.verify(ctx, t, rec)
					if t.err != nil {
						e.event(t, apply.TaskFailed, t.err.Error())
					} else {
						e.event(t, apply.TaskDone, fmt.Sprintf("%.1fs", rec.Seconds))
					}
					close(t.done)
				}(t, rec)
				continue
			}
			if qerr != nil {
				continue
			}
			q, seen := byID[t.id]
			if seen && !slurm.Ended(q.State) {
				switch {
				case q.State == "PENDING" && t.state != apply.TaskPending:
					e.event(t, apply.TaskPending, q.Reason)
				case q.State != "PENDING" && t.state != apply.TaskRunning && q.Nodes != "":
					t.node = q.Nodes
					e.event(t, apply.TaskRunning, "")
				}
				continue
			}
			// Ended (or forgotten by the controller) without a record yet.
			if seen {
				t.final = q.State
				if q.Nodes != "" {
					t.node = q.Nodes
				}
			}
			if t.ended.IsZero() {
				t.ended = time.Now()
			}
			if time.Since(t.ended) < s.ResultTimeout {
				continue
			}
			if t.final == "" {
				if acct == nil {
					acct = map[string]slurm.Task{}
					if ts, ok := e.Client.Accounting(ctx, jobID); ok {
						for _, a := range ts {
							acct[a.ID] = a
						}
					}
				}
				if a, ok := acct[t.id]; ok {
					t.final = a.State
				}
			}
			state := t.final
			if state == "" {
				state = "no longer in the queue"
			}
			failed = true
			msg := fmt.Sprintf("ended (%s) without a result record after %s", state, s.ResultTimeout)
			e.event(t, apply.TaskFailed, msg)
			t.finish(fmt.Errorf("slurm task %s on %s %s: cancelled, killed, or out of memory before it could record one; nothing was placed (log: %s)", t.id, orUnknown(t.node), msg, t.log))
		}
	}
}

func orUnknown(node string) string {
	if node == "" {
		return "(no node)"
	}
	return node
}

// verify runs the builder's format check on the staged file through the
// engine's handle of the work directory and hands the recorded sha256 to
// the engine, which compares it with the hash it computes.
func (e *Executor) verify(ctx context.Context, t *task, rec *Result) error {
	if err := t.job.Builder.Verify(ctx, t.job.Out); err != nil {
		return fmt.Errorf("slurm task %s on %s: the staged file fails the format check: %w (log: %s)", t.id, t.node, err, t.log)
	}
	if rec.SHA256 == "" {
		return fmt.Errorf("slurm task %s on %s: the result record has no sha256 (log: %s)", t.id, t.node, t.log)
	}
	t.job.Result.SHA256 = rec.SHA256
	return nil
}

// CancelAndWait cancels a job and waits (at most 30 s) until Slurm shows
// no element of it running, so that no task still writes when the caller
// cleans up after it.
func CancelAndWait(c *slurm.Client, jobID string, poll time.Duration) {
	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	c.Cancel(ctx, jobID)
	for ctx.Err() == nil {
		q, err := c.Queue(ctx, jobID)
		running := false
		for _, t := range q {
			running = running || !slurm.Ended(t.State)
		}
		if err == nil && !running {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(poll, time.Second)):
		}
	}
}

// maxResult bounds a result record.
const maxResult = 1 << 20

// readResult reads the result record in the work directory dir (the
// engine's /proc/self/fd path of its handle); nil when there is none yet.
func readResult(dir string) (*Result, error) {
	fd, err := unix.Open(filepath.Join(dir, ResultFile), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ResultFile)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errors.New("the result record is not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, maxResult))
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
