// Package slurmtest starts a real Slurm cluster for tests on one host:
// munged, slurmctld and one slurmd per virtual node ("slurmd -N n1"),
// all on loopback with free ports, from Debian's packages (slurmctld,
// slurmd, slurm-client, munge; Slurm 22.05 in Debian 12). Every daemon
// runs in the foreground as a child of the test and is stopped by the
// test's cleanup (jobs cancelled first).
//
// Without the programs, or when not root (slurmd must be), the test is
// skipped with a message that says how to install them; with
// CACHECTL_REQUIRE_TOOLS set (CI), as root on a host with apt-get (where
// .ci/deps.sh installs them), it fails instead.
package slurmtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Cluster is a running test cluster.
type Cluster struct {
	// Dir holds the configuration, state, spool and logs.
	Dir string
	// Conf is the slurm.conf path: clients need SLURM_CONF=Conf.
	Conf string
	// Nodes are the node names ("n1", "n2", ...), all in Partition.
	Nodes []string
	// Partition is the default partition.
	Partition string

	mu    sync.Mutex
	procs []*exec.Cmd
}

// Env returns the environment entries a client command needs.
func (c *Cluster) Env() []string { return []string{"SLURM_CONF=" + c.Conf} }

// programs the cluster needs, with the Debian packages that ship them.
var programs = [][2]string{
	{"munged", "munge"}, {"slurmctld", "slurmctld"}, {"slurmd", "slurmd"},
	{"sbatch", "slurm-client"}, {"squeue", "slurm-client"}, {"scancel", "slurm-client"},
	{"sinfo", "slurm-client"}, {"srun", "slurm-client"}, {"scontrol", "slurm-client"},
}

func skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	_, apt := exec.LookPath("apt-get")
	if os.Getenv("CACHECTL_REQUIRE_TOOLS") != "" && os.Geteuid() == 0 && apt == nil {
		t.Fatalf("a Slurm test cluster is required (CACHECTL_REQUIRE_TOOLS is set): %s", msg)
	}
	if os.Geteuid() != 0 {
		t.Skipf("Slurm test cluster not available: %s; run the tests as root to include them", msg)
	}
	t.Skipf("Slurm test cluster not available: %s; set CACHECTL_REQUIRE_TOOLS=1 to make this a failure", msg)
}

