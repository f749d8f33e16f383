package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterruptedApply: SIGINT (Ctrl-C) cancels an apply: it exits 1 saying
// so, leaves no partial file at a final path and releases its locks; the
// next apply converges.
func TestInterruptedApply(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	srv := startCrashRegistry(t)
	for _, delay := range []time.Duration{300, 150, 75, 30} {
		root := t.TempDir()
		r := newRunner(t, srv.Addr, root)
		c := r.cmd("apply", "--auto-approve", "--progress", "none")
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		// The delay counts from the first root's lock (its state
		// directory appears): by then the signal handler is surely in
		// place, however slowly the binary started.
		for wait := time.Now(); time.Since(wait) < 30*time.Second; time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(root, "oci", ".cachectl")); err == nil {
				break
			}
		}
		time.Sleep(delay * time.Millisecond)
		c.Process.Signal(syscall.SIGINT)
		if err := c.Wait(); err == nil {
			continue // finished before the interrupt: try earlier
		}
		if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("apply was killed by %v, not stopped by its handler:\n%s", ws.Signal(), out.String())
		}
		t.Logf("interrupted after %v:\n%s", delay*time.Millisecond, out.String())
		applying := strings.Contains(out.String(), "Apply interrupted.") && strings.Contains(out.String(), "change(s) not made; nothing partial was left at a final path; run apply again to finish")
		planning := strings.Contains(out.String(), "Apply interrupted while planning.") && strings.Contains(out.String(), "interrupted: nothing was changed; run apply again to finish")
		if code := c.ProcessState.ExitCode(); code != 1 || !applying && !planning {
			t.Fatalf("exit %d, want 1 with a cancellation message:\n%s", code, out.String())
		}
		checkFinalPaths(t, root)
		if o, code := r.run("apply", "--auto-approve", "--progress", "none"); code != 0 {
			t.Fatalf("apply after the interrupt failed (%d):\n%s", code, o)
		}
		if o, code := r.run("plan", "--detailed-exitcode"); code != 0 {
			t.Fatalf("not converged (%d):\n%s", code, o)
		}
		return
	}
	t.Fatal("every apply finished before its interrupt")
}
