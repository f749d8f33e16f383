package main

import (
	"context"
	"flag"
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

var update = flag.Bool("update", false, "update golden output in testscript files (cmp with a second file argument)")

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"cachectl":                 func() { os.Exit(mainExit()) },
		"manage-singularity-cache": func() { os.Exit(mainExit()) },
		"manage-enroot-cache":      func() { os.Exit(mainExit()) },
	})
}

// scriptParams is the shared set-up of the testscript suites: the real
// cachectl binary (re-executed test binary) on PATH, a clean environment.
func scriptParams(t *testing.T, dir string) testscript.Params {
	return testscript.Params{
		Dir:                 dir,
		UpdateScripts:       *update,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("CACHECTL_STORE", env.WorkDir+"/.store")
			return nil
		},
	}
}

// TestCLI runs the scripts for the commands that need neither a registry nor
// external tools: version, --help, validate, fmt.
func TestCLI(t *testing.T) {
	testscript.Run(t, scriptParams(t, "../../testdata/script/cli"))
}

func TestSingleDashLong(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"-no-color", "version"}, 0},
		{[]string{"--no-color", "version"}, 0},
		{[]string{"-bogus", "version"}, 1},
	} {
		devnull, _ := os.Open(os.DevNull)
		if got := Run(ctx, tc.args, devnull, devnull, devnull); got != tc.want {
			t.Errorf("Run(%q) = %d, want %d", tc.args, got, tc.want)
		}
		devnull.Close()
	}
}
