package slurmtest

import (
	"strings"
	"testing"
)

// TestStart starts a three-node cluster and runs one task on every node.
func TestStart(t *testing.T) {
	c := Start(t, 3, 1)
	out, err := c.Command("srun", "-N3", "--ntasks-per-node=1", "sh", "-c", "echo $SLURMD_NODENAME").CombinedOutput()
	if err != nil {
		t.Fatalf("srun: %v\n%s\n%s", err, out, c.Logs())
	}
	for _, n := range c.Nodes {
		if !strings.Contains(string(out), n) {
			t.Errorf("no task ran on %s: %s", n, out)
		}
	}
}
