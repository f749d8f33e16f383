package apply

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/rootfs"
)

// Executor runs the builds of an apply. The engine has fetched the image
// (its blobs are in the shared store; for Local, they may still be
// arriving: reading a layer waits for it) and made a private work directory in
// the root's staging area; the executor writes the artifact to Out, a path
// in that directory, and returns. Finishing (owner, mode, fsync, hash) and
// placing the file stay with the engine, so placement, locking and the
// index have one writer whatever runs the build.
type Executor interface {
	Build(ctx context.Context, job BuildJob) error
}

// BatchExecutor is an Executor that runs the builds of an apply together
// (for example as one Slurm array job). Before the first build the engine
// calls Expect with the number of builds it will hand over; it then calls
// Build for all of them at once (the engine's build parallelism does not
// apply: the executor decides what runs when), and Skip once for each
// expected build that fails before it reaches the executor (its pull), so
// that the batch never waits for it.
type BatchExecutor interface {
	Executor
	Expect(n int)
	Skip()
}

// BuildJob is one artifact to build.
type BuildJob struct {
	Change  planner.Change
	Image   v1.Image
	Builder providers.Builder
	Request providers.BuildRequest
	// Out is where the artifact goes: a path that does not exist yet in
	// the work directory (Request.TempDir).
	Out string
	// Member, when set (only for a providers.StreamBuilder), is the
	// build's place in one reading of the image's layers that the other
	// builds of this image share (rootfs.Shared); nil: the build reads the
	// image by itself. The engine leaves the stream when the build is over.
	Member *rootfs.Member
	// Root is the cache root's path as the spec writes it, and WorkDir the
	// name of the work directory in its staging area: what a process
	// elsewhere needs to reach the work directory through its own handles
	// (cacheroot.OpenWorkDir).
	Root, WorkDir string
	// Result is where the executor may report what it knows of the built
	// file; the engine checks it against the finished file.
	Result *BuildResult
}

// BuildResult is what an executor reports of a build.
type BuildResult struct {
	// SHA256 is the hex digest the build recorded for the file ("" = not
	// reported). The engine refuses to place a file whose hash, computed
	// when it finishes the file, differs.
	SHA256 string
}

// Local builds in this process with the runtime's builder.
type Local struct{}

// Build runs the builder; a StreamBuilder joins the shared stream when
// there is one.
func (Local) Build(ctx context.Context, job BuildJob) error {
	if sb, ok := job.Builder.(providers.StreamBuilder); ok && job.Member != nil {
		return sb.BuildShared(ctx, job.Member, job.Image, job.Request, job.Out)
	}
	return job.Builder.Build(ctx, job.Image, job.Request, job.Out)
}
