package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/providers/slurm"
	"github.com/cachectl/cachectl/providers/slurm/slurmtest"
)

// TestSlurm runs the scripts in testdata/script/slurm against a real Slurm
// cluster of three nodes on this host (slurmtest: munged, slurmctld and
// three slurmd from Debian's packages) and the real registry on loopback.
// The build tasks are the test binary re-executed as cachectl, so the
// artifacts are built exactly as by a local apply.
func TestSlurm(t *testing.T) {
	if testing.Short() {
		t.Skip("Slurm tests skipped with -short")
	}
	registrytest.RequireTool(t, "mksquashfs")
	registrytest.RequireTool(t, "unsquashfs")
	registrytest.RequireTool(t, "skopeo")
	cluster := slurmtest.Start(t, 3, 1)
	srv := registrytest.StartDistribution(t)
	for i, repo := range []string{"slurm/a:1", "slurm/b:1", "slurm/c:1", "slurm/d:1"} {
		registrytest.Push(t, registrytest.Image(t, 2, 64<<10, int64(100+i)), srv.Ref(repo))
	}
	// A larger image whose builds take a few seconds: the cancel test
	// cancels one while it runs.
	registrytest.Push(t, registrytest.Image(t, 2, 48<<20, 200), srv.Ref("slurm/big:1"))
	p := scriptParams(t, "../../testdata/script/slurm")
	setup := p.Setup
	p.Setup = func(env *testscript.Env) error {
		env.Setenv("REGISTRY", srv.Addr)
		env.Setenv("REGISTRY_PORT", srv.Addr[strings.LastIndexByte(srv.Addr, ':')+1:])
		env.Setenv("SLURM_CONF", cluster.Conf)
		return setup(env)
	}
	// ours lists the elements of jobs named name in the given states that
	// this script submitted (their working directory is under its $WORK:
	// the scripts run in parallel on the one cluster).
	// ok is false when squeue failed (a busy slurmctld can time out one
	// call, which cachectl itself tolerates too): the caller polls again.
	ours := func(ts *testscript.TestScript, name, states string) (ids []string, ok bool) {
		out, err := cluster.Command("squeue", "-h", "-r", "-n", name, "-t", states, "-o", "%i %Z").Output()
		if err != nil {
			ts.Logf("squeue: %v; polling again", err)
			return nil, false
		}
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) == 2 && strings.HasPrefix(f[1], ts.Getenv("WORK")+"/") {
				ids = append(ids, f[0])
			}
		}
		return ids, true
	}
	p.Cmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"verify": verifyCmd,
		// atime FILE — mark the file as just read (access time one hour
		// ahead; the modification time is kept).
		"atime": func(ts *testscript.TestScript, neg bool, args []string) {
			p := ts.MkAbs(args[0])
			fi, err := os.Stat(p)
			ts.Check(err)
			ts.Check(os.Chtimes(p, time.Now().Add(time.Hour), fi.ModTime()))
		},
		// slurmtask running|cancel NAME SUFFIX — wait (60 s at most)
		// until the element ending in SUFFIX ("_0") of a job named NAME
		// runs (and cancel it);
		// slurmtask gone NAME — wait (30 s at most) until no element of a
		// job named NAME is pending or running.
		"slurmtask": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) < 2 {
				ts.Fatalf("usage: slurmtask running|cancel NAME SUFFIX | slurmtask gone NAME")
			}
			c := &slurm.Client{Env: cluster.Env()}
			if args[0] == "gone" {
				deadline := time.Now().Add(30 * time.Second)
				for time.Now().Before(deadline) {
					if ids, ok := ours(ts, args[1], "PENDING,RUNNING,COMPLETING"); ok && len(ids) == 0 {
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
				ts.Fatalf("elements of %s still in the queue after 30 s", args[1])
			}
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				ids, _ := ours(ts, args[1], "RUNNING")
				for _, id := range ids {
					if strings.HasSuffix(id, args[2]) {
						if args[0] == "cancel" {
							ts.Check(c.Cancel(context.Background(), id))
							ts.Logf("cancelled %s", id)
						}
						return
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			ts.Fatalf("no element of %s ran within 60 s", args[1])
		},
	}
	testscript.Run(t, p)
	if t.Failed() {
		t.Log(cluster.Logs())
	}
}
