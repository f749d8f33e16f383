package slurmexec

import (
	"context"
	"testing"
	"time"
)

// A build that fails a moment before the step's SIGTERM cancels the run
// (mksquashfs exits on the same signal) is still an interruption; a
// failure with no signal is not.
func TestInterruptedWaitsForTheSignal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	if !interrupted(ctx, 10*time.Second) {
		t.Fatal("a run cancelled 20ms after the build failed was not reported interrupted")
	}
	if interrupted(context.Background(), 10*time.Millisecond) {
		t.Fatal("a run never cancelled was reported interrupted")
	}
	done, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	if !interrupted(done, 0) {
		t.Fatal("an already cancelled run was not reported interrupted")
	}
}
