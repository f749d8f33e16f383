package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExecutorWithoutSlurm: --executor slurm on a host without sbatch says
// so and how to build locally, before it locks or changes anything.
func TestExecutorWithoutSlurm(t *testing.T) {
	dir := t.TempDir()
	specFile := filepath.Join(dir, "spec.hcl")
	os.WriteFile(specFile, []byte(`cache "sif" {
  runtime = "apptainer"
  root    = "`+dir+`/sif"
  images  = ["docker.io/library/alpine:3.20"]
}
`), 0o644)
	t.Setenv("PATH", t.TempDir()) // no sbatch
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), []string{"-f", specFile, "--store", filepath.Join(dir, "store"), "apply", "--auto-approve", "--executor", "slurm"}, strings.NewReader(""), &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"sbatch not found on PATH", "--executor local", `executor = "local"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "sif")); err == nil {
		t.Errorf("the cache root was created although apply refused to start")
	}
}
