package slurmexec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/spec"
)

// TaskFileVersion is the format version of a build job's task list.
const TaskFileVersion = 1

// TaskFile is a build job's task list (tasks.json in its run directory):
// element i of the array builds Tasks[i].
type TaskFile struct {
	Version int    `json:"version"`
	Store   string `json:"store"`
	Tasks   []Task `json:"tasks"`
}

// Task is one artifact to build on a compute node.
type Task struct {
	Address string `json:"address"`
	// Root is the cache root and WorkDir the work directory's name in its
	// staging area (made by the apply, which holds the root's lock).
	Root    string `json:"root"`
	WorkDir string `json:"work_dir"`
	Runtime string `json:"runtime"`
	// Manifest is the digest of the image manifest in the blob store.
	Manifest       string `json:"manifest"`
	Ref            string `json:"ref"`
	NormalizedName string `json:"normalized_name"`
	Platform       string `json:"platform"`
	Compression    string `json:"compression,omitempty"`
}

// Artifact and ResultFile are the names a task writes in its work
// directory: the built file, and its result record.
const (
	Artifact   = "artifact"
	ResultFile = "result.json"
)

// Result is a task's result record (result.json in its work directory,
// written atomically when the task ends, whether it built the file or
// not).
type Result struct {
	Version int    `json:"version"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
	Node    string `json:"node"`
	JobID   string `json:"job_id,omitempty"`
	// Size and SHA256 of the built file.
	Size           int64  `json:"size,omitempty"`
	SHA256         string `json:"sha256,omitempty"`
	Builder        string `json:"builder"`
	BuilderVersion string `json:"builder_version"`
	// The build's figures: wall time, CPU time of the task and its child
	// processes (mksquashfs), and the largest resident set among them.
	Started    time.Time `json:"started"`
	Seconds    float64   `json:"seconds"`
	UserCPU    float64   `json:"user_cpu_seconds"`
	SystemCPU  float64   `json:"system_cpu_seconds"`
	MaxRSS     int64     `json:"max_rss_bytes"`
	Processors int       `json:"processors,omitempty"`
}

// maxTaskFile bounds a task list read by a task.
const maxTaskFile = 64 << 20

// ReadTaskFile reads and checks a task list (see ReadOwnedFile).
func ReadTaskFile(path string) (*TaskFile, error) {
	data, err := ReadOwnedFile(path, maxTaskFile)
	if err != nil {
		return nil, err
	}
	var tf TaskFile
	if err := json.Unmarshal(data, &tf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if tf.Version != TaskFileVersion {
		return nil, fmt.Errorf("%s: task list version %d; this cachectl reads version %d (use the same cachectl on the nodes as on the host that runs apply)", path, tf.Version, TaskFileVersion)
	}
	return &tf, nil
}

// RunTask builds task index of the task list at file on this node: it
// opens the work directory through handles (cacheroot.OpenWorkDir), reads
// the image from the shared blob store, runs the runtime's builder into
// the work directory and writes the result record there. A failed or
// interrupted build (Slurm's SIGTERM) still writes a record, with the
// error.
func RunTask(ctx context.Context, file string, index int, builderFor func(spec.Runtime) (providers.Builder, error)) error {
	tf, err := ReadTaskFile(file)
	if err != nil {
		return err
	}
	if index < 0 || index >= len(tf.Tasks) {
		return fmt.Errorf("%s: no task %d (the list has %d)", file, index, len(tf.Tasks))
	}
	t := tf.Tasks[index]
	root, work, err := cacheroot.OpenWorkDir(t.Root, t.WorkDir)
	if err != nil {
		return fmt.Errorf("%s: %w", t.Address, err)
	}
	defer root.Close()
	defer work.Close()
	res := Result{Version: 1, Node: nodeName(), JobID: jobID(), Started: time.Now().UTC()}
	res.Processors, _ = strconv.Atoi(os.Getenv("SLURM_CPUS_PER_TASK"))
	berr := build(ctx, tf.Store, t, work, &res, builderFor)
	res.Seconds = time.Since(res.Started).Seconds()
	res.UserCPU, res.SystemCPU, res.MaxRSS = usage()
	if berr != nil {
		res.OK, res.Error = false, berr.Error()
		if interrupted(ctx, signalGrace) {
			res.Error = "interrupted (Slurm sent SIGTERM: scancel, the time limit or preemption): " + berr.Error()
		}
	} else {
		res.OK = true
	}
	data, _ := json.MarshalIndent(res, "", "  ")
	if err := work.WriteFile(ResultFile, data); err != nil {
		return errors.Join(berr, err)
	}
	if berr != nil {
		return fmt.Errorf("%s: %w", t.Address, berr)
	}
	return nil
}

// signalGrace is how long a failed build waits for the run's context to
// be cancelled before recording an ordinary failure. Slurm's scancel, time
// limit and preemption send SIGTERM to every process of the step at once:
// mksquashfs, which catches it and exits 1, can end before this process's
// own handler has cancelled the context (seen on a 2-core CI machine).
// Only a build that already failed waits, so the bound is generous.
const signalGrace = 2 * time.Second

// interrupted reports whether ctx is, or within grace becomes, cancelled.
func interrupted(ctx context.Context, grace time.Duration) bool {
	if ctx.Err() != nil {
		return true
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return true
	case <-t.C:
		return false
	}
}

func build(ctx context.Context, storeDir string, t Task, work *cacheroot.WorkDir, res *Result, builderFor func(spec.Runtime) (providers.Builder, error)) error {
	b, err := builderFor(spec.Runtime(t.Runtime))
	if err != nil {
		return err
	}
	res.Builder, res.BuilderVersion = b.Format(), b.Version()
	h, err := v1.NewHash(t.Manifest)
	if err != nil {
		return fmt.Errorf("manifest digest: %w", err)
	}
	plat, err := v1.ParsePlatform(t.Platform)
	if err != nil {
		return err
	}
	st, err := cacheroot.OpenStore(storeDir)
	if err != nil {
		return err
	}
	img, err := st.Image(h)
	if err != nil {
		return fmt.Errorf("image %s from the blob store %s (apply fetches every blob there before it submits the job; is the store on a file system the nodes share?): %w", t.Manifest, storeDir, err)
	}
	req := providers.BuildRequest{
		Ref: t.Ref, NormalizedName: t.NormalizedName, Platform: *plat,
		Compression: t.Compression, Processors: res.Processors, TempDir: work.Path(),
	}
	if err := b.Build(ctx, img, req, filepath.Join(work.Path(), Artifact)); err != nil {
		return err
	}
	res.Size, res.SHA256, err = work.Hash(Artifact)
	return err
}

func nodeName() string {
	if n := os.Getenv("SLURMD_NODENAME"); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return h
}

func jobID() string {
	if j, i := os.Getenv("SLURM_ARRAY_JOB_ID"), os.Getenv("SLURM_ARRAY_TASK_ID"); j != "" && i != "" {
		return j + "_" + i
	}
	return os.Getenv("SLURM_JOB_ID")
}

// usage returns the CPU seconds of this process and its children and the
// largest resident set among them.
func usage() (user, sys float64, maxRSS int64) {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	sec := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	user = sec(self.Utime) + sec(kids.Utime)
	sys = sec(self.Stime) + sec(kids.Stime)
	maxRSS = max(self.Maxrss, kids.Maxrss) * 1024 // KiB on Linux
	return
}