// Start starts a cluster of n nodes (n1..nN, CPUs each) and registers its
// shutdown with t.Cleanup. It returns once every node is idle.
func Start(t testing.TB, n, cpus int) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("Slurm tests skipped with -short")
	}
	var missing []string
	for _, p := range programs {
		if _, err := exec.LookPath(p[0]); err != nil {
			missing = append(missing, p[1])
		}
	}
	if len(missing) > 0 {
		skip(t, "missing %s (apt-get install slurmctld slurmd slurm-client munge; .ci/deps.sh does it as root)", strings.Join(dedupe(missing), ", "))
	}
	if os.Geteuid() != 0 {
		skip(t, "slurmd must run as root to start jobs (running as uid %d)", os.Geteuid())
	}
	host, err := os.Hostname()
	if err != nil {
		skip(t, "no host name: %v", err)
	}
	// A short directory: the munge socket path must fit in sun_path.
	dir, err := os.MkdirTemp("", "slurmtest")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Dir: dir, Conf: filepath.Join(dir, "slurm.conf"), Partition: "debug"}
	t.Cleanup(func() {
		c.stop(t)
		os.RemoveAll(dir)
	})
	for _, d := range []string{"munge", "state", "log", "spool"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	key := make([]byte, 1024)
	rand.Read(key)
	keyFile := filepath.Join(dir, "munge", "munge.key")
	if err := os.WriteFile(keyFile, key, 0o400); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "munge", "socket")
	c.start(t, "munged", "-F", "-f", "--socket="+sock, "--key-file="+keyFile,
		"--log-file="+filepath.Join(dir, "log", "munged.log"), "--pid-file="+filepath.Join(dir, "munge", "munged.pid"),
		"--seed-file="+filepath.Join(dir, "munge", "seed"))
	if err := waitFor(10*time.Second, func() bool { _, err := os.Stat(sock); return err == nil }); err != nil {
		t.Fatalf("munged did not create its socket: %s", c.logs())
	}
	ports := freePorts(t, n+1)
	for i := 1; i <= n; i++ {
		c.Nodes = append(c.Nodes, fmt.Sprintf("n%d", i))
	}
	conf := fmt.Sprintf(`ClusterName=cachectltest
SlurmctldHost=%[1]s(127.0.0.1)
SlurmctldPort=%[2]d
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=%[3]s
StateSaveLocation=%[4]s/state
SlurmdSpoolDir=%[4]s/spool/%%n
SlurmctldPidFile=%[4]s/slurmctld.pid
SlurmdPidFile=%[4]s/slurmd-%%n.pid
SlurmctldLogFile=%[4]s/log/slurmctld.log
SlurmdLogFile=%[4]s/log/slurmd-%%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=60
KillWait=5
NodeName=n[1-%[5]d] NodeHostname=%[1]s NodeAddr=127.0.0.1 Port=[%[6]d-%[7]d] CPUs=%[8]d State=UNKNOWN
PartitionName=%[9]s Nodes=n[1-%[5]d] Default=YES MaxTime=INFINITE State=UP
`, host, ports[0], sock, dir, n, ports[1], ports[1]+n-1, cpus, c.Partition)
	// The node ports must be consecutive ("Port=[a-b]"): check the range.
	for p := ports[1]; p < ports[1]+n; p++ {
		if !portFree(p) {
			t.Fatalf("port %d is in use; run the test again", p)
		}
	}
	if err := os.WriteFile(c.Conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	c.start(t, "slurmctld", "-D", "-f", c.Conf)
	for _, node := range c.Nodes {
		if err := os.MkdirAll(filepath.Join(dir, "spool", node), 0o755); err != nil {
			t.Fatal(err)
		}
		c.start(t, "slurmd", "-D", "-f", c.Conf, "-N", node)
	}
	err = waitFor(60*time.Second, func() bool {
		out, err := c.Command("sinfo", "-h", "-N", "-o", "%N %T").Output()
		if err != nil {
			return false
		}
		idle := 0
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[1] == "idle" {
				idle++
			}
		}
		return idle == n
	})
	if err != nil {
		out, _ := c.Command("sinfo", "-N").CombinedOutput()
		t.Fatalf("the Slurm test cluster did not come up: %s\n%s", out, c.logs())
	}
	return c
}

// Command returns a client command (sinfo, squeue, ...) for the cluster.
func (c *Cluster) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), c.Env()...)
	return cmd
}

func (c *Cluster) start(t testing.TB, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), c.Env()...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group: a Ctrl-C of the test run reaches the daemons
	// only through cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	c.mu.Lock()
	c.procs = append(c.procs, cmd)
	c.mu.Unlock()
}

// stop cancels every job, then stops the daemons it started, newest first
// (slurmd before slurmctld before munged): SIGTERM, then SIGKILL after 15 s.
func (c *Cluster) stop(t testing.TB) {
	if len(c.procs) > 1 {
		c.Command("scancel", "--full", "--partition", c.Partition).Run()
		waitFor(15*time.Second, func() bool {
			out, err := c.Command("squeue", "-h", "-o", "%i").Output()
			return err != nil || len(bytes.TrimSpace(out)) == 0
		})
	}
	c.mu.Lock()
	procs := c.procs
	c.procs = nil
	c.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Logf("slurmtest: %s did not stop on SIGTERM; killing it", p.Path)
			p.Process.Kill()
			<-done
		}
	}
}

// logs returns the daemons' log files, for failure messages.
func (c *Cluster) logs() string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(c.Dir, "log", "*.log"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(f), data)
	}
	return b.String()
}

// Logs returns the tail of the daemons' logs, for failure messages.
func (c *Cluster) Logs() string { return c.logs() }

func waitFor(d time.Duration, ok func() bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		if ok() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// freePorts returns a free port for slurmctld and the first of n-1
// consecutive free ports for the slurmds.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	for try := 0; try < 50; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		first := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if first+n >= 65535 {
			continue
		}
		ok := true
		for p := first + 1; p < first+n; p++ {
			ok = ok && portFree(p)
		}
		if ok {
			return []int{first, first + 1}
		}
	}
	t.Fatal("no run of free ports on 127.0.0.1")
	return nil
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func dedupe(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
