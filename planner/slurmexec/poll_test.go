package slurmexec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cachectl/cachectl/providers/slurm"
	"github.com/cachectl/cachectl/spec"
)

// fakeSlurm puts squeue and scancel scripts on PATH: squeue fails (as with
// slurmctld unreachable) until scancel ran, then shows an empty queue.
// It returns the file scancel creates.
func fakeSlurm(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	flag := filepath.Join(bin, "cancelled")
	os.WriteFile(filepath.Join(bin, "squeue"), []byte("#!/bin/sh\n[ -e "+flag+" ] && exit 0\necho 'slurm_load_jobs error: Unable to contact slurm controller' >&2\nexit 1\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "scancel"), []byte("#!/bin/sh\ntouch "+flag+"\n"), 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	return flag
}

// The poller hands squeue's error on while it is within the bound, then
// gives up with ErrQueueFailing and cancels the job; a cancelled context
// cancels the job too.
func TestQueuePollerBoundsAndCancels(t *testing.T) {
	flag := fakeSlurm(t)
	s := spec.SlurmSettings{PollInterval: 10 * time.Millisecond, ResultTimeout: 30 * time.Millisecond}
	p := NewQueuePoller(&slurm.Client{}, "42", s)
	defer p.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, qerr, err := p.Next(ctx)
	if qerr == nil || err != nil {
		t.Fatalf("first failing squeue: qerr %v, err %v; want squeue's error handed on", qerr, err)
	}
	for err == nil {
		_, _, err = p.Next(ctx)
	}
	if !errors.Is(err, ErrQueueFailing) {
		t.Fatalf("got %v, want ErrQueueFailing", err)
	}
	if _, serr := os.Stat(flag); serr != nil {
		t.Fatal("the job was not cancelled when squeue kept failing")
	}

	os.Remove(flag)
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, _, err := p.Next(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	if _, serr := os.Stat(flag); serr != nil {
		t.Fatal("the job was not cancelled with the context")
	}
}
