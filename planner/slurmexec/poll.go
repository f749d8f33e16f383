package slurmexec

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cachectl/cachectl/providers/slurm"
	"github.com/cachectl/cachectl/spec"
)

// ErrQueueFailing is wrapped by QueuePoller.Next's error when squeue has
// failed for longer than the bound (10 × result_timeout, docs/slurm.md).
var ErrQueueFailing = errors.New("squeue has failed")

// QueuePoller polls squeue for one job every poll interval, for apply's
// Slurm executor and for stage. When the context is cancelled, or squeue
// has failed for 10 × result_timeout, it cancels the job (CancelAndWait)
// and says so: the caller stops waiting.
type QueuePoller struct {
	client   *slurm.Client
	jobID    string
	s        spec.SlurmSettings
	tick     *time.Ticker
	errSince time.Time
}

// NewQueuePoller starts polling job jobID with s (defaults filled in);
// Stop ends it.
func NewQueuePoller(c *slurm.Client, jobID string, s spec.SlurmSettings) *QueuePoller {
	s = s.WithDefaults()
	return &QueuePoller{client: c, jobID: jobID, s: s, tick: time.NewTicker(s.PollInterval)}
}

// Stop releases the poller's ticker.
func (p *QueuePoller) Stop() { p.tick.Stop() }

// Next waits for the next poll and returns squeue's view of the job (the
// job's array elements, or the job). qerr is squeue's error while it has
// failed for less than the bound: the caller goes on with what else it
// can see (result records). err ends the wait, the job cancelled: the
// context's error, or one wrapping ErrQueueFailing.
func (p *QueuePoller) Next(ctx context.Context) (queue []slurm.Task, qerr, err error) {
	select {
	case <-ctx.Done():
		CancelAndWait(p.client, p.jobID, p.s.PollInterval)
		return nil, nil, ctx.Err()
	case <-p.tick.C:
	}
	queue, qerr = p.client.Queue(ctx, p.jobID)
	switch {
	case qerr == nil:
		p.errSince = time.Time{}
	case ctx.Err() != nil:
		CancelAndWait(p.client, p.jobID, p.s.PollInterval)
		return nil, nil, ctx.Err()
	case p.errSince.IsZero():
		p.errSince = time.Now()
	case time.Since(p.errSince) > 10*p.s.ResultTimeout:
		CancelAndWait(p.client, p.jobID, p.s.PollInterval)
		return nil, nil, fmt.Errorf("slurm job %s: %w since %s (%v); the job was cancelled", p.jobID, ErrQueueFailing, p.errSince.Format(time.TimeOnly), qerr)
	}
	return queue, qerr, nil
}
