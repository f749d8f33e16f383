// Command cachectl keeps a shared HPC container image cache in the state an
// HCL spec describes. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(mainExit()) }

// mainExit runs the command line with SIGINT/SIGTERM cancelling the run
// (an interrupted apply stops cleanly: nothing partial at a final path,
// locks released) and returns the exit code.
func mainExit() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, compatArgv(os.Args), os.Stdin, os.Stdout, os.Stderr)
}
