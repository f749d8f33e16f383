// Command cachectl keeps a shared HPC container image cache in the state an
// HCL spec describes. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	tuneGC(os.Getenv)
	os.Exit(mainExit())
}

// defaultGCPercent is the garbage collector's target (GOGC) unless the
// environment sets one: the heap may grow 50% over the live data between
// collections instead of Go's 100%. The live heap of a big apply is mostly
// the flattened tree, kept in arrays without pointers (providers/rootfs),
// so collecting more often costs next to nothing: on a 500,000-file image,
// all three artifacts in one apply, it took the peak RSS from 254 to 247
// MiB with the same CPU (BENCHMARKS.md, "NGC-shaped images").
const defaultGCPercent = 50

// tuneGC sets defaultGCPercent when getenv("GOGC") is empty.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}

// mainExit runs the command line with SIGINT/SIGTERM cancelling the run
// (an interrupted apply stops cleanly: nothing partial at a final path,
// locks released) and returns the exit code.
func mainExit() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, compatArgv(os.Args), os.Stdin, os.Stdout, os.Stderr)
}
