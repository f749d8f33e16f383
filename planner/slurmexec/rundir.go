// Package slurmexec runs cachectl's work on a Slurm cluster: the apply
// executor that builds an apply's artifacts as one sbatch array job
// (Executor), the build task each array element runs on its compute node
// (RunTask), and what both share with node-local staging: the run
// directory on the shared file system that holds a job's task list,
// script and logs, and the sbatch options of the spec's
// cachectl { slurm { } } block.
package slurmexec

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/spec"
)

// RunDir is a job's private directory on the shared file system
// (<log dir>/<kind>-<time>-<random>, 0700, the runner's): the task list,
// the batch script and one log per task. It is removed when every task
// succeeded and kept (for its logs) otherwise.
type RunDir struct {
	Path string
}

// NewRunDir makes a new run directory under base (made 0700 when
// missing), which must be safe from other users (CheckLogDir).
func NewRunDir(base, kind string) (*RunDir, error) {
	if err := CheckLogDir(base); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, fmt.Errorf("slurm log directory: %w", err)
	}
	if err := checkLogDir(base, true); err != nil {
		return nil, err
	}
	var b [4]byte
	rand.Read(b[:])
	p := filepath.Join(base, fmt.Sprintf("%s-%s-%s", kind, time.Now().UTC().Format("20060102-150405"), hex.EncodeToString(b[:])))
	if err := os.Mkdir(p, 0o700); err != nil {
		return nil, fmt.Errorf("slurm log directory: %w", err)
	}
	return &RunDir{Path: p}, nil
}

// CheckLogDir refuses a log directory (or, while it does not exist, its
// nearest existing parent) that another user could change: it and every
// directory above it (symbolic links resolved) must belong to root or the
// running user and be writable by nobody else, unless sticky (like /tmp,
// where others cannot rename what is not theirs). The run directory's
// paths go to sbatch and to Slurm, which opens the job's --output and
// reads the script by path, as the submitter: whoever could rename a run
// directory and put their own in its place would have Slurm write the logs
// through their symbolic links, and run their script, as that user.
func CheckLogDir(dir string) error { return checkLogDir(dir, false) }

// checkLogDir is CheckLogDir; existing once the directory was made (see
// cacheroot.PathCheck.Existing).
func checkLogDir(dir string, existing bool) error {
	err := cacheroot.CheckPlace("slurm log directory", dir, cacheroot.PathCheck{Whole: true, Existing: existing, Fix: logDirFix})
	var ue *cacheroot.UnsafePathError
	if err != nil && !errors.As(err, &ue) {
		return fmt.Errorf("slurm log directory %s: %w", dir, err)
	}
	return err
}

// logDirFix says why an unsafe log directory matters and what to do.
const logDirFix = "another user could swap a job's run directory for their own and have Slurm write the job's logs through their symbolic links, and run their batch script, as you; make it root's or yours and writable only by its owner (chown, chmod go-w), or set log_dir in the spec's cachectl { slurm { } } block to such a directory (the default, <store>/slurm, is one)"

// WriteJSON writes v as the file name (0600, new) in the run directory
// and returns its path.
func (d *RunDir) WriteJSON(name string, v any) (string, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	return d.writeNew(name, data, 0o600)
}

// writeNew writes data as the new file name (never one that exists, never
// through a symlink), fsynced, and returns its path.
func (d *RunDir) writeNew(name string, data []byte, mode os.FileMode) (string, error) {
	p := filepath.Join(d.Path, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, mode)
	if err != nil {
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	return p, f.Close()
}

// WriteScript writes a batch script that execs argv (each argument
// single-quoted; "$VAR" arguments are left to the shell) and returns its
// path.
func (d *RunDir) WriteScript(name string, argv ...string) (string, error) {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# Written by cachectl; runs one task of the job (see the JSON file beside it).\nexec")
	for _, a := range argv {
		b.WriteByte(' ')
		if strings.HasPrefix(a, `"$`) {
			b.WriteString(a)
		} else {
			b.WriteString(shellQuote(a))
		}
	}
	b.WriteByte('\n')
	return d.writeNew(name, []byte(b.String()), 0o700)
}

// Remove deletes the run directory.
func (d *RunDir) Remove() error { return os.RemoveAll(d.Path) }

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// LogDir returns where run directories go: the spec's log_dir, else
// <store>/slurm.
func LogDir(s spec.SlurmSettings, store string) string {
	if s.LogDir != "" {
		return s.LogDir
	}
	return filepath.Join(store, "slurm")
}

// SbatchArgs returns the sbatch options of the settings: partition,
// account, QOS, time limit, CPUs and memory per task, then the extra
// arguments. partition overrides the settings' partition when set.
func SbatchArgs(s spec.SlurmSettings, partition string) []string {
	var args []string
	if partition == "" {
		partition = s.Partition
	}
	if partition != "" {
		args = append(args, "--partition="+partition)
	}
	if s.Account != "" {
		args = append(args, "--account="+s.Account)
	}
	if s.QOS != "" {
		args = append(args, "--qos="+s.QOS)
	}
	if s.TimeLimit > 0 {
		args = append(args, "--time="+strconv.Itoa(int((s.TimeLimit+time.Minute-1)/time.Minute)))
	}
	if s.CPUsPerTask > 0 {
		args = append(args, "--cpus-per-task="+strconv.Itoa(s.CPUsPerTask))
	}
	if s.MemPerTask > 0 {
		args = append(args, "--mem="+strconv.FormatInt((s.MemPerTask+(1<<20)-1)>>20, 10)+"M")
	}
	return append(args, s.SbatchArgs...)
}

// Command returns the cachectl program the tasks run: the settings'
// command, else the running program as it was started (the path through
// which it was found on PATH, so that the same path works on nodes that
// mount the same file systems).
func Command(s spec.SlurmSettings) (string, error) {
	if s.Command != "" {
		return s.Command, nil
	}
	arg0 := os.Args[0]
	if !strings.Contains(arg0, "/") {
		if p, err := exec.LookPath(arg0); err == nil {
			arg0 = p
		}
	}
	if strings.Contains(arg0, "/") {
		if p, err := filepath.Abs(arg0); err == nil {
			return p, nil
		}
	}
	return os.Executable()
}

// ReadOwnedFile reads a file that must be a regular file of the running
// user that nobody else can write (a task list: input that says what to
// build and where), of at most max bytes; no symlink is followed.
func ReadOwnedFile(path string, max int64) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%s is a symbolic link; refused", path)
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, fmt.Errorf("%s is not a regular file; refused", path)
	case int(st.Uid) != os.Geteuid():
		return nil, fmt.Errorf("%s belongs to uid %d, not to uid %d who runs this task; refused", path, st.Uid, os.Geteuid())
	case st.Mode&0o022 != 0:
		return nil, fmt.Errorf("%s is writable by group or others (mode %04o); refused", path, st.Mode&0o7777)
	case st.Nlink != 1:
		return nil, fmt.Errorf("%s has %d hard links; refused", path, st.Nlink)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes; refused", path, max)
	}
	return data, nil
}
