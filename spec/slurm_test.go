package spec

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestSlurmSettingsAndNodeCache(t *testing.T) {
	m := mustLoad(t, `
cachectl {
  executor = "slurm"
  slurm {
    partition     = "cpu"
    account       = "hpc-admin"
    qos           = "normal"
    time_limit    = "90m"
    cpus_per_task = 8
    mem_per_task  = "16GiB"
    max_parallel  = 4
    sbatch_args   = ["--exclusive", "--constraint=nvme"]
    command       = "/shared/bin/cachectl"
    log_dir       = "/shared/cachectl/slurm"
  }
}
cache "sqsh" {
  runtime   = "enroot"
  root      = "/shared/enroot"
  images    = ["alpine:3.20", "busybox:1.36"]
  file_mode = "0640"
}
node_cache "local" {
  from      = "sqsh"
  root      = "/local/enroot/%n"
  partition = "gpu"
  nodes     = "gpu[01-16]"
  max_size  = "400GiB"
  images    = ["busybox:1.36"]
}
`, Options{})
	s := m.Slurm
	if m.Executor != "slurm" || s.Partition != "cpu" || s.Account != "hpc-admin" || s.QOS != "normal" || s.TimeLimit != 90*time.Minute ||
		s.CPUsPerTask != 8 || s.MemPerTask != 16<<30 || s.MaxParallel != 4 || len(s.SbatchArgs) != 2 || s.Command != "/shared/bin/cachectl" || s.LogDir != "/shared/cachectl/slurm" {
		t.Errorf("slurm settings: %+v (executor %q)", s, m.Executor)
	}
	nc := m.NodeCache("local")
	if nc == nil || nc.From != "sqsh" || nc.MaxSize != 400<<30 || nc.Partition != "gpu" || nc.Nodes != "gpu[01-16]" || nc.FileMode != 0o640 {
		t.Fatalf("node cache: %+v", nc)
	}
	if nc.RootFor("gpu07") != "/local/enroot/gpu07" || !nc.Wants("busybox:1.36") || nc.Wants("alpine:3.20") {
		t.Errorf("RootFor/Wants wrong")
	}
}

func TestSlurmSpecErrors(t *testing.T) {
	base := `cache "sqsh" {
  runtime = "enroot"
  root    = "/shared/enroot"
  images  = ["alpine:3.20"]
}
`
	for _, tc := range []struct{ src, want string }{
		{`cachectl { executor = "pbs" }`, "Unknown executor"},
		{`cachectl {
  slurm { sbatch_args = ["--exclusive; rm -rf /"] }
}`, ""},
		{`cachectl {
  slurm { sbatch_args = ["rm"] }
}`, "Invalid sbatch argument"},
		{`cachectl {
  slurm { partition = "gpu; true" }
}`, "Invalid partition"},
		{`cachectl {
  slurm { mem_per_task = "lots" }
}`, "Invalid mem_per_task"},
		{`cachectl {
  slurm { command = "cachectl" }
}`, "Relative command"},
		{`cachectl {
  slurm { cpus_per_task = 0 }
}`, "Invalid cpus_per_task"},
		{`node_cache "l" {
from = "nope"
root = "/local"
partition = "gpu"
}`, "Undefined cache"},
		{`node_cache "l" {
from = "sqsh"
root = "local"
partition = "gpu"
}`, "Relative node cache root"},
		{`node_cache "l" {
from = "sqsh"
root = "/local/%h"
partition = "gpu"
}`, "Unknown placeholder"},
		{`node_cache "l" {
from = "sqsh"
root = "/shared/enroot/local"
partition = "gpu"
}`, "overlaps"},
		{`node_cache "l" {
from = "sqsh"
root = "/local"
}`, "No nodes"},
		{`node_cache "l" {
from = "sqsh"
root = "/local"
partition = "gpu"
images = ["busybox:1.36"]
}`, "Image not in the cache"},
		{`node_cache "l" {
from = "sqsh"
root = "/local"
partition = "gpu"
max_size = "-1G"
}`, "Invalid max_size"},
	} {
		m, d := load(t, base+tc.src, Options{})
		var b bytes.Buffer
		d.WriteText(&b, false, 0)
		if tc.want == "" {
			// an option with a ';' is still one argv element: accepted
			if d.HasErrors() || m == nil {
				t.Errorf("%s: unexpected errors:\n%s", tc.src, b.String())
			}
			continue
		}
		if !d.HasErrors() || !strings.Contains(b.String(), tc.want) {
			t.Errorf("%s: want error %q, got:\n%s", tc.src, tc.want, b.String())
		}
	}
}

func TestParseSize(t *testing.T) {
	for s, want := range map[string]int64{"512": 512, "1K": 1024, "16G": 16 << 30, "16GiB": 16 << 30, "1.5T": 3 << 39, "400 GiB": 400 << 30, "2MB": 2 << 20} {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "G", "1X", "-1", "1e3"} {
		if _, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) accepted", s)
		}
	}
}
