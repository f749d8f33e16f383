package apply

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/spec"
)

// batchFake is a BatchExecutor that, like the Slurm executor, waits until
// every expected build has been handed over (or skipped) before it builds
// any: with the engine's build parallelism bound in the way, or a skipped
// build not reported, it would wait forever (the test times out).
type batchFake struct {
	mu       sync.Mutex
	expected int
	handed   int
	skipped  int
	all      chan struct{}
	once     sync.Once
	wrongSum bool // report a sha256 that does not match
}

func (b *batchFake) Expect(n int) { b.mu.Lock(); b.expected = n; b.check(); b.mu.Unlock() }
func (b *batchFake) Skip()        { b.mu.Lock(); b.skipped++; b.check(); b.mu.Unlock() }
func (b *batchFake) check() {
	if b.expected > 0 && b.handed+b.skipped == b.expected {
		b.once.Do(func() { close(b.all) })
	}
}

func (b *batchFake) Build(ctx context.Context, job BuildJob) error {
	if job.Member != nil {
		return errors.New("a batch build got a place in a shared stream")
	}
	if job.Root == "" || job.WorkDir == "" || job.Result == nil {
		return errors.New("the job does not say where its work directory is")
	}
	b.mu.Lock()
	b.handed++
	b.check()
	b.mu.Unlock()
	select {
	case <-b.all:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := job.Builder.Build(ctx, job.Image, job.Request, job.Out); err != nil {
		return err
	}
	if b.wrongSum {
		job.Result.SHA256 = "sha256:0000"
	}
	return nil
}

func TestBatchExecutorGetsEveryBuildAtOnce(t *testing.T) {
	root := filepath.Join(t.TempDir(), "sif")
	refs := []string{"alpine:3.20", "busybox:1.36", "nvcr.io/nvidia/pytorch:24.01-py3", "debian:12", "ubuntu:24.04"}
	src := newFake(t, refs...)
	src.fail["busybox:1.36"] = true // its pull fails: Skip, not a hang
	m := model(t, root, false, refs...)
	p := replan(t, m, src)
	ex := &batchFake{all: make(chan struct{})}
	res, err := Run(context.Background(), p, Deps{Resolver: src, Fetcher: src, Executor: ex,
		Builder: func(spec.Runtime) (providers.Builder, error) { return textBuilder{}, nil }},
		Options{Spec: m, BuilderInfo: txtInfo, BuildParallelism: 1})
	if err == nil || !strings.Contains(err.Error(), "busybox") {
		t.Fatalf("want the busybox pull error, got %v", err)
	}
	if ex.expected != 5 || ex.handed != 4 || ex.skipped != 1 || res.Added != 4 {
		t.Fatalf("expected %d, handed %d, skipped %d, added %d", ex.expected, ex.handed, ex.skipped, res.Added)
	}
	if _, err := os.Stat(filepath.Join(root, "debian:12")); err != nil {
		t.Error(err)
	}
}

func TestBatchResultSHA256Checked(t *testing.T) {
	root := filepath.Join(t.TempDir(), "sif")
	src := newFake(t, "alpine:3.20")
	m := model(t, root, false, "alpine:3.20")
	ex := &batchFake{all: make(chan struct{}), wrongSum: true}
	_, err := Run(context.Background(), replan(t, m, src), Deps{Resolver: src, Fetcher: src, Executor: ex,
		Builder: func(spec.Runtime) (providers.Builder, error) { return textBuilder{}, nil }},
		Options{Spec: m, BuilderInfo: txtInfo})
	if err == nil || !strings.Contains(err.Error(), "not placed") {
		t.Fatalf("a file whose hash differs from the build's record was placed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "alpine:3.20")); err == nil {
		t.Error("file at the final path")
	}
	if p := replan(t, m, src); p.Summary.Add != 1 {
		t.Errorf("re-plan adds %d, want 1", p.Summary.Add)
	}
}
