package nodecache

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachectl/cachectl/providers/slurm"
	"github.com/cachectl/cachectl/spec"
)

// While squeue keeps failing (slurmctld unreachable), the wait for a stage
// job ends after 10 × result_timeout with an error, and the job is
// cancelled, as apply's Slurm executor does; it does not wait forever.
// squeue and scancel are scripts on PATH: squeue fails until scancel ran.
func TestWaitJobGivesUpWhenSqueueFails(t *testing.T) {
	bin := t.TempDir()
	flag := filepath.Join(bin, "cancelled")
	os.WriteFile(filepath.Join(bin, "squeue"), []byte("#!/bin/sh\n[ -e "+flag+" ] && exit 0\necho 'slurm_load_jobs error: Unable to contact slurm controller' >&2\nexit 1\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "scancel"), []byte("#!/bin/sh\ntouch "+flag+"\n"), 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := spec.SlurmSettings{PollInterval: 10 * time.Millisecond, ResultTimeout: 30 * time.Millisecond}
	_, err := waitJob(ctx, &slurm.Client{}, "42", s, func(string, ...any) {})
	if err == nil || !strings.Contains(err.Error(), "squeue has failed") {
		t.Fatalf("waitJob with a failing squeue: %v", err)
	}
	if _, serr := os.Stat(flag); serr != nil {
		t.Error("the job was not cancelled")
	}
}
