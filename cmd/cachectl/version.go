package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// VersionCmd prints the version.
type VersionCmd struct{}

// Help shows examples.
func (VersionCmd) Help() string { return "Example:\n  cachectl version" }

// Run prints the version, the Go version and the platform.
func (VersionCmd) Run(g *Globals, io *IO) error {
	v := Version
	if v == "dev" {
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	fmt.Fprintf(io.Stdout, "cachectl %s (%s, %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
